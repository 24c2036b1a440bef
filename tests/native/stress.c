/* stress.c: one process of tests/integration/test_stress.py's load, every
 * event of which the test checks.
 *
 *   stress_native SPANS [BUSY]
 *
 * Attaches ($TRACED_SESSION), then starts 8 threads that wait for each
 * other at a barrier.  Thread T (0..7) names itself "t<T>", interns the
 * names "t<T>-all" and "t<T>-seq-0" .. "t<T>-seq-<SPANS-1>", and records:
 *
 *   span "t<T>-all" holding, in order,
 *     SPANS spans "t<T>-seq-<i>", i = 0 .. SPANS-1 (each with BUSY
 *       iterations of busy work inside, default 0),
 *     the counter "t<T>-done" with the value SPANS,
 *     the instant "t<T>-end".
 *
 * So each thread emits 1 THREAD_NAME record, 2 * (SPANS + 1) span records,
 * 1 counter and 1 instant.  On stdout: "stress_native pid=<pid>", then one
 * "thread <T> tid=<tid>" line per thread, in thread order. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tid.h"
#include "traced.h"

enum { kThreads = 8, kNameMax = 64 };

static long g_spans;
static long g_busy;
static pthread_barrier_t g_start;

/* Keeps busy() from being optimised away; one per thread, so the threads
 * share nothing (a shared one is a data race, which TSan reports). */
static _Thread_local volatile uint64_t sink;

static void busy(long n) {
  for (long i = 0; i < n; i++) sink += (uint64_t)i;
}

typedef struct worker {
  int index;
  long tid;
  int failed;
} worker;

static void *run_worker(void *arg) {
  worker *w = arg;
  char name[kNameMax];
  w->tid = native_tid();
  uint32_t *ids = calloc((size_t)g_spans, sizeof(*ids));
  if (ids == NULL) {
    w->failed = 1;
    pthread_barrier_wait(&g_start);
    return NULL;
  }
  snprintf(name, sizeof(name), "t%d", w->index);
  traced_thread_name(name);
  for (long i = 0; i < g_spans; i++) {
    snprintf(name, sizeof(name), "t%d-seq-%ld", w->index, i);
    ids[i] = traced_intern(name);
  }
  snprintf(name, sizeof(name), "t%d-all", w->index);
  uint32_t all = traced_intern(name);
  pthread_barrier_wait(&g_start);

  traced_begin_id(all);
  for (long i = 0; i < g_spans; i++) {
    traced_begin_id(ids[i]);
    busy(g_busy);
    traced_end();
  }
  snprintf(name, sizeof(name), "t%d-done", w->index);
  traced_counter(name, (double)g_spans);
  snprintf(name, sizeof(name), "t%d-end", w->index);
  traced_instant(name);
  traced_end();
  free(ids);
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: stress_native SPANS [BUSY]\n");
    return 2;
  }
  g_spans = strtol(argv[1], NULL, 10);
  g_busy = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
  if (g_spans <= 0 || g_busy < 0) {
    fprintf(stderr, "stress_native: bad arguments\n");
    return 2;
  }
  int err = traced_attach();
  if (err != 0) {
    fprintf(stderr, "stress_native: running untraced: %s\n",
            traced_strerror(err));
  }
  pthread_barrier_init(&g_start, NULL, kThreads);
  worker workers[kThreads];
  pthread_t threads[kThreads];
  memset(workers, 0, sizeof(workers));
  for (int t = 0; t < kThreads; t++) {
    workers[t].index = t;
    int rc = pthread_create(&threads[t], NULL, run_worker, &workers[t]);
    if (rc != 0) {
      fprintf(stderr, "stress_native: pthread_create: %s\n", strerror(rc));
      return 1;
    }
  }
  int failed = 0;
  for (int t = 0; t < kThreads; t++) {
    pthread_join(threads[t], NULL);
    failed |= workers[t].failed;
  }
  /* One write for the whole report, so concurrent processes sharing a
   * stream never interleave inside it. */
  char out[kThreads * 48 + 64];
  int n = snprintf(out, sizeof(out), "stress_native pid=%ld\n", (long)getpid());
  for (int t = 0; t < kThreads; t++)
    n += snprintf(out + n, sizeof(out) - (size_t)n, "thread %d tid=%ld\n", t,
                  workers[t].tid);
  fwrite(out, 1, (size_t)n, stdout);
  fflush(stdout);
  traced_detach();
  return failed ? 1 : 0;
}

/* example.c: a native program traced through libtraced's public C API,
 * whose every event tests/integration/test_native.py checks.
 *
 * The main thread, named "native-main", records 10 "native_work" spans
 * each holding one "tick" instant, then the counter "queue_depth" with the
 * values 0..4, then with arguments: 3 "marked" instants (kind, n, ratio,
 * ok), one "loaded" span (file at its begin, bytes at its end) and 3
 * samples of the two-series counter "mem" (rss, heap); a second thread,
 * "native-worker", records 7 "worker_span" spans through an interned id.
 * The program prints its pid and both thread ids on stdout so the test
 * can match them with the trace. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tid.h"
#include "traced.h"

enum { kMainSpans = 10, kCounterValues = 5, kWorkerSpans = 7 };

/* Keeps busy() from being optimised away, so spans have a duration. */
static volatile uint64_t sink;

static void busy(unsigned n) {
  for (unsigned i = 0; i < n; i++) sink += i;
}

static void *worker(void *arg) {
  long *tid = arg;
  *tid = native_tid();
  traced_thread_name("native-worker");
  /* The _id form: intern once, then each span costs a clock read. */
  uint32_t span = traced_intern("worker_span");
  for (int i = 0; i < kWorkerSpans; i++) {
    traced_begin_id(span);
    busy(10000);
    traced_end();
  }
  return NULL;
}

int main(void) {
  int err = traced_attach();
  if (err != 0) {
    fprintf(stderr, "native_example: running untraced: %s\n",
            traced_strerror(err));
  }
  traced_thread_name("native-main");
  for (int i = 0; i < kMainSpans; i++) {
    traced_begin("native_work");
    busy(10000);
    traced_instant("tick");
    busy(10000);
    traced_end();
  }
  for (int i = 0; i < kCounterValues; i++) {
    traced_counter("queue_depth", (double)i);
  }
  for (int i = 0; i < 3; i++) {
    traced_arg marked[] = {
        TRACED_ARG_S("kind", "x\"y"),
        TRACED_ARG_I("n", -i),
        TRACED_ARG_D("ratio", 0.5 * i),
        TRACED_ARG_B("ok", i % 2 == 0),
    };
    traced_instant_add("marked", marked, 4);
  }
  traced_arg file = TRACED_ARG_S("file", "data.bin");
  traced_span_begin("loaded", &file, 1);
  busy(10000);
  traced_arg bytes = TRACED_ARG_U("bytes", 42);
  traced_span_end(&bytes, 1);
  for (int i = 0; i < 3; i++) {
    traced_arg mem[] = {TRACED_ARG_I("rss", 100 + i),
                        TRACED_ARG_D("heap", 1.5 * i),
                        TRACED_ARG_S("ignored", "not a number")};
    traced_counter_set("mem", mem, 3);
  }

  long worker_tid = 0;
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, worker, &worker_tid);
  if (rc != 0) {
    fprintf(stderr, "native_example: pthread_create: %s\n", strerror(rc));
    return 1;
  }
  pthread_join(thread, NULL);

  printf("native_example pid=%ld main_tid=%ld worker_tid=%ld\n", (long)getpid(),
         native_tid(), worker_tid);
  fflush(stdout);
  traced_detach();
  return 0;
}

/* example.c: a native program traced through libtraced's public C API,
 * whose every event tests/integration/test_native.py checks.
 *
 * The main thread, named "native-main", records 10 "native_work" spans
 * each holding one "tick" instant, then the counter "queue_depth" with the
 * values 0..4; a second thread, "native-worker", records 7 "worker_span"
 * spans through an interned id.  The program prints its pid and both
 * thread ids on stdout so the test can match them with the trace. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "traced.h"

enum { kMainSpans = 10, kCounterValues = 5, kWorkerSpans = 7 };

/* Keeps busy() from being optimised away, so spans have a duration. */
static volatile uint64_t sink;

static void busy(unsigned n) {
  for (unsigned i = 0; i < n; i++) sink += i;
}

static long thread_id(void) { return (long)syscall(SYS_gettid); }

static void *worker(void *arg) {
  long *tid = arg;
  *tid = thread_id();
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

  long worker_tid = 0;
  pthread_t thread;
  int rc = pthread_create(&thread, NULL, worker, &worker_tid);
  if (rc != 0) {
    fprintf(stderr, "native_example: pthread_create: %s\n", strerror(rc));
    return 1;
  }
  pthread_join(thread, NULL);

  printf("native_example pid=%ld main_tid=%ld worker_tid=%ld\n", (long)getpid(),
         thread_id(), worker_tid);
  fflush(stdout);
  traced_detach();
  return 0;
}

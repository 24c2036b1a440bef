/* producer.c: the daemon benchmark's event source, a native program that
 * emits span events as fast as libtraced's C API allows.
 *
 *   bench_producer PROCS SPANS
 *
 * Forks PROCS children; each attaches ($TRACED_SESSION, set by `traced
 * run`), interns one name and records SPANS begin_id/end pairs (SPANS
 * "X" events in the trace, 2 * SPANS ring records) in a tight loop, then
 * detaches.  The parent itself never attaches; it waits for every child
 * and, as the last thing before it exits, prints
 *
 *   exit_ns=<CLOCK_MONOTONIC in ns>
 *
 * on stdout, so the caller can tell how long after the last process's
 * exit the trace file was complete.  Each child prints one line
 * "child pid=<pid> emit_s=<seconds spent recording>" first. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "traced.h"

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int child(uint64_t spans) {
  int err = traced_attach();
  if (err != 0) {
    fprintf(stderr, "bench_producer: cannot attach: %s\n",
            traced_strerror(err));
    return 1;
  }
  traced_thread_name("producer");
  uint32_t id = traced_intern("span");
  uint64_t t0 = now_ns();
  for (uint64_t i = 0; i < spans; i++) {
    traced_begin_id(id);
    traced_end();
  }
  uint64_t t1 = now_ns();
  traced_detach();
  printf("child pid=%ld emit_s=%.6f\n", (long)getpid(),
         (double)(t1 - t0) / 1e9);
  fflush(stdout);
  return 0;
}

static int parse_u64(const char *s, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return -1;
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  uint64_t procs, spans;
  if (argc != 3 || parse_u64(argv[1], &procs) < 0 ||
      parse_u64(argv[2], &spans) < 0 || procs == 0 || procs > 1024) {
    fprintf(stderr, "usage: bench_producer PROCS SPANS\n");
    return 2;
  }
  fflush(stdout);
  for (uint64_t i = 0; i < procs; i++) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "bench_producer: fork: %s\n", strerror(errno));
      return 1;
    }
    if (pid == 0) _exit(child(spans));
  }
  int failed = 0, status;
  while (wait(&status) > 0) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) failed = 1;
  }
  printf("exit_ns=%" PRIu64 "\n", now_ns());
  return failed;
}

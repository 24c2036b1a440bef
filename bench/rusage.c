/* rusage.c: runs a command and reports its wall time and peak RSS, for
 * scripts/bench.py.
 *
 *   bench_rusage OUT CMD [ARGS...]
 *
 * Writes "wall_ns=<N> end_ns=<N> maxrss_kb=<N> status=<wait status>" to
 * OUT and exits with CMD's exit status (128+N if it was killed by signal
 * N).  end_ns is CLOCK_MONOTONIC when CMD was reaped.
 *
 * Why not measure from the Python driver: Linux keeps a process's RSS
 * high-water mark across exec(), so a child forked from the driver
 * reports at least the driver's own RSS.  This program is small, and the
 * CMD it forks starts from its size, not the driver's.  maxrss_kb is
 * ru_maxrss from wait4(): the largest of CMD and every descendant CMD
 * waited for. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_rusage OUT CMD [ARGS...]\n");
    return 2;
  }
  long long t0 = now_ns();
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "bench_rusage: fork: %s\n", strerror(errno));
    return 2;
  }
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    fprintf(stderr, "bench_rusage: cannot run %s: %s\n", argv[2],
            strerror(errno));
    _exit(127);
  }
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0) {
    if (errno != EINTR) {
      fprintf(stderr, "bench_rusage: wait4: %s\n", strerror(errno));
      return 2;
    }
  }
  long long t1 = now_ns();
  FILE *out = fopen(argv[1], "w");
  if (out == NULL) {
    fprintf(stderr, "bench_rusage: cannot write %s: %s\n", argv[1],
            strerror(errno));
    return 2;
  }
  fprintf(out, "wall_ns=%lld end_ns=%lld maxrss_kb=%ld status=%d\n", t1 - t0,
          t1, ru.ru_maxrss, status);
  fclose(out);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

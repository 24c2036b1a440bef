/* fmtbench.c: the trace writers alone on a fixed, deterministic trace: the
 * formatting cost per event without rings, pairing or a daemon, for
 * profiling (callgrind, perf) and for checking that a change to a writer
 * keeps its output byte for byte.
 *
 *   fmtbench FORMAT SHAPE EVENTS OUT
 *
 * FORMAT is json, json.gz or perfetto; SHAPE is "native" (one name on one
 * thread, each call a begin and an end, as bench/producer records) or
 * "python" (4 threads of nested calls among 200 names of Python's
 * "qualname (file:line)" form, a few with arguments).  Writes EVENTS
 * slices to OUT on one lane, then prints
 *
 *   events=N cpu_s=S events_per_cpu_s=R
 *
 * where S is this process's CPU time (every thread: the writer's I/O
 * thread too).  The events and their timestamps depend on nothing but the
 * arguments, so two builds' files can be compared with cmp(1); the file's
 * head holds the clock (Perfetto) and so differs from run to run. */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "output/formats.h"

#define NAMES 200
#define THREADS 4
#define DEPTH_MAX 12

static char names[NAMES][96];
static uint32_t name_len[NAMES];

/* String ids are 4-aligned offsets, as a process's arena gives them. */
static uint32_t id_of(unsigned i) { return 4u * (i + 1); }

static bool resolve(void *ctx, uint32_t id, const char **s, uint32_t *len) {
  (void)ctx;
  unsigned i = id / 4 - 1;
  if (id % 4 != 0 || i >= NAMES) return false;
  *s = names[i];
  *len = name_len[i];
  return true;
}

/* xorshift64: the same sequence on every machine. */
static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct open_call {
  uint32_t id;
  uint64_t ts;
} open_call;

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: fmtbench json|json.gz|perfetto native|python "
                    "EVENTS OUT\n");
    return 2;
  }
  tr_format f;
  if (tr_format_parse(argv[1], strlen(argv[1]), &f) < 0) {
    fprintf(stderr, "fmtbench: unknown format %s\n", argv[1]);
    return 2;
  }
  bool python = strcmp(argv[2], "python") == 0;
  uint64_t events = strtoull(argv[3], NULL, 10);
  int fd = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror("fmtbench: open");
    return 1;
  }
  for (unsigned i = 0; i < NAMES; i++) {
    int n = python ? snprintf(names[i], sizeof(names[i]),
                              "Module%u.func_%u (/home/user/src/pkg/mod%u.py:%u)",
                              i % 7, i, i % 13, 10 + 7 * i)
                   : snprintf(names[i], sizeof(names[i]), "span");
    name_len[i] = (uint32_t)n;
  }
  tr_writer *w;
  int rc = tr_writer_open(&w, fd, f, "fmtbench", 1);
  if (rc < 0) {
    fprintf(stderr, "fmtbench: cannot open the writer: %d\n", rc);
    return 1;
  }
  tr_wstream *s;
  if (tr_wstream_open(w, 0, 4242, resolve, NULL, &s) < 0) return 1;
  tr_wstream_process_name(s, "fmtbench", 8, 0);
  unsigned nthreads = python ? THREADS : 1;
  open_call stack[THREADS][DEPTH_MAX];
  unsigned depth[THREADS] = {0};
  uint64_t clock[THREADS];
  for (unsigned t = 0; t < nthreads; t++) {
    clock[t] = 12345678901234ull + t * 1000; /* 3.4 h of uptime */
    tr_wstream_thread_name(s, 4242 + t, "worker", 6, 0);
  }
  double c0 = cpu_s();
  uint64_t written = 0, batch = 0;
  unsigned t = 0;
  while (written < events) {
    /* Python-shaped: a thread runs a burst of its own calls, then another
     * thread (a ring's worth of records at a time, as a drain sees). */
    if (python && ++batch % 64 == 0) t = (t + 1) % nthreads;
    uint64_t r = next_rand();
    clock[t] += python ? 40 + r % 2000 : 60;
    bool enter = python ? (depth[t] == 0 ||
                           (depth[t] < DEPTH_MAX && (r >> 20) % 2 == 0))
                        : depth[t] == 0;
    if (enter) {
      uint32_t id = python ? id_of((unsigned)((r >> 32) % NAMES)) : id_of(0);
      stack[t][depth[t]++] = (open_call){id, clock[t]};
      tr_wstream_enter(s, 4242 + t, TR_CAT_PYTHON, id, clock[t]);
      continue;
    }
    open_call *c = &stack[t][--depth[t]];
    tr_arg a = {.key = "n", .klen = 1, .type = TR_ARG_INT, .v.i = (int64_t)r};
    bool with_arg = python && (r >> 40) % 32 == 0;
    tr_wstream_slice(s, 4242 + t, TR_CAT_PYTHON, c->id, c->ts,
                     clock[t] - c->ts, false, with_arg ? &a : NULL,
                     with_arg ? 1 : 0);
    written++;
    if (written % 40000 == 0) tr_writer_lane_flush(w, 0, false);
  }
  tr_wstream_close(s);
  tr_writer_lane_flush(w, 0, true);
  tr_writer_close(w);
  rc = tr_writer_wait(w);
  double c1 = cpu_s();
  uint64_t ev, dropped, bytes;
  tr_writer_stats(w, &ev, &dropped, &bytes);
  tr_writer_free(w);
  close(fd);
  if (rc < 0 || dropped != 0) {
    fprintf(stderr, "fmtbench: write failed (%d), %" PRIu64 " dropped\n", rc,
            dropped);
    return 1;
  }
  printf("events=%" PRIu64 " bytes=%" PRIu64
         " cpu_s=%.3f events_per_cpu_s=%.3g\n",
         ev, bytes, c1 - c0, (double)ev / (c1 - c0));
  return 0;
}

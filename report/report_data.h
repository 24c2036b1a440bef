/* report_data.h: what `traced report` accumulates: processes, threads,
 * their pending calls, and each function's statistics per process; shared
 * by the files that build it (report.c, nest.c) and print it
 * (report_print.c).  Private to report/. */
#ifndef TRACED_REPORT_DATA_H
#define TRACED_REPORT_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/intern.h"
#include "common/map.h"
#include "report.h"

/* Sums of durations wrap instead of overflowing (undefined behaviour): a
 * hostile file may hold durations near 2^63; real ones never get close. */
#define WADD(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define WSUB(a, b) ((int64_t)((uint64_t)(a) - (uint64_t)(b)))

/* e - s for e >= s, at most INT64_MAX. */
static inline int64_t tr_report_span(int64_t s, int64_t e) {
  uint64_t d = (uint64_t)e - (uint64_t)s;
  return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* Per function, the topmost calls below a finished call (nest.c). */
typedef struct topmap topmap;

typedef struct proc {
  int64_t pid;
  char *name; /* NULL: no process_name */
  size_t name_len;
  bool has_sort;
  int64_t sort_index;
  bool has_meta_dropped;
  uint64_t meta_dropped, lost;
  uint64_t events, unfinished, threads;
} proc;

/* A finished call kept until its caller's event claims it (end-ordered
 * input), or an open call (start-ordered input). */
typedef struct entry {
  int64_t start, end;
  uint32_t fn, stat;
  topmap *map; /* end-ordered: topmost calls below, by function */
} entry;

typedef struct bopen {
  int64_t start;
  uint32_t fn;
} bopen;

enum { MODE_UNKNOWN = 0, MODE_END_ORDER = 1, MODE_START_ORDER = 2 };

typedef struct thread {
  int64_t pid, tid;
  uint32_t proc;
  int mode;
  entry *v;
  size_t n, cap;
  bopen *b; /* B events waiting for their E */
  size_t bn, bcap;
  topmap *active; /* start-ordered: open calls per function */
  bool any_ts;
  int64_t last_ts;
} thread;

typedef struct stat_rec {
  uint32_t proc, fn;
  tr_report_fn s;
} stat_rec;

struct tr_report {
  tr_intern fns;  /* function names, by id */
  tr_map procmap; /* pid -> index in procs */
  /* (pid, tid), keyed by hash -> index in threads */
  tr_map threadmap;
  tr_map statmap; /* proc << 32 | fn -> index in stats */
  proc *procs;
  size_t nprocs, capprocs;
  thread *threads;
  size_t nthreads, capthreads;
  stat_rec *stats;
  size_t nstats, capstats;
  uint64_t events, unfinished, misnested;
  bool any_ts;
  int64_t first_ts, last_ts;
  /* the source */
  char *path;
  int format;
  bool compressed, cut_short;
  uint64_t skipped;
  /* traced's cut marker: the trace stopped at its size bound or at a
   * failed write; cut_dropped events were dropped from then on. */
  char *cut_why;
  uint64_t cut_dropped;
};

/* Grows a vector of `size`-byte elements to hold one more.  0 or
 * -ENOMEM. */
int tr_report_grow(void **v, size_t *cap, size_t n, size_t size);

/* The index of process `proc`'s statistics of function fn in r->stats,
 * added (zero) when new; or -ENOMEM. */
int64_t tr_report_stat(tr_report *r, uint32_t proc, uint32_t fn);

#endif

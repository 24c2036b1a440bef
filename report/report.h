/* report.h: `traced report`: the profile of a trace — per process and
 * overall, each function's calls, self time and total time, the table a
 * cProfile user expects — as text or as JSON.
 *
 * Rules (docs/report.md has the reasoning):
 *   * A call is an X event or a B/E pair (Perfetto: SLICE_BEGIN/END).
 *     Calls nest per thread by their times; unfinished calls (ended at
 *     their thread's last timestamp) count with their recorded duration.
 *   * self (cProfile's tottime) = a call's duration minus its direct
 *     children's durations on the same thread.
 *   * total (cumtime) of a function counts only its outermost calls on
 *     each thread, so a recursive function's time is counted once;
 *     primitive calls are those outermost calls (cProfile's "3/1").
 *
 * Memory grows with the distinct functions, processes and threads and with
 * the calls waiting for their caller: an X event is written when the call
 * returns, after its callees, so a finished call is kept (32 bytes, plus
 * the distinct names below it) until its caller's event arrives. */
#ifndef TRACED_REPORT_H
#define TRACED_REPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "trace_read.h"

typedef enum tr_report_sort {
  TR_SORT_BOTH = 0, /* two tables: by total, then by self */
  TR_SORT_TOTAL = 1,
  TR_SORT_SELF = 2,
  TR_SORT_CALLS = 3,
  TR_SORT_NAME = 4,
} tr_report_sort;

typedef struct tr_report_opts {
  int sort;     /* tr_report_sort */
  unsigned top; /* rows per table; 0: all */
  bool has_pid; /* only this process */
  int64_t pid;
} tr_report_opts;

/* One function's numbers (in one process, or overall). */
typedef struct tr_report_fn {
  uint64_t calls;      /* every call */
  uint64_t primitive;  /* calls with no call of the same function above
                          them on their thread */
  uint64_t unfinished; /* calls still open when their thread ended */
  int64_t self_ns;     /* tottime */
  int64_t total_ns;    /* cumtime */
} tr_report_fn;

typedef struct tr_report tr_report;

int tr_report_new(tr_report **out);
void tr_report_free(tr_report *r);

/* Adds one event read from the trace.  Returns 0 or -ENOMEM. */
int tr_report_add(tr_report *r, const tr_trace_event *ev);

/* Ends the input: calls still open (a B without its E) end at their
 * thread's last timestamp as unfinished.  Returns 0 or -ENOMEM. */
int tr_report_finish(tr_report *r);

/* What the reader said about the input, for the header. */
void tr_report_set_source(tr_report *r, const char *path, int format,
                          bool compressed, bool cut_short, uint64_t skipped);

/* A function's numbers in process `pid` (overall when `overall`).
 * Returns false when it made no call there.  For tests. */
bool tr_report_lookup(const tr_report *r, bool overall, int64_t pid,
                      const char *name, tr_report_fn *out);

/* Writes the report.  Returns 0 or -EIO when the stream failed. */
int tr_report_print_text(tr_report *r, FILE *f, const tr_report_opts *o);
int tr_report_print_json(tr_report *r, FILE *f, const tr_report_opts *o);

/* Reads the trace at `path` and prints its text report to `out`; errors go
 * to `err` prefixed with `who` (e.g. "traced run").  Returns 0 or a
 * negative errno.  For `traced run --report`. */
int tr_report_file(const char *path, FILE *out, FILE *err, const char *who);

/* Reads `path` into a new report (which the caller frees).  Errors are
 * printed to `err` as "<who>: <path>: <why>".  Returns 0 or a negative
 * errno. */
int tr_report_load(const char *path, FILE *err, const char *who,
                   tr_report **out);

/* Whether process `pid` appears in the report. */
bool tr_report_has_pid(const tr_report *r, int64_t pid);

#endif

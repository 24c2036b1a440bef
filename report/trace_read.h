/* trace_read.h: reads a trace file back into a stream of events, one at a
 * time: traced's Chrome Trace Event JSON (object or array form, a file
 * cut short included), the same gzip-compressed, other producers' Chrome
 * JSON (B/E pairs, unordered keys), and Perfetto protobuf traces.
 *
 * The reader streams: it holds a fixed input buffer, the current event and
 * (for Perfetto traces) the interned names and track descriptors, never the
 * whole file.  The format is recognised from the content, not from the
 * file name: gzip is undone first (zlib reads uncompressed files
 * unchanged), then a '{' or '[' means JSON and a protobuf field 1 tag
 * means a Perfetto trace.
 *
 * Times are integer nanoseconds: JSON's microseconds with three decimals
 * convert exactly; more decimals are rounded to the nearest nanosecond. */
#ifndef TRACED_TRACE_READ_H
#define TRACED_TRACE_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tr_trace_format {
  TR_TRACE_JSON = 0,
  TR_TRACE_PERFETTO = 1,
} tr_trace_format;

typedef enum tr_ev_kind {
  TR_EV_COMPLETE = 0,     /* a call with ts and dur (JSON "X") */
  TR_EV_BEGIN = 1,        /* a call's start (JSON "B", Perfetto SLICE_BEGIN) */
  TR_EV_END = 2,          /* the innermost open call's end ("E", SLICE_END) */
  TR_EV_INSTANT = 3,      /* "i"/"I", Perfetto INSTANT */
  TR_EV_COUNTER = 4,      /* "C", Perfetto COUNTER */
  TR_EV_LOST = 5,         /* traced's "events lost (ring full)" marker */
  TR_EV_OTHER = 6,        /* any other event (async, flow, ...) */
  TR_EV_PROCESS_NAME = 7, /* metadata: name = the process's name */
  TR_EV_THREAD_NAME = 8,  /* metadata: name = the thread's name */
  TR_EV_SORT_INDEX = 9,   /* metadata: process_sort_index */
  TR_EV_META = 10,        /* other metadata */
  TR_EV_CUT = 11,         /* traced's "trace cut short (...)" marker: the
                             size bound or a failed write; count = events
                             dropped from then on, name = the reason */
} tr_ev_kind;

/* The cut marker's name starts so (output/writer.c, tr_writer_cut_note),
 * and ends ": N events dropped". */
#define TR_CUT_NAME_PREFIX "traced: trace cut short ("

/* Metadata kinds come last: an event with kind < TR_EV_PROCESS_NAME is a
 * trace event proper (counted as an event, like traced's summary does). */
#define TR_EV_IS_META(k) ((k) >= TR_EV_PROCESS_NAME)

typedef struct tr_trace_event {
  int kind; /* tr_ev_kind */
  int64_t pid, tid;
  bool has_ts;
  int64_t ts_ns;    /* start */
  int64_t dur_ns;   /* TR_EV_COMPLETE only, >= 0 */
  const char *name; /* borrowed until the next tr_trace_next(); not NUL-
                       terminated; for *_NAME metadata, the name given */
  size_t name_len;
  bool unfinished;    /* "args":{"unfinished":true}: ended at its thread's
                         last timestamp, not by a return */
  bool has_dropped;   /* process_name/thread_name "args":{"dropped":N} */
  uint64_t dropped;   /* ... */
  uint64_t count;     /* TR_EV_LOST: events lost; TR_EV_CUT: dropped */
  int64_t sort_index; /* TR_EV_SORT_INDEX */
} tr_trace_event;

/* Makes ev, an instant, a TR_EV_CUT when its name is traced's cut marker
 * (TR_CUT_NAME_PREFIX ... ": N events dropped"), with N as its count. */
void tr_trace_mark_cut(tr_trace_event *ev);

typedef struct tr_trace tr_trace;

/* Opens `path` ("-": standard input) and recognises its format.  Returns 0,
 * or a negative errno with a message in err (e.g. "No such file or
 * directory", "not a trace: ...", "the file is empty"). */
int tr_trace_open_path(tr_trace **out, const char *path, char *err,
                       size_t errsz);

/* The same over `n` bytes at `data` (borrowed until tr_trace_close();
 * uncompressed JSON or Perfetto only). */
int tr_trace_open_mem(tr_trace **out, const void *data, size_t n, char *err,
                      size_t errsz);

/* Reads the next event into *ev.  Returns 1, 0 at the end of the trace
 * (see tr_trace_cut_short), or a negative errno when the input is not a
 * trace from here on (tr_trace_error says where and why; -EBADMSG for
 * malformed input). */
int tr_trace_next(tr_trace *t, tr_trace_event *ev);

/* Why the last call failed. */
const char *tr_trace_error(const tr_trace *t);

tr_trace_format tr_trace_get_format(const tr_trace *t);
bool tr_trace_compressed(const tr_trace *t);

/* After the end: the input stopped before the trace was closed (a JSON
 * file that ends inside its event array, a gzip stream or a Perfetto
 * packet cut short).  Every complete event before the cut was returned. */
bool tr_trace_cut_short(const tr_trace *t);

/* Events passed over because a field the report needs is missing or
 * unusable (no "ph", an X without ts, a pid that is not a number...). */
uint64_t tr_trace_skipped(const tr_trace *t);

void tr_trace_close(tr_trace *t);

#endif

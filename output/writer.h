/* writer.h: one interface over every trace output format: Chrome Trace
 * Event JSON (docs/daemon.md "Output format"), the same JSON compressed
 * with gzip in the daemon, and Perfetto's protobuf trace (docs/formats.md).
 *
 * A session owns one tr_writer over its output descriptor.  Each process
 * recording into the session writes through its own tr_wstream on that
 * writer, opened when it joins and closed when it leaves: a stream knows
 * the process's pid and how to read its string table, which lets a
 * backend intern names per process (Perfetto) or cache their escaped form
 * (JSON).  Events name things by the process's string ids; the writer
 * resolves an id through the stream's tr_name_fn only when it needs the
 * bytes.
 *
 * Backends implement tr_writer_ops (writer_json.c, writer_pftrace.c) and
 * are picked by tr_writer_open() (formats.h) from the session's format;
 * callers never see which one they write to.  Memory per writer is fixed (one
 * output buffer, one compressor) and per stream grows only with the distinct
 * names and threads it writes.
 *
 * Errors: after the first failed write(2) a writer logs once, writes
 * nothing more and counts every later event in `dropped` (a partial write
 * would leave a broken record for later ones to follow).  Everything here
 * runs on the daemon's one thread. */
#ifndef TRACED_WRITER_H
#define TRACED_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_args.h"

/* The output format, fixed at session creation (SESSION_CREATE "format",
 * PROTOCOL.md section 2). */
typedef enum tr_format {
  TR_FORMAT_JSON = 0,     /* "json" */
  TR_FORMAT_JSON_GZ = 1,  /* "json.gz": the JSON, gzip-compressed */
  TR_FORMAT_PERFETTO = 2, /* "perfetto": Perfetto's protobuf trace */
} tr_format;

/* The category of an event. */
enum tr_cat {
  TR_CAT_PYTHON = 0, /* Python calls */
  TR_CAT_C = 1,      /* C functions called from Python */
  TR_CAT_API = 2,    /* spans, instants, counters from the C/Python API */
  TR_CAT_TRACED = 3, /* the tracer's own markers (lost events) */
};
#define TR_CAT_COUNT 4

/* Reads string `id` of a stream's process: sets *s to its bytes (raw, not
 * NUL-terminated, valid until the next call) and *len.  Returns false for
 * an id that names no string. */
typedef bool (*tr_name_fn)(void *ctx, uint32_t id, const char **s,
                           uint32_t *len);

typedef struct tr_writer tr_writer;
typedef struct tr_wstream tr_wstream;

/* What a backend implements.  Event functions return 0, or -EINVAL when a
 * name id does not resolve (nothing is written; the caller counts the
 * event as malformed).  Events lost to a full buffer that cannot be
 * written, or that are too large, are counted in `dropped` and return 0. */
typedef struct tr_writer_ops {
  int (*stream_open)(tr_wstream *s);
  void (*stream_close)(tr_wstream *s);
  /* A call began.  Backends that write slices as a begin and an end
   * (Perfetto) write the begin now; others leave this NULL and write the
   * whole slice at its end. */
  int (*enter)(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
               uint64_t ts);
  int (*slice)(tr_wstream *s, uint32_t tid, int cat, uint32_t name, uint64_t ts,
               uint64_t dur, bool unfinished, const tr_arg *args,
               uint32_t nargs);
  int (*instant)(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                 uint64_t ts, const tr_arg *args, uint32_t nargs);
  int (*counter)(tr_wstream *s, uint32_t tid, uint32_t name, uint64_t ts,
                 double value, const tr_arg *args, uint32_t nargs);
  void (*lost)(tr_wstream *s, uint32_t tid, uint64_t ts, uint64_t count);
  void (*process_name)(tr_wstream *s, const char *name, size_t len,
                       uint64_t dropped);
  void (*thread_name)(tr_wstream *s, uint32_t tid, const char *name, size_t len,
                      uint64_t dropped);
  void (*sort_index)(tr_wstream *s, uint32_t index);
  void (*labels)(tr_wstream *s, const char *labels, size_t len);
  int (*flush)(tr_writer *w);
  int (*finish)(tr_writer *w);
  void (*free)(tr_writer *w);
} tr_writer_ops;

/* The part of every writer callers may read; backends embed it first. */
struct tr_writer {
  const tr_writer_ops *ops;
  tr_format format;
  const char *label; /* borrowed, for log lines, e.g. "session=3" */
  uint64_t bytes;    /* bytes written to the file (compressed for gzip) */
  uint64_t events;   /* non-metadata events written or buffered */
  uint64_t dropped;  /* events lost to write errors or size limits */
  /* Streaming writeback (tr_writer_write_all): the file offset where this
   * writer's bytes begin, -1 when the output is no regular file; and how
   * many of them have been handed to writeback. */
  int64_t wb_base;
  uint64_t wb_started;
};

/* Streaming writeback begins once a trace has TR_WRITEBACK_AFTER bytes;
 * from then on, each TR_WRITEBACK_CHUNK more is handed to writeback and
 * the chunk before it dropped from the page cache. */
#define TR_WRITEBACK_AFTER (1024ull * 1024u * 1024u)
#define TR_WRITEBACK_CHUNK (32u * 1024u * 1024u)

/* One process's events into a writer. */
struct tr_wstream {
  tr_writer *w;
  uint32_t pid;
  tr_name_fn name;
  void *name_ctx;
  void *impl; /* the backend's per-stream state */
};

/* Writes out what is buffered: called on the drain timer (10 ms), so a
 * file on disk lags the producers by at most a tick (gzip: by at most its
 * sync interval, docs/formats.md).  Returns 0 or the sticky negative errno
 * of a failed write. */
static inline int tr_writer_flush(tr_writer *w) { return w->ops->flush(w); }

/* Writes the footer and everything buffered.  Idempotent.  Streams must be
 * closed first. */
static inline int tr_writer_finish(tr_writer *w) { return w->ops->finish(w); }

/* For backends: the first failed write of `w` (a negative errno), logged
 * once; the `lost` events that were buffered move from `events` to
 * `dropped`.  The backend then writes nothing more. */
void tr_writer_failed(tr_writer *w, int err, uint64_t lost);

/* Frees the writer (does not close its descriptor).  NULL is a no-op. */
void tr_writer_free(tr_writer *w);

/* Opens pid's stream; `name` reads the process's strings.  Returns 0 or
 * -ENOMEM.  Close it with tr_wstream_close before finishing the writer. */
int tr_wstream_open(tr_writer *w, uint32_t pid, tr_name_fn name, void *name_ctx,
                    tr_wstream **out);
void tr_wstream_close(tr_wstream *s);

/* ---- events: `name` is a string id of the stream's process ---------- */

static inline int tr_wstream_enter(tr_wstream *s, uint32_t tid, int cat,
                                   uint32_t name, uint64_t ts) {
  return s->w->ops->enter ? s->w->ops->enter(s, tid, cat, name, ts) : 0;
}

/* A call [ts, ts + dur] on thread tid; `unfinished`: still open when its
 * thread's recording ended.  Every slice follows a successful
 * tr_wstream_enter for the same call, on the same thread, innermost calls
 * first (a backend that wrote the begin at the enter resolved the name
 * there, and does not look at it again). */
static inline int tr_wstream_slice(tr_wstream *s, uint32_t tid, int cat,
                                   uint32_t name, uint64_t ts, uint64_t dur,
                                   bool unfinished, const tr_arg *args,
                                   uint32_t nargs) {
  return s->w->ops->slice(s, tid, cat, name, ts, dur, unfinished, args, nargs);
}

static inline int tr_wstream_instant(tr_wstream *s, uint32_t tid, int cat,
                                     uint32_t name, uint64_t ts,
                                     const tr_arg *args, uint32_t nargs) {
  return s->w->ops->instant(s, tid, cat, name, ts, args, nargs);
}

/* A counter's new value; NaN and infinities are kept where the format can
 * hold them (JSON writes null).  With nargs > 0 the numeric args are the
 * counter's series (traced.counter("queue", depth=3, bytes=10)) and
 * `value` is unused: one JSON event with those args, one Perfetto counter
 * track per series, named "<name> <key>" as Perfetto names the series of
 * a JSON counter. */
static inline int tr_wstream_counter(tr_wstream *s, uint32_t tid, uint32_t name,
                                     uint64_t ts, double value,
                                     const tr_arg *args, uint32_t nargs) {
  return s->w->ops->counter(s, tid, name, ts, value, args, nargs);
}

/* A marker where a producer dropped `count` events (ring full). */
static inline void tr_wstream_lost(tr_wstream *s, uint32_t tid, uint64_t ts,
                                   uint64_t count) {
  s->w->ops->lost(s, tid, ts, count);
}

/* ---- metadata (not counted in `events`): raw bytes, not string ids ---- */

/* The process's display name and the events its producers dropped. */
static inline void tr_wstream_process_name(tr_wstream *s, const char *name,
                                           size_t len, uint64_t dropped) {
  s->w->ops->process_name(s, name, len, dropped);
}

static inline void tr_wstream_thread_name(tr_wstream *s, uint32_t tid,
                                          const char *name, size_t len,
                                          uint64_t dropped) {
  s->w->ops->thread_name(s, tid, name, len, dropped);
}

/* The process's place in the viewer's list (1: first). */
static inline void tr_wstream_sort_index(tr_wstream *s, uint32_t index) {
  s->w->ops->sort_index(s, index);
}

/* A free-form description of the process ("ppid 41, ..."). */
static inline void tr_wstream_labels(tr_wstream *s, const char *labels,
                                     size_t len) {
  s->w->ops->labels(s, labels, len);
}

/* ---- for backends ---------------------------------------------------- */

/* Records where fd's bytes begin, for streaming writeback (regular files
 * only); tr_writer_open calls it on each new writer. */
void tr_writer_writeback_init(tr_writer *w, int fd);

/* write(2)s all of p[0..n) to fd, retrying EINTR and short writes, and
 * adds what was written to w->bytes.  Returns 0 or a negative errno. */
int tr_writer_write_all(tr_writer *w, int fd, const void *p, size_t n);

#endif

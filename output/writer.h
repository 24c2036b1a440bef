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
 * Threads.  A writer has `nlanes` lanes, one per thread that writes into
 * it (the daemon's drain worker i uses lane i); a lane is used by one
 * thread at a time.  A stream is bound to one lane for its life: opening
 * it, each of its events and its metadata, and closing it are done by
 * that lane's thread.  A lane formats into a buffer of its own; a full
 * buffer, and the lane's buffer at the end of each of its thread's passes
 * (tr_writer_lane_flush), is sealed into a chunk, numbered in sealing
 * order, and the writer's own I/O thread (sink.h) writes the chunks in
 * that order.  A stream's events therefore reach the file in the order it
 * wrote them; streams of different lanes interleave chunk by chunk.  The
 * functions below that say "thread-safe" may be called from any thread;
 * the others belong to the lane's thread, or (open, close, free) to the
 * one owner of the writer.
 *
 * Life: tr_writer_open (formats.h); streams open, write and close; each
 * lane's thread calls tr_writer_lane_flush after each pass; at the end,
 * with every stream closed, each lane flushes with force, then
 * tr_writer_close; the I/O thread writes what is left and the footer and
 * becomes done (tr_writer_done, or the tr_writer_set_notify callback);
 * then tr_writer_free.
 *
 * Backends implement tr_writer_ops (writer_json.c, writer_pftrace.c) and
 * are picked by tr_writer_open() (formats.h) from the session's format;
 * callers never see which one they write to.  Memory per writer is one
 * buffer per lane in use plus the queue of sealed chunks (bounded by the
 * caller through tr_writer_backlog), and per stream grows only with the
 * distinct names and threads it writes.
 *
 * Errors: after the first failed write(2) a writer logs once, writes
 * nothing more, and counts every event it had not written, and every
 * later one, in `dropped` (a partial write would leave a broken record for
 * later ones to follow): events + dropped stays what was written to it.
 * It cuts the file back to the end of its last whole chunk, so of its last
 * whole event, and writes its ending there if it can (a marker saying the
 * trace was cut short, and the format's footer), so that the file stays a
 * trace readers load.
 *
 * Size: with a bound (tr_writer_set_max_bytes) the file never holds more
 * bytes; the first chunk that would pass it (less TR_WRITER_END_RESERVE
 * for the ending) fills the trace, and every event from then on is dropped
 * and counted the same way, the trace ending with the same marker. */
#ifndef TRACED_WRITER_H
#define TRACED_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_args.h"
#include "sink.h"

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
  /* On the thread that sealed chunk c (outside the writer's mutex), once
   * it is numbered and before it may be written: gzip compresses it here.
   * NULL when there is nothing to do.  Returns 0 or a negative errno (the
   * writer then fails when the I/O thread reaches c). */
  int (*seal)(tr_writer *w, unsigned lane, tr_chunk *c);
  /* On the I/O thread: writes chunk c (NULL: its bytes buf[off..len) as
   * they are), then, once after the last chunk, the footer (NULL: none).
   * Each returns 0 or the negative errno of a failed write. */
  int (*io_chunk)(tr_writer *w, tr_chunk *c);
  int (*io_end)(tr_writer *w);
  void (*free)(tr_writer *w);
} tr_writer_ops;

/* A lane's formatting state: used by its thread alone, but for the
 * counters, which it alone writes and tr_writer_stats reads.  Each lane
 * has a cache line of its own. */
typedef struct tr_lane {
  _Alignas(64) tr_chunk *c; /* being filled; NULL when none could be had */
  /* CLOCK_MONOTONIC_COARSE ns when a flush first saw c hold bytes; 0 when
   * c is empty. */
  uint64_t since;
  _Atomic uint64_t events;  /* events formatted into this lane */
  _Atomic uint64_t dropped; /* events this lane refused or discarded */
  uint64_t bytes; /* bytes formatted into it (the lane's thread only) */
  /* With history: the last bytes of the stream before the chunk this lane
   * sealed last, for its seal hook (tr_sink_seal). */
  uint8_t *dict;
  size_t dict_len;
  bool unkicked; /* sealed a chunk since the last pass without waking the
                    I/O thread */
} tr_lane;

/* The part of every writer callers may read; backends embed it first. */
struct tr_writer {
  const tr_writer_ops *ops;
  tr_format format;
  const char *label; /* borrowed, for log lines, e.g. "session=3" */
  /* Bytes the chunk numbered 0 leaves out: the JSON writer starts each
   * event with its separator, and the file's first event has none. */
  size_t first_skip;
  /* When tr_writer_lane_flush seals without `force`: once the buffer
   * holds seal_min bytes or has held bytes for seal_age_ns; both 0: any
   * bytes (gzip sets them, gzout.h). */
  size_t seal_min;
  uint64_t seal_age_ns;
  /* Bytes of the stream that precede a chunk handed to the seal hook
   * (tr_lane.dict): gzip primes each piece's compressor with them.  0:
   * none. */
  size_t history;
  /* A lane seals its buffer once the next event would take it past this
   * many bytes: the chunk size, or less under a size bound, so that the
   * trace is cut within a small part of its bound (set_max_bytes). */
  size_t seal_at;
  unsigned nlanes;
  tr_lane *lanes;
  tr_sink sink; /* the I/O side */
};

/* Streaming writeback begins once a trace has TR_WRITEBACK_AFTER bytes;
 * from then on, each TR_WRITEBACK_CHUNK more is handed to writeback and
 * the chunk before it dropped from the page cache. */
#define TR_WRITEBACK_AFTER (1024ull * 1024u * 1024u)
#define TR_WRITEBACK_CHUNK (32u * 1024u * 1024u)

/* Room a trace keeps under its size bound for its ending: the marker
 * saying it was cut short and the format's footer. */
#define TR_WRITER_END_RESERVE 1024u

/* One process's events into a writer. */
struct tr_wstream {
  tr_writer *w;
  unsigned lane; /* the only lane this stream writes into */
  uint32_t pid;
  tr_name_fn name;
  void *name_ctx;
  void *impl; /* the backend's per-stream state */
};

/* Called by lane's thread at the end of each of its passes (about every
 * 10 ms): seals the lane's buffer into a chunk for the I/O thread.  Plain
 * JSON and Perfetto seal any bytes, so the file lags the producers by
 * about a pass; gzip seals once the buffer holds TR_GZ_CHUNK_MIN bytes or
 * its oldest byte is TR_GZ_SYNC_NS old (gzout.h), or with `force` (the
 * session's end). */
void tr_writer_lane_flush(tr_writer *w, unsigned lane, bool force);

/* Bytes formatted into lane `lane` so far (uncompressed): what the
 * daemon's fairness charges a drain for (docs/pipeline.md).  The lane's
 * thread only. */
static inline uint64_t tr_writer_lane_bytes(const tr_writer *w, unsigned lane) {
  return lane < w->nlanes ? w->lanes[lane].bytes : 0;
}

/* Thread-safe: bytes sealed (queued, or being compressed) and not yet
 * written, for the caller's back-pressure: it stops feeding the writer
 * while this is above its bound, since the queue itself never blocks. */
uint64_t tr_writer_backlog(const tr_writer *w);

/* Called once, by the writer's owner, after every stream was closed and
 * every lane flushed with force: the I/O thread writes everything queued,
 * then the footer, then becomes done.  Does not block. */
void tr_writer_close(tr_writer *w);

/* Thread-safe: whether the I/O thread finished after tr_writer_close;
 * then *rc (if not NULL) is 0 or the negative errno of the first failed
 * write. */
bool tr_writer_done(const tr_writer *w, int *rc);

/* Bounds the file this writer writes to max_bytes (0: no bound), as
 * `traced run --max-size` does; at least TR_WRITER_END_RESERVE more than
 * the format's head.  Called by the writer's owner before any stream
 * writes. */
void tr_writer_set_max_bytes(tr_writer *w, uint64_t max_bytes);

/* Why a trace ended short of its events, once the writer is done (zeros
 * otherwise): *limited, it reached its size bound; *err, the negative
 * errno of its first failed write; *unclosed, its ending could not be
 * written (the file holds whole events but a reader may reject it). */
void tr_writer_cut(const tr_writer *w, bool *limited, int *err, bool *unclosed);

/* For backends' io_end: the marker's text when the trace was cut short
 * (size bound, failed write), with the events dropped; 0 when it was not.
 * Writes at most cap bytes, no NUL, plain ASCII needing no escaping in
 * JSON.  *ts gets the CLOCK_MONOTONIC ns the trace was cut at. */
size_t tr_writer_cut_note(const tr_writer *w, char *buf, size_t cap,
                          uint64_t *ts);

/* Whether the trace is full (its size bound reached): a lane's events
 * are then refused and counted as dropped.  Relaxed, like `failed` in
 * tr_lane_reserve: a lane that sees it late formats a few more, which the
 * I/O thread leaves out and counts. */
static inline bool tr_writer_full(const tr_writer *w) {
  return atomic_load_explicit(&w->sink.limited, memory_order_relaxed);
}

/* Optional, before tr_writer_close: fn(arg) is called on the I/O thread
 * when it becomes done (the daemon passes uv_async_send), so fn must be
 * thread-safe.  The writer may be freed as soon as fn was called. */
void tr_writer_set_notify(tr_writer *w, void (*fn)(void *arg), void *arg);

/* Blocks until the I/O thread has written (or discarded) every chunk
 * sealed so far and, after tr_writer_close, until it is done.  Returns 0
 * or the negative errno of the first failed write.  For tests and
 * single-threaded tools; the daemon's loop never blocks on a writer. */
int tr_writer_wait(tr_writer *w);

/* Thread-safe: the writer's counters, summed over its lanes: events
 * formatted (not metadata) and not lost, events lost to write errors or
 * size limits, bytes written to the file (compressed for gzip).  Exact
 * once the writer is done; while it runs, a moment's view. */
void tr_writer_stats(const tr_writer *w, uint64_t *events, uint64_t *dropped,
                     uint64_t *bytes);

/* Stops the I/O thread (after done; if tr_writer_close was never called,
 * it discards what is queued) and frees the writer.  Does not close its
 * descriptor.  NULL is a no-op. */
void tr_writer_free(tr_writer *w);

/* Opens pid's stream on `lane`; `name` reads the process's strings.
 * Called by the lane's thread.  Returns 0, -ENOMEM or -EINVAL (no such
 * lane).  Close it with tr_wstream_close, on the same thread, before the
 * writer closes. */
int tr_wstream_open(tr_writer *w, unsigned lane, uint32_t pid, tr_name_fn name,
                    void *name_ctx, tr_wstream **out);
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

/* Sets up the base of a new writer (zeroed by the caller) over fd, with
 * nlanes lanes whose buffers are chunk_size bytes.  Returns 0 or -ENOMEM;
 * after a failure the writer can still be freed. */
int tr_writer_init(tr_writer *w, const tr_writer_ops *ops, tr_format format,
                   const char *label, int fd, unsigned nlanes,
                   size_t chunk_size, size_t first_skip);

/* Seals what lane 0 holds as the file's head, written before every
 * numbered chunk; then starts the I/O thread.  Called once, by the
 * backend's open, after it set the writer's seal policy and history.
 * Returns 0 or a negative errno. */
int tr_writer_start(tr_writer *w);

/* tr_lane_reserve's slow path: a buffer for a lane that has none, a full
 * one sealed, or after a failure what the lane holds discarded. */
char *tr_lane_reserve_slow(tr_writer *w, tr_lane *l, size_t need);

/* Where `need` more bytes (at most chunk_size / 2) go in lane l's buffer,
 * which is sealed first if they would take it past seal_at; NULL when the
 * writer failed or no buffer could be had (the caller drops the event). */
static inline char *tr_lane_reserve(tr_writer *w, tr_lane *l, size_t need) {
  tr_chunk *c = l->c;
  /* Relaxed: `failed` only tells lanes to stop early; a lane that sees it
   * late formats a little more, which the I/O thread discards and
   * counts. */
  if (c != NULL && c->len + need <= w->seal_at &&
      !atomic_load_explicit(&w->sink.failed, memory_order_relaxed))
    return c->buf + c->len;
  return tr_lane_reserve_slow(w, l, need);
}

/* Adds n to a lane counter.  Only the lane's thread writes it, so a
 * relaxed load and store do (no locked read-modify-write on the hot
 * path); tr_writer_stats reads it with a relaxed load. */
static inline void tr_lane_count(_Atomic uint64_t *v, uint64_t n) {
  atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + n,
                        memory_order_relaxed);
}

/* Keeps the bytes written since tr_lane_reserve, up to `end`; `counted`:
 * they are an event (not metadata). */
static inline void tr_lane_commit(tr_lane *l, char *end, bool counted) {
  tr_chunk *c = l->c;
  size_t len = (size_t)(end - c->buf);
  l->bytes += len - c->len;
  c->len = len;
  if (counted) {
    c->eventful = true;
    c->events++;
    tr_lane_count(&l->events, 1);
  }
}

/* For io_chunk and io_end: write(2)s all of p[0..n) to the writer's file,
 * retrying EINTR and short writes, and counts the bytes.  Returns 0 or a
 * negative errno. */
int tr_writer_write_all(tr_writer *w, const void *p, size_t n);

#endif

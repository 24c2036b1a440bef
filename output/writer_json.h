/* writer_json.h: the Chrome Trace Event JSON writer backend (plain, and
 * gzip-compressed in the daemon), and its formatter.
 *
 * One event per line, separated by ",\n".  Each lane formats into its own
 * buffer (TR_JSON_BUF_SIZE), every event preceded by its separator; the
 * chunk numbered 0 leaves out its first separator, so the file's first
 * event has none.  Memory does not grow with trace length.  After the
 * first failed write(2) the writer logs once and writes nothing more;
 * every event not written is counted in `dropped`.
 *
 * Plain JSON: while the session runs the file is a JSON array whose "[" is
 * padded with spaces to the length of TR_JSON_OBJECT_HEAD, so a file cut
 * short by a crash still loads (array form); when the writer closes, its
 * I/O thread appends "\n]", overwrites that padded head in place (pwrite)
 * and appends "}\n", so a finished file is the object form
 * {"traceEvents":[...]} that every viewer, VizTracer's vizviewer
 * included, reads.  Outputs that cannot seek stay in array form
 * (docs/daemon.md, "Output format").
 *
 * gzip: the compressed stream holds the object form from its first byte
 * (nothing is rewritten in place); each chunk is compressed by the lane
 * that sealed it, and a file cut short decompresses up to its last whole
 * chunk (gzout.h, docs/formats.md).
 *
 * Timestamps are integer nanoseconds and are printed as microseconds with
 * exactly three decimals, without floating point. */
#ifndef TRACED_WRITER_JSON_H
#define TRACED_WRITER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event_args.h"
#include "gzout.h"
#include "json_escape.h"
#include "writer.h"

#define TR_JSON_BUF_SIZE (256u * 1024u)

/* Each stream caches the escaped form of the names it writes. */
#define TR_NAME_CACHE_SLOTS 2048  /* escaped-name cache entries */
#define TR_NAME_CACHE_MAX_LEN 512 /* longer escaped names are not cached */

typedef struct tr_json {
  tr_writer base; /* first: a tr_json is a tr_writer */
  bool gzip;
  int64_t start; /* file offset of the head, -1: cannot rewrite (plain) */
  tr_gzlane *gz; /* gzip: one compressor per lane, used by its thread */
  tr_gzsum sum;  /* gzip: what the I/O thread has written */
  struct tr_json_idts *idts; /* per lane: its last event's pid, tid, ts */
} tr_json;

#define TR_JSON_OBJECT_HEAD "{\"traceEvents\":["
#define TR_JSON_ARRAY_HEAD "[               "

/* Allocates a writer over fd with nlanes lanes, buffers the file's head
 * (the padded "[" (plain) or TR_JSON_OBJECT_HEAD (gzip)) and starts its
 * I/O thread.  Returns 0, -ENOMEM or -EINVAL.  The writer does not own
 * fd; tr_writer_free frees it. */
int tr_json_open(tr_json **out, int fd, const char *label, bool gzip,
                 unsigned nlanes);

/* ---- the formatter ------------------------------------------------------
 * `name` is already escaped (tr_json_escape) and nlen long; its length
 * must not exceed TR_JSON_ESCAPED_MAX(TR_STRING_MAX_LEN).  Arguments
 * (raw bytes, event_args.h) become "args":{...}: keys and strings escaped,
 * NaN and infinities as null.  An event that does not fit in half the
 * buffer is dropped (counted). */

/* {"ph":"X","cat":..,"name":..,"pid":..,"tid":..,"ts":..,"dur":..}, with
 * "args":{"unfinished":true,...} for calls still open at the end. */
void tr_json_slice(tr_json *w, unsigned lane, int cat, const char *name,
                   size_t nlen, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                   uint64_t dur_ns, bool unfinished, const tr_arg *args,
                   uint32_t nargs);

/* {"ph":"i","s":"t",...}: a thread-scoped instant. */
void tr_json_instant(tr_json *w, unsigned lane, int cat, const char *name,
                     size_t nlen, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                     const tr_arg *args, uint32_t nargs);

/* {"ph":"C",...,"args":{"value":v}}, or with nargs > 0 the args as the
 * counter's series ({"depth":3,"bytes":10}; `value` is then unused).
 * NaN and infinities are written as null (JSON has no spelling for
 * them). */
void tr_json_counter(tr_json *w, unsigned lane, const char *name, size_t nlen,
                     uint32_t pid, uint32_t tid, uint64_t ts_ns, double value,
                     const tr_arg *args, uint32_t nargs);

/* A marker where a producer dropped `count` events (ring full). */
void tr_json_lost(tr_json *w, unsigned lane, uint32_t pid, uint32_t tid,
                  uint64_t ts_ns, uint64_t count);

/* {"ph":"M","name":what,"pid":..,"tid":..,"args":{key:value}}.  `value` is
 * raw bytes (escaped here).  Metadata is not counted in `events`. */
void tr_json_meta(tr_json *w, unsigned lane, const char *what, uint32_t pid,
                  uint32_t tid, const char *key, const char *value,
                  size_t vlen);
/* A process_name or thread_name event that also carries the events its
 * producers dropped: {...,"args":{"name":"...","dropped":N}}. */
void tr_json_meta_name(tr_json *w, unsigned lane, const char *what,
                       uint32_t pid, uint32_t tid, const char *name, size_t len,
                       uint64_t dropped);

/* The same with an integer value: {...,"args":{key:value}}. */
void tr_json_meta_u64(tr_json *w, unsigned lane, const char *what, uint32_t pid,
                      uint32_t tid, const char *key, uint64_t value);

#endif

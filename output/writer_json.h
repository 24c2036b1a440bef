/* writer_json.h: the Chrome Trace Event JSON writer backend (plain, and
 * gzip-compressed in the daemon), and its formatter.
 *
 * One event per line, separated by ",\n".  Output goes through one fixed
 * buffer (TR_JSON_BUF_SIZE), so memory does not grow with trace length.
 * After the first failed write(2) the writer logs once and writes nothing
 * more; every later event is counted in `dropped`.
 *
 * Plain JSON: while the session runs the file is a JSON array whose "[" is
 * padded with spaces to the length of TR_JSON_OBJECT_HEAD, so a file cut
 * short by a crash still loads (array form); tr_json_finish() overwrites
 * that padded head in place (pwrite) and closes with "]}", so a finished
 * file is the object form {"traceEvents":[...]} that every viewer,
 * VizTracer's vizviewer included, reads.  Outputs that cannot seek stay in
 * array form (docs/daemon.md, "Output format").
 *
 * gzip: the compressed stream holds the object form from its first byte
 * (nothing is rewritten in place); a file cut short decompresses up to its
 * last sync flush (gzout.h, docs/formats.md).
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
  int fd;         /* borrowed: the session owns and closes it */
  bool failed;    /* a write failed: nothing more is written */
  bool any;       /* an event was written: the next needs a separator */
  bool finished;
  bool gzip;           /* compressing into `gz` */
  size_t len;          /* bytes in buf */
  uint64_t buf_events; /* events in buf (lost with it if the write fails) */
  char *buf;
  int64_t start; /* file offset of the header, -1: fd cannot seek (plain) */
  tr_gzout gz;
} tr_json;

#define TR_JSON_OBJECT_HEAD "{\"traceEvents\":["
#define TR_JSON_ARRAY_HEAD "[               "

/* Allocates a writer over fd and buffers the file's head: the padded "["
 * (plain) or TR_JSON_OBJECT_HEAD (gzip).  Returns 0, -ENOMEM or -EINVAL
 * (zlib refused).  The writer does not own fd. */
int tr_json_open(tr_json **out, int fd, const char *label, bool gzip);

/* Writes out the buffer (gzip: hands it to the compressor).  Returns 0 or
 * the (sticky) negative errno of the failed write. */
int tr_json_flush(tr_json *w);

/* Writes the closing "]" (and, when it can, turns the file into the object
 * form) or, for gzip, "]}" and the gzip trailer.  Idempotent. */
int tr_json_finish(tr_json *w);

void tr_json_free(tr_json *w);

/* ---- the formatter ------------------------------------------------------
 * `name` is already escaped (tr_json_escape) and nlen long; its length
 * must not exceed TR_JSON_ESCAPED_MAX(TR_STRING_MAX_LEN).  Arguments
 * (raw bytes, event_args.h) become "args":{...}: keys and strings escaped,
 * NaN and infinities as null.  An event that does not fit in half the
 * buffer is dropped (counted). */

/* {"ph":"X","cat":..,"name":..,"pid":..,"tid":..,"ts":..,"dur":..}, with
 * "args":{"unfinished":true,...} for calls still open at the end. */
void tr_json_slice(tr_json *w, int cat, const char *name, size_t nlen,
                   uint32_t pid, uint32_t tid, uint64_t ts_ns, uint64_t dur_ns,
                   bool unfinished, const tr_arg *args, uint32_t nargs);

/* {"ph":"i","s":"t",...}: a thread-scoped instant. */
void tr_json_instant(tr_json *w, int cat, const char *name, size_t nlen,
                     uint32_t pid, uint32_t tid, uint64_t ts_ns,
                     const tr_arg *args, uint32_t nargs);

/* {"ph":"C",...,"args":{"value":v}}, or with nargs > 0 the args as the
 * counter's series ({"depth":3,"bytes":10}; `value` is then unused).
 * NaN and infinities are written as null (JSON has no spelling for
 * them). */
void tr_json_counter(tr_json *w, const char *name, size_t nlen, uint32_t pid,
                     uint32_t tid, uint64_t ts_ns, double value,
                     const tr_arg *args, uint32_t nargs);

/* A marker where a producer dropped `count` events (ring full). */
void tr_json_lost(tr_json *w, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                  uint64_t count);

/* {"ph":"M","name":what,"pid":..,"tid":..,"args":{key:value}}.  `value` is
 * raw bytes (escaped here).  Metadata is not counted in `events`. */
void tr_json_meta(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                  const char *key, const char *value, size_t vlen);
/* A process_name or thread_name event that also carries the events its
 * producers dropped: {...,"args":{"name":"...","dropped":N}}. */
void tr_json_meta_name(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                       const char *name, size_t len, uint64_t dropped);

/* The same with an integer value: {...,"args":{key:value}}. */
void tr_json_meta_u64(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                      const char *key, uint64_t value);

#endif

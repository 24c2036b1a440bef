/* writer_json.c: streams one session's events as Chrome Trace Event JSON
 * through a fixed buffer, formatting numbers by hand on the hot path. */
#include "writer_json.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/map.h"
#include "common/platform.h"
#include "proto/traced_proto.h"
#include "utf8.h"

/* Room for everything but the name in the largest event (a counter with a
 * 20-digit pid, tid and timestamp and a 24-character number). */
#define EVENT_OVERHEAD 256u

#define PUT_LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* ---- numbers --------------------------------------------------------------
 */

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536"
    "37383940414243444546474849505152535455565758596061626364656667686970717273"
    "7475767778798081828384858687888990919293949596979899";

static inline void put_pair(char *p, unsigned v) {
  p[0] = digit_pairs[2 * v];
  p[1] = digit_pairs[2 * v + 1];
}

/* Exactly 4 digits of v < 10000, zero-padded. */
static inline void put_4(char *p, unsigned v) {
  put_pair(p, v / 100);
  put_pair(p + 2, v % 100);
}

/* Exactly 8 digits of v < 10^8, zero-padded: the digits of both halves
 * at once, in the lanes of one 64-bit word (little-endian: the first
 * digit in the lowest byte).  Checked against printf("%08u") for every
 * v < 10^8. */
static inline void put_8(char *p, uint32_t v) {
  uint64_t y = (uint64_t)(v / 10000) | ((uint64_t)(v % 10000) << 32);
  /* y / 100 and y % 100 in each 32-bit lane (exact below 43699)... */
  uint64_t z = ((y * 10486) >> 20) & 0x0000007F0000007Full;
  uint64_t u = z | ((y - z * 100) << 16);
  /* ... then / 10 and % 10 in each 16-bit lane (exact below 179). */
  uint64_t t = ((u * 103) >> 10) & 0x000F000F000F000Full;
  uint64_t r = (t | ((u - t * 10) << 8)) | 0x3030303030303030ull;
  memcpy(p, &r, 8);
}

/* v < 10^8 without leading zeros, in 32-bit arithmetic. */
static char *put_u32_small(char *p, uint32_t v) {
  if (v < 10000) {
    if (v < 10) {
      *p = (char)('0' + v);
      return p + 1;
    }
    if (v < 100) {
      put_pair(p, v);
      return p + 2;
    }
    if (v < 1000) {
      *p = (char)('0' + v / 100);
      put_pair(p + 1, v % 100);
      return p + 3;
    }
    put_4(p, v);
    return p + 4;
  }
  p = put_u32_small(p, v / 10000);
  put_4(p, v % 10000);
  return p + 4;
}

/* Four calls per event (pid, tid, ts, dur): in chunks of 8 digits with
 * 32-bit arithmetic, no loop over digits and no variable-length memcpy. */
static char *put_u64(char *p, uint64_t v) {
  if (v < 100000000u) return put_u32_small(p, (uint32_t)v);
  p = put_u64(p, v / 100000000u);
  put_8(p, (uint32_t)(v % 100000000u));
  return p + 8;
}

static char *put_i64(char *p, int64_t v) {
  if (v >= 0) return put_u64(p, (uint64_t)v);
  *p++ = '-';
  return put_u64(p, (uint64_t)0 - (uint64_t)v);
}

/* ".ddd": the three decimals of a microsecond count. */
static inline char *put_frac(char *p, unsigned frac) {
  p[0] = '.';
  p[1] = (char)('0' + frac / 100);
  memcpy(p + 2, digit_pairs + 2 * (frac % 100), 2);
  return p + 4;
}

/* Nanoseconds as microseconds with exactly three decimals. */
static char *put_us(char *p, uint64_t ns) {
  p = put_u64(p, ns / 1000);
  return put_frac(p, (unsigned)(ns % 1000));
}

/* Shortest of %.15g/%.16g/%.17g that reads back as the same double. */
static char *put_double(char *p, double v) {
  if (!isfinite(v)) return PUT_LIT(p, "null");
  char tmp[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
    if (prec == 17 || strtod(tmp, NULL) == v) break;
  }
  size_t n = strlen(tmp);
  memcpy(p, tmp, n);
  return p + n;
}

/* A lane's last `P,"tid":T,"ts":H`: the pid and tid of its last event
 * and the leading digits H of its timestamp in microseconds (all but the
 * last 8; none below 10^8 us).  A drain worker formats a ring's records
 * in a row, so most events repeat all three, and copying them beats
 * formatting three numbers: a third of the JSON writer's time went to
 * them (docs/benchmarks.md, "Cheaper bytes").  Used by the lane's thread
 * alone; a cache line of its own. */
typedef struct tr_json_idts {
  _Alignas(64) uint32_t pid;
  uint32_t tid;
  uint64_t hi; /* the timestamp in us / 10^8 */
  uint8_t len; /* bytes of s; 0: nothing cached yet */
  char s[47];  /* at most 10 + 7 + 10 + 6 + 9 bytes */
} tr_json_idts;

/* ---- buffer ------------------------------------------------------------ */

static const tr_writer_ops json_ops, json_gz_ops;

int tr_json_open(tr_json **out, int fd, const char *label, bool gzip,
                 unsigned nlanes) {
  tr_json *w = calloc(1, sizeof(*w));
  if (w == NULL) return -ENOMEM;
  _Static_assert(sizeof(TR_JSON_OBJECT_HEAD) == sizeof(TR_JSON_ARRAY_HEAD),
                 "the object head overwrites the padded array head");
  w->gzip = gzip;
  w->start = -1;
  /* Each event goes with the separator before it: the first chunk drops
   * its first one. */
  int rc = tr_writer_init(&w->base, gzip ? &json_gz_ops : &json_ops,
                          gzip ? TR_FORMAT_JSON_GZ : TR_FORMAT_JSON, label, fd,
                          nlanes, TR_JSON_BUF_SIZE, 2);
  if (rc < 0) goto err;
  w->idts = tr_aligned_alloc(_Alignof(tr_json_idts), nlanes * sizeof(*w->idts));
  if (w->idts == NULL) {
    rc = -ENOMEM;
    goto err;
  }
  memset(w->idts, 0, nlanes * sizeof(*w->idts));
  tr_lane *l = &w->base.lanes[0];
  char *p = tr_lane_reserve(&w->base, l, sizeof(TR_JSON_OBJECT_HEAD));
  if (p == NULL) {
    rc = -ENOMEM;
    goto err;
  }
  if (gzip) {
    w->gz = calloc(nlanes, sizeof(*w->gz));
    if (w->gz == NULL) {
      rc = -ENOMEM;
      goto err;
    }
    w->base.seal_min = TR_GZ_CHUNK_MIN;
    w->base.seal_age_ns = TR_GZ_SYNC_NS;
    w->base.history = TR_GZ_DICT_MAX;
    /* The compressed stream is written once, front to back: it holds the
     * object form from the start. */
    tr_lane_commit(l, PUT_LIT(p, TR_JSON_OBJECT_HEAD "\n"), false);
  } else {
    /* The head can be rewritten in place only at a known offset of a
     * seekable file that is not in append mode (where pwrite appends). */
    off_t at = lseek(fd, 0, SEEK_CUR);
    int fl = fcntl(fd, F_GETFL);
    w->start = (at >= 0 && fl >= 0 && !(fl & O_APPEND)) ? (int64_t)at : -1;
    tr_lane_commit(l, PUT_LIT(p, TR_JSON_ARRAY_HEAD "\n"), false);
  }
  rc = tr_writer_start(&w->base);
  if (rc < 0) goto err;
  *out = w;
  return 0;
err:
  tr_writer_free(&w->base);
  return rc;
}

static void json_free(tr_writer *base) {
  tr_json *w = (tr_json *)base;
  if (w->gz != NULL)
    for (unsigned i = 0; i < w->base.nlanes; i++) tr_gzlane_free(&w->gz[i]);
  free(w->gz);
  tr_aligned_free(w->idts);
  free(w);
}

static size_t json_ending(tr_json *w, const char *close, char *out);

/* On the I/O thread, after the last event: a complete array, then, if it
 * can, the object form. */
static int json_io_end(tr_writer *base) {
  tr_json *w = (tr_json *)base;
  char end[TR_WRITER_END_RESERVE];
  int rc = tr_writer_write_all(base, end, json_ending(w, "\n]", end));
  if (rc < 0) return rc;
  bool object = false;
  if (w->start >= 0) {
    static const char head[] = TR_JSON_OBJECT_HEAD;
    ssize_t k =
        pwrite(w->base.sink.fd, head, sizeof(head) - 1, (off_t)w->start);
    object = k == (ssize_t)(sizeof(head) - 1);
  }
  return object ? tr_writer_write_all(base, "}\n", 2)
                : tr_writer_write_all(base, "\n", 1);
}

/* gzip, on the thread that sealed chunk c: compressed on its lane's own
 * compressor; the head goes in a stored block after the gzip header. */
static int json_gz_seal(tr_writer *base, unsigned lane, tr_chunk *c) {
  tr_json *w = (tr_json *)base;
  if (c->seq == TR_CHUNK_HEAD) return tr_gz_head(&c->gz, c->buf, c->len);
  tr_lane *l = &w->base.lanes[lane];
  return tr_gz_compress(&w->gz[lane], &c->gz, c->buf + c->off, c->len - c->off,
                        l->dict, l->dict_len);
}

static int json_gz_io_chunk(tr_writer *base, tr_chunk *c) {
  tr_json *w = (tr_json *)base;
  int rc = tr_writer_write_all(base, c->gz.out, c->gz.len);
  if (rc == 0) tr_gz_add(&w->sum, &c->gz);
  return rc;
}

static int json_gz_io_end(tr_writer *base) {
  tr_json *w = (tr_json *)base;
  char footer[TR_WRITER_END_RESERVE - TR_GZ_END_SIZE(0)];
  size_t len = json_ending(w, "\n]}\n", footer);
  uint8_t out[TR_GZ_END_SIZE(sizeof(footer))];
  size_t n = tr_gz_end(out, footer, len, &w->sum);
  return tr_writer_write_all(base, out, n);
}

/* Makes room in the lane for one event of at most `need` bytes and its
 * separator, writes the separator and returns where the event goes, or
 * NULL when the writer has failed or (`counted`: an event, not metadata)
 * the trace is full. */
static char *event_begin(tr_json *w, unsigned lane, size_t need, bool counted) {
  /* An oversized event (a caller bug) is refused rather than overflowing. */
  if (need > TR_JSON_BUF_SIZE / 2) return NULL;
  if (counted && tr_writer_full(&w->base)) return NULL;
  char *p = tr_lane_reserve(&w->base, &w->base.lanes[lane], need + 2);
  return p != NULL ? PUT_LIT(p, ",\n") : NULL;
}

static void event_end(tr_json *w, unsigned lane, char *p, bool counted) {
  tr_lane_commit(&w->base.lanes[lane], p, counted);
}

/* An event that could not be written. */
static void event_dropped(tr_json *w, unsigned lane) {
  tr_lane_count(&w->base.lanes[lane].dropped, 1);
}

static char *put_head(char *p, const char *ph_cat, size_t phlen,
                      const char *name, size_t nlen) {
  memcpy(p, ph_cat, phlen);
  p += phlen;
  p = PUT_LIT(p, "\"name\":\"");
  memcpy(p, name, nlen);
  p += nlen;
  return PUT_LIT(p, "\",\"pid\":");
}

/* The fields every event after the name has: pid, tid and ts (room for
 * sizeof(c->s) + 20 bytes at p). */
static char *put_ids_ts(char *p, tr_json_idts *c, uint32_t pid, uint32_t tid,
                        uint64_t ts_ns) {
  uint64_t us = ts_ns / 1000;
  uint64_t hi = us / 100000000u;
  if (c->len == 0 || c->pid != pid || c->tid != tid || c->hi != hi) {
    char *q = put_u64(c->s, pid);
    q = PUT_LIT(q, ",\"tid\":");
    q = put_u64(q, tid);
    q = PUT_LIT(q, ",\"ts\":");
    if (hi > 0) q = put_u64(q, hi);
    c->len = (uint8_t)(q - c->s);
    c->pid = pid;
    c->tid = tid;
    c->hi = hi;
  }
  memcpy(p, c->s, sizeof(c->s));
  p += c->len;
  uint32_t lo = (uint32_t)(us % 100000000u);
  if (hi > 0) {
    put_8(p, lo);
    p += 8;
  } else {
    p = put_u32_small(p, lo);
  }
  return put_frac(p, (unsigned)(ts_ns % 1000));
}

/* Room the "args" members of these arguments can take. */
static size_t args_need(const tr_arg *args, uint32_t nargs) {
  size_t need = 0;
  for (uint32_t i = 0; i < nargs; i++) {
    need += 8 + TR_JSON_ESCAPED_MAX(args[i].klen);
    need += args[i].type == TR_ARG_STR
                ? 2 + TR_JSON_ESCAPED_MAX(args[i].v.s.len)
                : 32;
  }
  return need;
}

/* Writes the arguments as members of an open JSON object, each preceded
 * by a comma unless it is the object's first. */
static char *put_args(char *p, const tr_arg *args, uint32_t nargs, bool first) {
  for (uint32_t i = 0; i < nargs; i++) {
    const tr_arg *a = &args[i];
    if (!first || i > 0) *p++ = ',';
    *p++ = '"';
    p += tr_json_escape(p, a->key, a->klen);
    p = PUT_LIT(p, "\":");
    switch (a->type) {
      case TR_ARG_STR:
        *p++ = '"';
        p += tr_json_escape(p, a->v.s.ptr, a->v.s.len);
        *p++ = '"';
        break;
      case TR_ARG_INT:
        p = put_i64(p, a->v.i);
        break;
      case TR_ARG_UINT:
        p = put_u64(p, a->v.u);
        break;
      case TR_ARG_DOUBLE:
        p = put_double(p, a->v.d);
        break;
      case TR_ARG_BOOL:
        p = a->v.b ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
        break;
      default:
        p = PUT_LIT(p, "null"); /* a type this writer does not know */
    }
  }
  return p;
}

/* The bytes before "name" of each category's events, and their length. */
typedef struct lit {
  const char *s;
  size_t len;
} lit;
#define LIT(s) \
  { (s), sizeof(s) - 1 }
static const lit cat_prefix[] = {
    LIT("{\"ph\":\"X\",\"cat\":\"python\","),
    LIT("{\"ph\":\"X\",\"cat\":\"c\","),
    LIT("{\"ph\":\"X\",\"cat\":\"api\","),
    LIT("{\"ph\":\"X\",\"cat\":\"traced\","),
};
static const lit cat_instant_prefix[] = {
    LIT("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"python\","),
    LIT("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"c\","),
    LIT("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\","),
    LIT("{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"traced\","),
};

/* The marker of a trace cut short (tr_writer_cut_note) as a global
 * instant event, then `close`, into out (TR_WRITER_END_RESERVE bytes);
 * just `close` for a trace that was not.  Returns the bytes. */
static size_t json_ending(tr_json *w, const char *close, char *out) {
  char note[256];
  uint64_t ts = 0;
  size_t n = tr_writer_cut_note(&w->base, note, sizeof(note), &ts);
  char *p = out;
  if (n > 0) {
    if (w->base.sink.body) p = PUT_LIT(p, ",\n");
    static const char pre[] = "{\"ph\":\"i\",\"s\":\"g\",\"cat\":\"traced\",";
    p = put_head(p, pre, sizeof(pre) - 1, note, n);
    p = PUT_LIT(p, "0,\"tid\":0,\"ts\":");
    p = put_us(p, ts);
    *p++ = '}';
  }
  size_t cl = strlen(close);
  memcpy(p, close, cl);
  return (size_t)(p + cl - out);
}

void tr_json_slice(tr_json *w, unsigned lane, int cat, const char *name,
                   size_t nlen, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                   uint64_t dur_ns, bool unfinished, const tr_arg *args,
                   uint32_t nargs) {
  size_t need = EVENT_OVERHEAD + nlen;
  if (nargs > 0) need += args_need(args, nargs);
  char *p = event_begin(w, lane, need, true);
  if (p == NULL) {
    event_dropped(w, lane);
    return;
  }
  unsigned k = (unsigned)cat & 3u;
  p = put_head(p, cat_prefix[k].s, cat_prefix[k].len, name, nlen);
  p = put_ids_ts(p, &w->idts[lane], pid, tid, ts_ns);
  p = PUT_LIT(p, ",\"dur\":");
  p = put_us(p, dur_ns);
  if (unfinished || nargs > 0) {
    p = PUT_LIT(p, ",\"args\":{");
    if (unfinished) p = PUT_LIT(p, "\"unfinished\":true");
    p = put_args(p, args, nargs, !unfinished);
    *p++ = '}';
  }
  *p++ = '}';
  event_end(w, lane, p, true);
}

void tr_json_instant(tr_json *w, unsigned lane, int cat, const char *name,
                     size_t nlen, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                     const tr_arg *args, uint32_t nargs) {
  size_t need = EVENT_OVERHEAD + nlen;
  if (nargs > 0) need += args_need(args, nargs);
  char *p = event_begin(w, lane, need, true);
  if (p == NULL) {
    event_dropped(w, lane);
    return;
  }
  unsigned k = (unsigned)cat & 3u;
  p = put_head(p, cat_instant_prefix[k].s, cat_instant_prefix[k].len, name,
               nlen);
  p = put_ids_ts(p, &w->idts[lane], pid, tid, ts_ns);
  if (nargs > 0) {
    p = PUT_LIT(p, ",\"args\":{");
    p = put_args(p, args, nargs, true);
    *p++ = '}';
  }
  *p++ = '}';
  event_end(w, lane, p, true);
}

void tr_json_counter(tr_json *w, unsigned lane, const char *name, size_t nlen,
                     uint32_t pid, uint32_t tid, uint64_t ts_ns, double value,
                     const tr_arg *args, uint32_t nargs) {
  size_t need = EVENT_OVERHEAD + nlen;
  if (nargs > 0) need += args_need(args, nargs);
  char *p = event_begin(w, lane, need, true);
  if (p == NULL) {
    event_dropped(w, lane);
    return;
  }
  static const char pre[] = "{\"ph\":\"C\",\"cat\":\"api\",";
  p = put_head(p, pre, sizeof(pre) - 1, name, nlen);
  p = put_ids_ts(p, &w->idts[lane], pid, tid, ts_ns);
  if (nargs > 0) {
    p = PUT_LIT(p, ",\"args\":{");
    p = put_args(p, args, nargs, true);
  } else {
    p = PUT_LIT(p, ",\"args\":{\"value\":");
    p = put_double(p, value);
  }
  p = PUT_LIT(p, "}}");
  event_end(w, lane, p, true);
}

void tr_json_lost(tr_json *w, unsigned lane, uint32_t pid, uint32_t tid,
                  uint64_t ts_ns, uint64_t count) {
  static const char name[] = "traced: events lost (ring full)";
  char *p = event_begin(w, lane, EVENT_OVERHEAD + sizeof(name), true);
  if (p == NULL) {
    event_dropped(w, lane);
    return;
  }
  p = put_head(p, cat_instant_prefix[TR_CAT_TRACED].s,
               cat_instant_prefix[TR_CAT_TRACED].len, name, sizeof(name) - 1);
  p = put_ids_ts(p, &w->idts[lane], pid, tid, ts_ns);
  p = PUT_LIT(p, ",\"args\":{\"count\":");
  p = put_u64(p, count);
  p = PUT_LIT(p, "}}");
  event_end(w, lane, p, true);
}

/* Starts a metadata event: room for `extra` more bytes, then
 * {"ph":"M","name":what,"pid":P,"tid":T,"args":{"key": with the key's
 * opening quote written; returns where its value goes, or NULL. */
static char *meta_begin(tr_json *w, unsigned lane, const char *what,
                        uint32_t pid, uint32_t tid, const char *key,
                        size_t extra) {
  size_t wl = strlen(what), kl = strlen(key);
  char *p = event_begin(w, lane, EVENT_OVERHEAD + wl + kl + extra, false);
  if (p == NULL) return NULL;
  p = PUT_LIT(p, "{\"ph\":\"M\",\"name\":\"");
  memcpy(p, what, wl);
  p += wl;
  p = PUT_LIT(p, "\",\"pid\":");
  p = put_u64(p, pid);
  p = PUT_LIT(p, ",\"tid\":");
  p = put_u64(p, tid);
  p = PUT_LIT(p, ",\"args\":{\"");
  memcpy(p, key, kl);
  p += kl;
  return PUT_LIT(p, "\":");
}

void tr_json_meta(tr_json *w, unsigned lane, const char *what, uint32_t pid,
                  uint32_t tid, const char *key, const char *value,
                  size_t vlen) {
  if (vlen > TR_STRING_MAX_LEN) vlen = TR_STRING_MAX_LEN;
  char *p = meta_begin(w, lane, what, pid, tid, key, TR_JSON_ESCAPED_MAX(vlen));
  if (p == NULL) return;
  *p++ = '"';
  p += tr_json_escape(p, value, vlen);
  p = PUT_LIT(p, "\"}}");
  event_end(w, lane, p, false);
}

void tr_json_meta_name(tr_json *w, unsigned lane, const char *what,
                       uint32_t pid, uint32_t tid, const char *name, size_t len,
                       uint64_t dropped) {
  if (len > TR_STRING_MAX_LEN) len = TR_STRING_MAX_LEN;
  char *p = meta_begin(w, lane, what, pid, tid, "name",
                       48 + TR_JSON_ESCAPED_MAX(len));
  if (p == NULL) return;
  *p++ = '"';
  p += tr_json_escape(p, name, len);
  p = PUT_LIT(p, "\",\"dropped\":");
  p = put_u64(p, dropped);
  p = PUT_LIT(p, "}}");
  event_end(w, lane, p, false);
}

void tr_json_meta_u64(tr_json *w, unsigned lane, const char *what, uint32_t pid,
                      uint32_t tid, const char *key, uint64_t value) {
  char *p = meta_begin(w, lane, what, pid, tid, key, 24);
  if (p == NULL) return;
  p = put_u64(p, value);
  p = PUT_LIT(p, "}}");
  event_end(w, lane, p, false);
}

/* ---- the backend: streams with an escaped-name cache --------------------
 * The cache is direct-mapped (common/map.h's tr_cache), keyed by string id:
 * ids are 4-aligned offsets into the process's append-only arena, so a
 * program's first TR_NAME_CACHE_SLOTS names (and any run of that many
 * consecutive ones) never evict each other, and a name that is evicted is
 * escaped again when it comes back. */

typedef struct cached_name {
  uint16_t len;
  uint16_t cap; /* bytes of s */
  char s[];     /* the escaped name */
} cached_name;

typedef struct json_stream {
  tr_cache names; /* cached_name values; allocated on first use */
  char *scratch;  /* escape buffer for names too long to cache */
} json_stream;

static int json_stream_open(tr_wstream *s) {
  s->impl = calloc(1, sizeof(json_stream));
  return s->impl != NULL ? 0 : -ENOMEM;
}

static void json_stream_close(tr_wstream *s) {
  json_stream *js = s->impl;
  if (js->names.slots != NULL)
    for (uint32_t i = 0; i < TR_NAME_CACHE_SLOTS; i++)
      free(js->names.slots[i].value);
  tr_cache_free(&js->names);
  free(js->scratch);
  free(js);
}

/* The escaped name for `id`, from the cache or escaped now; valid until
 * the next lookup.  A process's string ids never change meaning (its
 * arena is append-only), so a cached entry stays right for the stream's
 * life. */
static bool json_name(tr_wstream *s, uint32_t id, const char **out,
                      size_t *len) {
  json_stream *js = s->impl;
  if (js->names.slots != NULL) {
    const tr_cache_slot *hit = tr_cache_slot_of(&js->names, id);
    if (hit->value != NULL && hit->key == id) {
      const cached_name *c = hit->value;
      *out = c->s;
      *len = c->len;
      return true;
    }
  }
  const char *raw;
  uint32_t n;
  if (!s->name(s->name_ctx, id, &raw, &n)) return false;
  if (n > TR_STRING_MAX_LEN) n = TR_STRING_MAX_LEN;
  if (js->names.slots == NULL) {
    js->scratch = malloc(TR_JSON_ESCAPED_MAX(TR_STRING_MAX_LEN));
    if (js->scratch == NULL ||
        tr_cache_init(&js->names, TR_NAME_CACHE_SLOTS, 2) < 0) {
      free(js->scratch);
      js->scratch = NULL;
      return false;
    }
  }
  size_t el = tr_json_escape(js->scratch, raw, n);
  if (el == 0) { /* an empty name: nothing to cache or copy */
    *out = "";
    *len = 0;
    return true;
  }
  if (el <= TR_NAME_CACHE_MAX_LEN) {
    /* The slot's buffer is reused for the name that evicts its own. */
    tr_cache_slot *slot = tr_cache_slot_of(&js->names, id);
    cached_name *c = slot->value;
    if (c == NULL || c->cap < el) {
      size_t cap = el < 64 ? 64 : TR_NAME_CACHE_MAX_LEN;
      cached_name *g = realloc(c, sizeof(*g) + cap);
      if (g != NULL) {
        g->cap = (uint16_t)cap;
        slot->value = c = g;
      }
    }
    if (c != NULL && c->cap >= el) {
      memcpy(c->s, js->scratch, el);
      c->len = (uint16_t)el;
      slot->key = id;
      *out = c->s;
      *len = el;
      return true;
    }
  }
  *out = js->scratch;
  *len = el;
  return true;
}

static int json_op_slice(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                         uint64_t ts, uint64_t dur, bool unfinished,
                         const tr_arg *args, uint32_t nargs) {
  const char *n;
  size_t len;
  if (!json_name(s, name, &n, &len)) return -EINVAL;
  tr_json_slice((tr_json *)s->w, s->lane, cat, n, len, s->pid, tid, ts, dur,
                unfinished, args, nargs);
  return 0;
}

static int json_op_instant(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                           uint64_t ts, const tr_arg *args, uint32_t nargs) {
  const char *n;
  size_t len;
  if (!json_name(s, name, &n, &len)) return -EINVAL;
  tr_json_instant((tr_json *)s->w, s->lane, cat, n, len, s->pid, tid, ts, args,
                  nargs);
  return 0;
}

static int json_op_counter(tr_wstream *s, uint32_t tid, uint32_t name,
                           uint64_t ts, double value, const tr_arg *args,
                           uint32_t nargs) {
  const char *n;
  size_t len;
  if (!json_name(s, name, &n, &len)) return -EINVAL;
  tr_json_counter((tr_json *)s->w, s->lane, n, len, s->pid, tid, ts, value,
                  args, nargs);
  return 0;
}

static void json_op_lost(tr_wstream *s, uint32_t tid, uint64_t ts,
                         uint64_t count) {
  tr_json_lost((tr_json *)s->w, s->lane, s->pid, tid, ts, count);
}

static void json_op_process_name(tr_wstream *s, const char *name, size_t len,
                                 uint64_t dropped) {
  tr_json_meta_name((tr_json *)s->w, s->lane, "process_name", s->pid, 0, name,
                    len, dropped);
}

static void json_op_thread_name(tr_wstream *s, uint32_t tid, const char *name,
                                size_t len, uint64_t dropped) {
  tr_json_meta_name((tr_json *)s->w, s->lane, "thread_name", s->pid, tid, name,
                    len, dropped);
}

static void json_op_sort_index(tr_wstream *s, uint32_t index) {
  tr_json_meta_u64((tr_json *)s->w, s->lane, "process_sort_index", s->pid, 0,
                   "sort_index", index);
}

static void json_op_labels(tr_wstream *s, const char *labels, size_t len) {
  tr_json_meta((tr_json *)s->w, s->lane, "process_labels", s->pid, 0, "labels",
               labels, len);
}

static const tr_writer_ops json_ops = {
    .stream_open = json_stream_open,
    .stream_close = json_stream_close,
    .enter = NULL, /* a complete ("X") event is written at the call's end */
    .slice = json_op_slice,
    .instant = json_op_instant,
    .counter = json_op_counter,
    .lost = json_op_lost,
    .process_name = json_op_process_name,
    .thread_name = json_op_thread_name,
    .sort_index = json_op_sort_index,
    .labels = json_op_labels,
    .seal = NULL,
    .io_chunk = NULL, /* the chunk's bytes as they are */
    .io_end = json_io_end,
    .free = json_free,
};

/* The same events; chunks compressed by their lanes, written as gzip. */
static const tr_writer_ops json_gz_ops = {
    .stream_open = json_stream_open,
    .stream_close = json_stream_close,
    .enter = NULL,
    .slice = json_op_slice,
    .instant = json_op_instant,
    .counter = json_op_counter,
    .lost = json_op_lost,
    .process_name = json_op_process_name,
    .thread_name = json_op_thread_name,
    .sort_index = json_op_sort_index,
    .labels = json_op_labels,
    .seal = json_gz_seal,
    .io_chunk = json_gz_io_chunk,
    .io_end = json_gz_io_end,
    .free = json_free,
};

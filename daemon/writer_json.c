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

#include "log.h"
#include "traced_proto.h"

/* Room for everything but the name in the largest event (a counter with a
 * 20-digit pid, tid and timestamp and a 24-character number). */
#define EVENT_OVERHEAD 256u

#define PUT_LIT(p, s) (memcpy((p), (s), sizeof(s) - 1), (p) + sizeof(s) - 1)

/* ---- escaping ------------------------------------------------------------
 * 0: copied as is; 1: ASCII that must be escaped; 2: start of a non-ASCII
 * sequence, validated as UTF-8. */
/* clang-format off */
static const uint8_t esc_class[256] = {
    /* 0x00 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x10 */ 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 0x20 */ 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x30 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x40 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x50 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    /* 0x60 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x70 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x80 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0x90 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xa0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xb0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xc0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xd0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xe0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* 0xf0 */ 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};
/* clang-format on */

static const char hex_digits[] = "0123456789abcdef";

/* Length of the well-formed UTF-8 sequence at s (RFC 3629, table 3-7 of
 * Unicode), or minus the length of its maximal ill-formed prefix, which is
 * replaced by one U+FFFD (the Unicode "maximal subpart" practice). */
static int utf8_seq(const uint8_t *s, size_t avail) {
  uint8_t c = s[0];
  int need;
  uint8_t lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 1;
  } else if (c == 0xe0) {
    need = 2;
    lo = 0xa0; /* overlong below U+0800 */
  } else if (c == 0xed) {
    need = 2;
    hi = 0x9f; /* surrogates U+D800..U+DFFF */
  } else if (c >= 0xe1 && c <= 0xef) {
    need = 2;
  } else if (c == 0xf0) {
    need = 3;
    lo = 0x90; /* overlong below U+10000 */
  } else if (c >= 0xf1 && c <= 0xf3) {
    need = 3;
  } else if (c == 0xf4) {
    need = 3;
    hi = 0x8f; /* above U+10FFFF */
  } else {
    return -1; /* continuation byte, C0/C1 overlong lead, F5..FF */
  }
  for (int i = 1; i <= need; i++) {
    if ((size_t)i >= avail) return -i;
    uint8_t b = s[i];
    if (b < lo || b > hi) return -i;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}

size_t tr_json_escape(char *dst, const char *src, size_t n) {
  const uint8_t *s = (const uint8_t *)src;
  const uint8_t *end = s + n;
  char *d = dst;
  while (s < end) {
    const uint8_t *run = s;
    while (s < end && esc_class[*s] == 0) s++;
    if (s > run) {
      memcpy(d, run, (size_t)(s - run));
      d += s - run;
    }
    if (s == end) break;
    uint8_t c = *s;
    if (c < 0x80) {
      *d++ = '\\';
      switch (c) {
        case '"':
          *d++ = '"';
          break;
        case '\\':
          *d++ = '\\';
          break;
        case '\b':
          *d++ = 'b';
          break;
        case '\f':
          *d++ = 'f';
          break;
        case '\n':
          *d++ = 'n';
          break;
        case '\r':
          *d++ = 'r';
          break;
        case '\t':
          *d++ = 't';
          break;
        default:
          d = PUT_LIT(d, "u00");
          *d++ = hex_digits[c >> 4];
          *d++ = hex_digits[c & 15];
      }
      s++;
      continue;
    }
    int k = utf8_seq(s, (size_t)(end - s));
    if (k > 0) {
      memcpy(d, s, (size_t)k);
      d += k;
      s += k;
    } else {
      d = PUT_LIT(d, "\\ufffd");
      s += -k;
    }
  }
  return (size_t)(d - dst);
}

/* ---- numbers --------------------------------------------------------------
 */

static const char digit_pairs[201] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536"
    "37383940414243444546474849505152535455565758596061626364656667686970717273"
    "7475767778798081828384858687888990919293949596979899";

static char *put_u64(char *p, uint64_t v) {
  char tmp[20];
  char *t = tmp + sizeof(tmp);
  while (v >= 100) {
    unsigned r = (unsigned)(v % 100);
    v /= 100;
    t -= 2;
    memcpy(t, digit_pairs + 2 * r, 2);
  }
  if (v >= 10) {
    t -= 2;
    memcpy(t, digit_pairs + 2 * v, 2);
  } else {
    *--t = (char)('0' + v);
  }
  size_t n = (size_t)(tmp + sizeof(tmp) - t);
  memcpy(p, t, n);
  return p + n;
}

static char *put_i64(char *p, int64_t v) {
  if (v >= 0) return put_u64(p, (uint64_t)v);
  *p++ = '-';
  return put_u64(p, (uint64_t)0 - (uint64_t)v);
}

/* Nanoseconds as microseconds with exactly three decimals. */
static char *put_us(char *p, uint64_t ns) {
  p = put_u64(p, ns / 1000);
  unsigned frac = (unsigned)(ns % 1000);
  p[0] = '.';
  p[1] = (char)('0' + frac / 100);
  memcpy(p + 2, digit_pairs + 2 * (frac % 100), 2);
  return p + 4;
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

/* ---- arguments ----------------------------------------------------------- */

/* Bytes an event's "args" object may take at most. */
static size_t args_room(const tr_arg *args, uint32_t nargs) {
  size_t n = 16;
  for (uint32_t i = 0; i < nargs; i++) {
    n += TR_JSON_ESCAPED_MAX(args[i].klen) + 48;
    if (args[i].type == TR_ARG_STR) n += TR_JSON_ESCAPED_MAX(args[i].v.s.len);
  }
  return n;
}

/* Writes "key":value,... for each argument (no braces). */
static char *put_arg_list(char *p, const tr_arg *args, uint32_t nargs) {
  for (uint32_t i = 0; i < nargs; i++) {
    const tr_arg *a = &args[i];
    if (i > 0) *p++ = ',';
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
      default:
        p = a->v.b ? PUT_LIT(p, "true") : PUT_LIT(p, "false");
        break;
    }
  }
  return p;
}

/* ---- buffer ------------------------------------------------------------ */

int tr_json_open(tr_json **out, int fd, const char *label) {
  tr_json *w = calloc(1, sizeof(*w));
  if (w == NULL) return -ENOMEM;
  w->buf = malloc(TR_JSON_BUF_SIZE);
  if (w->buf == NULL) {
    free(w);
    return -ENOMEM;
  }
  _Static_assert(sizeof(TR_JSON_OBJECT_HEAD) == sizeof(TR_JSON_ARRAY_HEAD),
                 "the object head overwrites the padded array head");
  w->fd = fd;
  w->label = label;
  /* The head can be rewritten in place only at a known offset of a
   * seekable file that is not in append mode (where pwrite appends). */
  off_t at = lseek(fd, 0, SEEK_CUR);
  int fl = fcntl(fd, F_GETFL);
  w->start = (at >= 0 && fl >= 0 && !(fl & O_APPEND)) ? (int64_t)at : -1;
  w->len = (size_t)(PUT_LIT(w->buf, TR_JSON_ARRAY_HEAD "\n") - w->buf);
  *out = w;
  return 0;
}

void tr_json_free(tr_json *w) {
  if (w == NULL) return;
  free(w->buf);
  free(w);
}

int tr_json_flush(tr_json *w) {
  if (w->failed) return -EIO;
  const char *p = w->buf;
  size_t n = w->len;
  while (n > 0) {
    ssize_t k = write(w->fd, p, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      int err = k < 0 ? errno : EIO;
      tr_log(TR_LOG_ERROR,
             "%s: writing the trace failed: %s; the rest of this session's "
             "events are dropped",
             w->label ? w->label : "trace", strerror(err));
      w->failed = true;
      w->dropped += w->buf_events;
      w->events -= w->buf_events;
      w->buf_events = 0;
      w->len = 0;
      return -err;
    }
    w->bytes += (uint64_t)k;
    p += k;
    n -= (size_t)k;
  }
  w->len = 0;
  w->buf_events = 0;
  return 0;
}

int tr_json_finish(tr_json *w) {
  if (w->finished) return w->failed ? -EIO : 0;
  w->finished = true;
  if (w->failed) return -EIO;
  if (w->len + 4 > TR_JSON_BUF_SIZE && tr_json_flush(w) < 0) return -EIO;
  w->len += (size_t)(PUT_LIT(w->buf + w->len, "\n]") - (w->buf + w->len));
  if (tr_json_flush(w) < 0) return -EIO;
  /* A complete array now; make it the object form if we can. */
  bool object = false;
  if (w->start >= 0) {
    static const char head[] = TR_JSON_OBJECT_HEAD;
    ssize_t k = pwrite(w->fd, head, sizeof(head) - 1, (off_t)w->start);
    object = k == (ssize_t)(sizeof(head) - 1);
  }
  char *end = object ? PUT_LIT(w->buf, "}\n") : PUT_LIT(w->buf, "\n");
  w->len = (size_t)(end - w->buf);
  return tr_json_flush(w);
}

/* Makes room for one event of at most `need` bytes plus its separator and
 * returns where to write it, or NULL when the writer has failed. */
static char *event_begin(tr_json *w, size_t need) {
  /* An oversized event (a caller bug) is refused rather than overflowing. */
  if (w->failed || w->finished || need > TR_JSON_BUF_SIZE / 2) return NULL;
  if (w->len + need + 2 > TR_JSON_BUF_SIZE && tr_json_flush(w) < 0) return NULL;
  char *p = w->buf + w->len;
  if (w->any) p = PUT_LIT(p, ",\n");
  return p;
}

static void event_end(tr_json *w, char *p, bool counted) {
  w->len = (size_t)(p - w->buf);
  w->any = true;
  if (counted) {
    w->events++;
    w->buf_events++;
  }
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

/* The fields every event after the name has: pid, tid and ts. */
static char *put_ids_ts(char *p, uint32_t pid, uint32_t tid, uint64_t ts_ns) {
  p = put_u64(p, pid);
  p = PUT_LIT(p, ",\"tid\":");
  p = put_u64(p, tid);
  p = PUT_LIT(p, ",\"ts\":");
  return put_us(p, ts_ns);
}

static const char *const cat_prefix[] = {
    "{\"ph\":\"X\",\"cat\":\"python\",",
    "{\"ph\":\"X\",\"cat\":\"c\",",
    "{\"ph\":\"X\",\"cat\":\"api\",",
    "{\"ph\":\"X\",\"cat\":\"traced\",",
};
static const char *const cat_instant_prefix[] = {
    "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"python\",",
    "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"c\",",
    "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",",
    "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"traced\",",
};

void tr_json_slice(tr_json *w, int cat, const char *name, size_t nlen,
                   uint32_t pid, uint32_t tid, uint64_t ts_ns, uint64_t dur_ns,
                   bool unfinished, const tr_arg *args, uint32_t nargs) {
  char *p = event_begin(w, EVENT_OVERHEAD + nlen + args_room(args, nargs));
  if (p == NULL) {
    w->dropped++;
    return;
  }
  const char *pre = cat_prefix[(unsigned)cat & 3u];
  p = put_head(p, pre, strlen(pre), name, nlen);
  p = put_ids_ts(p, pid, tid, ts_ns);
  p = PUT_LIT(p, ",\"dur\":");
  p = put_us(p, dur_ns);
  if (nargs > 0 || unfinished) {
    p = PUT_LIT(p, ",\"args\":{");
    p = put_arg_list(p, args, nargs);
    if (unfinished)
      p = nargs > 0 ? PUT_LIT(p, ",\"unfinished\":true")
                    : PUT_LIT(p, "\"unfinished\":true");
    *p++ = '}';
  }
  *p++ = '}';
  event_end(w, p, true);
}

void tr_json_instant(tr_json *w, int cat, const char *name, size_t nlen,
                     uint32_t pid, uint32_t tid, uint64_t ts_ns,
                     const tr_arg *args, uint32_t nargs) {
  char *p = event_begin(w, EVENT_OVERHEAD + nlen + args_room(args, nargs));
  if (p == NULL) {
    w->dropped++;
    return;
  }
  const char *pre = cat_instant_prefix[(unsigned)cat & 3u];
  p = put_head(p, pre, strlen(pre), name, nlen);
  p = put_ids_ts(p, pid, tid, ts_ns);
  if (nargs > 0) {
    p = PUT_LIT(p, ",\"args\":{");
    p = put_arg_list(p, args, nargs);
    *p++ = '}';
  }
  *p++ = '}';
  event_end(w, p, true);
}

void tr_json_counter(tr_json *w, const char *name, size_t nlen, uint32_t pid,
                     uint32_t tid, uint64_t ts_ns, double value,
                     const tr_arg *args, uint32_t nargs) {
  char *p = event_begin(w, EVENT_OVERHEAD + nlen + args_room(args, nargs));
  if (p == NULL) {
    w->dropped++;
    return;
  }
  static const char pre[] = "{\"ph\":\"C\",\"cat\":\"api\",";
  p = put_head(p, pre, sizeof(pre) - 1, name, nlen);
  p = put_ids_ts(p, pid, tid, ts_ns);
  if (nargs > 0) {
    p = PUT_LIT(p, ",\"args\":{");
    p = put_arg_list(p, args, nargs);
  } else {
    p = PUT_LIT(p, ",\"args\":{\"value\":");
    p = put_double(p, value);
  }
  p = PUT_LIT(p, "}}");
  event_end(w, p, true);
}

void tr_json_lost(tr_json *w, uint32_t pid, uint32_t tid, uint64_t ts_ns,
                  uint64_t count) {
  static const char name[] = "traced: events lost (ring full)";
  char *p = event_begin(w, EVENT_OVERHEAD + sizeof(name));
  if (p == NULL) {
    w->dropped++;
    return;
  }
  const char *pre = cat_instant_prefix[TR_CAT_TRACED];
  p = put_head(p, pre, strlen(pre), name, sizeof(name) - 1);
  p = put_ids_ts(p, pid, tid, ts_ns);
  p = PUT_LIT(p, ",\"args\":{\"count\":");
  p = put_u64(p, count);
  p = PUT_LIT(p, "}}");
  event_end(w, p, true);
}

/* Starts a metadata event: room for `extra` more bytes, then
 * {"ph":"M","name":what,"pid":P,"tid":T,"args":{"key": with the key's
 * opening quote written; returns where its value goes, or NULL. */
static char *meta_begin(tr_json *w, const char *what, uint32_t pid,
                        uint32_t tid, const char *key, size_t extra) {
  size_t wl = strlen(what), kl = strlen(key);
  char *p = event_begin(w, EVENT_OVERHEAD + wl + kl + extra);
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

void tr_json_meta(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                  const char *key, const char *value, size_t vlen) {
  if (vlen > TR_STRING_MAX_LEN) vlen = TR_STRING_MAX_LEN;
  char *p = meta_begin(w, what, pid, tid, key, TR_JSON_ESCAPED_MAX(vlen));
  if (p == NULL) return;
  *p++ = '"';
  p += tr_json_escape(p, value, vlen);
  p = PUT_LIT(p, "\"}}");
  event_end(w, p, false);
}

void tr_json_meta_name(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                       const char *name, size_t len, uint64_t dropped) {
  if (len > TR_STRING_MAX_LEN) len = TR_STRING_MAX_LEN;
  char *p =
      meta_begin(w, what, pid, tid, "name", 48 + TR_JSON_ESCAPED_MAX(len));
  if (p == NULL) return;
  *p++ = '"';
  p += tr_json_escape(p, name, len);
  p = PUT_LIT(p, "\",\"dropped\":");
  p = put_u64(p, dropped);
  p = PUT_LIT(p, "}}");
  event_end(w, p, false);
}

void tr_json_meta_u64(tr_json *w, const char *what, uint32_t pid, uint32_t tid,
                      const char *key, uint64_t value) {
  char *p = meta_begin(w, what, pid, tid, key, 24);
  if (p == NULL) return;
  p = put_u64(p, value);
  p = PUT_LIT(p, "}}");
  event_end(w, p, false);
}

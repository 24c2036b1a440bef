/* argbuf.h: building the payload of an ARGS record (traced_proto.h): key /
 * value arguments of one event, bounded to what one record carries.
 *
 * Used by the Python shim (arguments, return values, custom events) and
 * the C API.  Nothing here allocates, locks or fails loudly: an argument
 * that does not fit is cut (strings, at a UTF-8 character boundary, with
 * an ellipsis) or left out. */
#ifndef TRACED_ARGBUF_H
#define TRACED_ARGBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/traced_proto.h"

/* Marks a value that was cut: U+2026 HORIZONTAL ELLIPSIS. */
#define TR_ELLIPSIS "\xe2\x80\xa6"
#define TR_ELLIPSIS_LEN 3u
/* Keys longer than this are cut (the entry stores an 8-bit length). */
#define TR_ARGS_KEY_MAX 255u

typedef struct tr_argbuf {
  uint32_t len;   /* payload bytes used */
  uint32_t count; /* entries */
  uint8_t data[TR_ARGS_MAX_BYTES];
} tr_argbuf;

static inline void tr_argbuf_init(tr_argbuf *b) {
  b->len = 0;
  b->count = 0;
}

/* The longest prefix of s[0..n) of at most max bytes that does not end
 * inside a UTF-8 sequence. */
size_t tr_utf8_cut(const char *s, size_t n, size_t max);

/* Appends a string value cut to `limit` bytes (ellipsis included) and to
 * the room left.  Returns false, adding nothing, when not even a cut
 * value fits or the entry limit is reached. */
bool tr_argbuf_add_str(tr_argbuf *b, const char *key, size_t klen,
                       const char *val, size_t vlen, size_t limit);
bool tr_argbuf_add_i64(tr_argbuf *b, const char *key, size_t klen, int64_t v);
bool tr_argbuf_add_u64(tr_argbuf *b, const char *key, size_t klen, uint64_t v);
bool tr_argbuf_add_double(tr_argbuf *b, const char *key, size_t klen, double v);
bool tr_argbuf_add_bool(tr_argbuf *b, const char *key, size_t klen, bool v);

#endif

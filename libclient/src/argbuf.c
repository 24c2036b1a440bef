/* argbuf.c: encoding of ARGS payloads, cutting what does not fit. */
#include "argbuf.h"

#include <string.h>

size_t tr_utf8_cut(const char *s, size_t n, size_t max) {
  if (n <= max) return n;
  n = max;
  /* Back off continuation bytes (10xxxxxx): the cut must fall before the
   * lead byte of the sequence it would split. */
  size_t k = n;
  while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80 && n - k < 3) k--;
  return ((unsigned char)s[k] & 0xc0) == 0x80 ? n : k;
}

/* Writes an entry header and key; returns where the value goes, or NULL
 * when fewer than `vmin` value bytes would fit. */
static uint8_t *entry(tr_argbuf *b, uint8_t type, const char *key, size_t klen,
                      size_t vmin, size_t *room) {
  if (b->count >= TR_ARGS_MAX_ENTRIES) return NULL;
  klen = tr_utf8_cut(key, klen, TR_ARGS_KEY_MAX);
  size_t left = sizeof(b->data) - b->len;
  if (left < TR_ARGS_ENTRY_HDR + klen + vmin) return NULL;
  uint8_t *p = b->data + b->len;
  p[0] = type;
  p[1] = (uint8_t)klen;
  memcpy(p + TR_ARGS_ENTRY_HDR, key, klen);
  *room = left - TR_ARGS_ENTRY_HDR - klen;
  return p + TR_ARGS_ENTRY_HDR + klen;
}

/* Completes the entry started at `value` with vlen value bytes. */
static bool finish(tr_argbuf *b, uint8_t *value, size_t vlen) {
  uint8_t *hdr = b->data + b->len;
  uint16_t v16 = (uint16_t)vlen;
  memcpy(hdr + 2, &v16, 2);
  b->len = (uint32_t)((value + vlen) - b->data);
  b->count++;
  return true;
}

bool tr_argbuf_add_str(tr_argbuf *b, const char *key, size_t klen,
                       const char *val, size_t vlen, size_t limit) {
  size_t room;
  /* At least a one-byte value, or the ellipsis alone. */
  uint8_t *p =
      entry(b, TR_ARGS_STR, key, klen,
            vlen == 0 ? 0 : (vlen < TR_ELLIPSIS_LEN ? vlen : 1), &room);
  if (p == NULL) return false;
  if (limit > room) limit = room;
  if (vlen <= limit) {
    memcpy(p, val, vlen);
    return finish(b, p, vlen);
  }
  if (limit < TR_ELLIPSIS_LEN) return false;
  size_t keep = tr_utf8_cut(val, vlen, limit - TR_ELLIPSIS_LEN);
  memcpy(p, val, keep);
  memcpy(p + keep, TR_ELLIPSIS, TR_ELLIPSIS_LEN);
  return finish(b, p, keep + TR_ELLIPSIS_LEN);
}

static bool add_fixed(tr_argbuf *b, uint8_t type, const char *key, size_t klen,
                      const void *v, size_t n) {
  size_t room;
  uint8_t *p = entry(b, type, key, klen, n, &room);
  if (p == NULL) return false;
  memcpy(p, v, n);
  return finish(b, p, n);
}

bool tr_argbuf_add_i64(tr_argbuf *b, const char *key, size_t klen, int64_t v) {
  return add_fixed(b, TR_ARGS_INT, key, klen, &v, 8);
}

bool tr_argbuf_add_u64(tr_argbuf *b, const char *key, size_t klen, uint64_t v) {
  return add_fixed(b, TR_ARGS_UINT, key, klen, &v, 8);
}

bool tr_argbuf_add_double(tr_argbuf *b, const char *key, size_t klen,
                          double v) {
  return add_fixed(b, TR_ARGS_DOUBLE, key, klen, &v, 8);
}

bool tr_argbuf_add_bool(tr_argbuf *b, const char *key, size_t klen, bool v) {
  uint8_t x = v ? 1 : 0;
  return add_fixed(b, TR_ARGS_BOOL, key, klen, &x, 1);
}

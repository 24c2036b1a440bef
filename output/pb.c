/* pb.c: protocol-buffers wire encoding into a fixed buffer. */
#include "pb.h"

#include <string.h>

#include "utf8.h"

void tr_pb_init(tr_pb *pb, uint8_t *buf, size_t cap) {
  pb->buf = buf;
  pb->len = 0;
  pb->cap = cap;
  pb->overflow = false;
}

size_t tr_pb_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

uint8_t *tr_pb_put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Makes sure n more bytes fit; sets overflow (sticky) when they do not. */
static bool room(tr_pb *pb, size_t n) {
  if (pb->overflow) return false;
  if (pb->cap - pb->len < n) {
    pb->overflow = true;
    return false;
  }
  return true;
}

static uint64_t tag(uint32_t field, unsigned wire) {
  return ((uint64_t)field << 3) | (uint64_t)wire;
}

static void put_tag(tr_pb *pb, uint32_t field, unsigned wire) {
  uint8_t *p = tr_pb_put_varint(pb->buf + pb->len, tag(field, wire));
  pb->len = (size_t)(p - pb->buf);
}

void tr_pb_uint(tr_pb *pb, uint32_t field, uint64_t v) {
  if (!room(pb,
            tr_pb_varint_size(tag(field, TR_PB_VARINT)) + tr_pb_varint_size(v)))
    return;
  put_tag(pb, field, TR_PB_VARINT);
  pb->len = (size_t)(tr_pb_put_varint(pb->buf + pb->len, v) - pb->buf);
}

void tr_pb_int(tr_pb *pb, uint32_t field, int64_t v) {
  tr_pb_uint(pb, field, (uint64_t)v);
}

void tr_pb_bool(tr_pb *pb, uint32_t field, bool v) {
  tr_pb_uint(pb, field, v ? 1 : 0);
}

void tr_pb_double(tr_pb *pb, uint32_t field, double v) {
  if (!room(pb, tr_pb_varint_size(tag(field, TR_PB_FIXED64)) + 8)) return;
  put_tag(pb, field, TR_PB_FIXED64);
  uint64_t bits;
  memcpy(&bits, &v, sizeof(bits));
  for (int i = 0; i < 8; i++) pb->buf[pb->len++] = (uint8_t)(bits >> (8 * i));
}

void tr_pb_bytes(tr_pb *pb, uint32_t field, const void *data, size_t n) {
  if (!room(pb, tr_pb_varint_size(tag(field, TR_PB_LEN)) +
                    tr_pb_varint_size(n) + n))
    return;
  put_tag(pb, field, TR_PB_LEN);
  pb->len = (size_t)(tr_pb_put_varint(pb->buf + pb->len, n) - pb->buf);
  if (n > 0) memcpy(pb->buf + pb->len, data, n);
  pb->len += n;
}

void tr_pb_utf8(tr_pb *pb, uint32_t field, const char *s, size_t n) {
  size_t out = tr_utf8_sanitized_len(s, n);
  if (out == n) {
    tr_pb_bytes(pb, field, s, n);
    return;
  }
  if (!room(pb, tr_pb_varint_size(tag(field, TR_PB_LEN)) +
                    tr_pb_varint_size(out) + out))
    return;
  put_tag(pb, field, TR_PB_LEN);
  pb->len = (size_t)(tr_pb_put_varint(pb->buf + pb->len, out) - pb->buf);
  pb->len += tr_utf8_sanitize((char *)pb->buf + pb->len, s, n);
}

size_t tr_pb_begin(tr_pb *pb, uint32_t field) {
  if (!room(pb, tr_pb_varint_size(tag(field, TR_PB_LEN)) + 1)) return 0;
  put_tag(pb, field, TR_PB_LEN);
  pb->buf[pb->len++] = 0; /* the length, usually one byte: see tr_pb_end */
  return pb->len;
}

void tr_pb_end(tr_pb *pb, size_t mark) {
  if (pb->overflow) return;
  size_t body = pb->len - mark;
  size_t k = tr_pb_varint_size(body);
  if (k > 1) {
    /* The body is 128 bytes or more: shift it to make room for the longer
     * length prefix. */
    if (!room(pb, k - 1)) return;
    memmove(pb->buf + mark + k - 1, pb->buf + mark, body);
    pb->len += k - 1;
  }
  tr_pb_put_varint(pb->buf + mark - 1, body);
}

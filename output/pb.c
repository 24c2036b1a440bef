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

void tr_pb_double(tr_pb *pb, uint32_t field, double v) {
  if (!tr_pb_room(pb, tr_pb_varint_size((uint64_t)field << 3) + 8)) return;
  tr_pb_put_tag(pb, field, TR_PB_FIXED64);
  uint64_t bits;
  memcpy(&bits, &v, sizeof(bits));
  for (int i = 0; i < 8; i++) pb->buf[pb->len++] = (uint8_t)(bits >> (8 * i));
}

void tr_pb_bytes(tr_pb *pb, uint32_t field, const void *data, size_t n) {
  if (!tr_pb_room(pb, tr_pb_varint_size((uint64_t)field << 3) +
                          tr_pb_varint_size(n) + n))
    return;
  tr_pb_put_tag(pb, field, TR_PB_LEN);
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
  if (!tr_pb_room(pb, tr_pb_varint_size((uint64_t)field << 3) +
                          tr_pb_varint_size(out) + out))
    return;
  tr_pb_put_tag(pb, field, TR_PB_LEN);
  pb->len = (size_t)(tr_pb_put_varint(pb->buf + pb->len, out) - pb->buf);
  pb->len += tr_utf8_sanitize((char *)pb->buf + pb->len, s, n);
}

void tr_pb_end_long(tr_pb *pb, size_t mark) {
  size_t body = pb->len - mark;
  size_t k = tr_pb_varint_size(body);
  if (!tr_pb_room(pb, k - 1)) return;
  memmove(pb->buf + mark + k - 1, pb->buf + mark, body);
  pb->len += k - 1;
  tr_pb_put_varint(pb->buf + mark - 1, body);
}

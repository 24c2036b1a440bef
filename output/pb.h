/* pb.h: a minimal protocol-buffers encoder writing into a caller's fixed
 * buffer: varints, fixed64 doubles, length-delimited bytes and nested
 * messages (wire format: developers.google.com/protocol-buffers/docs/
 * encoding).
 *
 * Nothing allocates.  A write that does not fit sets `overflow` and writes
 * nothing more; the caller checks it once after encoding a whole message
 * and discards the partial bytes.  Nested messages are written in place: a
 * one-byte length is reserved by tr_pb_begin() and tr_pb_end() moves the
 * body when its length needs a longer varint, so every length on the wire
 * is minimal. */
#ifndef TRACED_PB_H
#define TRACED_PB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Wire types. */
enum {
  TR_PB_VARINT = 0,
  TR_PB_FIXED64 = 1,
  TR_PB_LEN = 2,
  TR_PB_FIXED32 = 5,
};

#define TR_PB_VARINT_MAX 10 /* bytes of the longest varint (a uint64) */

typedef struct tr_pb {
  uint8_t *buf; /* borrowed */
  size_t len;
  size_t cap;
  bool overflow;
} tr_pb;

void tr_pb_init(tr_pb *pb, uint8_t *buf, size_t cap);

/* The varint helpers, fields and nested messages are inline: a Perfetto
 * event is a dozen of them, and as calls into another file they were
 * over a third of the daemon's time formatting one (docs/benchmarks.md,
 * "Cheaper bytes"). */

/* Bytes the varint encoding of v takes (1..10): 7 bits a byte. */
static inline size_t tr_pb_varint_size(uint64_t v) {
  unsigned bits = 64u - (unsigned)__builtin_clzll(v | 1u);
  return (bits * 9u + 64u) / 64u;
}

/* Writes the varint encoding of v at p (room for TR_PB_VARINT_MAX bytes);
 * returns the end. */
static inline uint8_t *tr_pb_put_varint(uint8_t *p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  return p;
}

/* Makes sure n more bytes fit; sets overflow (sticky) when they do not. */
static inline bool tr_pb_room(tr_pb *pb, size_t n) {
  if (pb->overflow) return false;
  if (pb->cap - pb->len < n) {
    pb->overflow = true;
    return false;
  }
  return true;
}

static inline void tr_pb_put_tag(tr_pb *pb, uint32_t field, unsigned wire) {
  uint8_t *p = tr_pb_put_varint(pb->buf + pb->len,
                                ((uint64_t)field << 3) | (uint64_t)wire);
  pb->len = (size_t)(p - pb->buf);
}

/* uint32/uint64/enum/bool fields; negative int32/int64 values are written
 * as their 64-bit two's complement (ten bytes), as protobuf requires. */
static inline void tr_pb_uint(tr_pb *pb, uint32_t field, uint64_t v) {
  /* A tag takes at most 5 bytes (field < 2^29) and the value 10: only
   * near the buffer's end are the exact sizes worth computing. */
  size_t need = 5 + TR_PB_VARINT_MAX;
  if (pb->cap - pb->len < need)
    need = tr_pb_varint_size((uint64_t)field << 3) + tr_pb_varint_size(v);
  if (!tr_pb_room(pb, need)) return;
  tr_pb_put_tag(pb, field, TR_PB_VARINT);
  pb->len = (size_t)(tr_pb_put_varint(pb->buf + pb->len, v) - pb->buf);
}

static inline void tr_pb_int(tr_pb *pb, uint32_t field, int64_t v) {
  tr_pb_uint(pb, field, (uint64_t)v);
}

static inline void tr_pb_bool(tr_pb *pb, uint32_t field, bool v) {
  tr_pb_uint(pb, field, v ? 1 : 0);
}

void tr_pb_double(tr_pb *pb, uint32_t field, double v);

/* n bytes already encoded (whole fields, e.g. a packet's constant ones). */
static inline void tr_pb_raw(tr_pb *pb, const void *data, size_t n) {
  if (!tr_pb_room(pb, n)) return;
  memcpy(pb->buf + pb->len, data, n);
  pb->len += n;
}

/* A string or bytes field holding n bytes. */
void tr_pb_bytes(tr_pb *pb, uint32_t field, const void *data, size_t n);

/* A string field holding s[0..n) with each invalid UTF-8 sequence replaced
 * by U+FFFD, as the JSON writer does, so both formats carry the same
 * names. */
void tr_pb_utf8(tr_pb *pb, uint32_t field, const char *s, size_t n);

/* Starts a nested message (or the payload of any length-delimited field)
 * and returns a mark for tr_pb_end(), which closes it. */
static inline size_t tr_pb_begin(tr_pb *pb, uint32_t field) {
  if (!tr_pb_room(pb, tr_pb_varint_size((uint64_t)field << 3) + 1)) return 0;
  tr_pb_put_tag(pb, field, TR_PB_LEN);
  pb->buf[pb->len++] = 0; /* the length, usually one byte: see tr_pb_end */
  return pb->len;
}

/* The body is 128 bytes or more: moves it to make room for its longer
 * length prefix. */
void tr_pb_end_long(tr_pb *pb, size_t mark);

static inline void tr_pb_end(tr_pb *pb, size_t mark) {
  if (pb->overflow) return;
  size_t body = pb->len - mark;
  if (body >= 0x80) {
    tr_pb_end_long(pb, mark);
    return;
  }
  pb->buf[mark - 1] = (uint8_t)body;
}

#endif

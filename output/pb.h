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

/* Bytes the varint encoding of v takes (1..10). */
size_t tr_pb_varint_size(uint64_t v);

/* Writes the varint encoding of v at p (room for TR_PB_VARINT_MAX bytes);
 * returns the end. */
uint8_t *tr_pb_put_varint(uint8_t *p, uint64_t v);

/* uint32/uint64/enum/bool fields; negative int32/int64 values are written
 * as their 64-bit two's complement (ten bytes), as protobuf requires. */
void tr_pb_uint(tr_pb *pb, uint32_t field, uint64_t v);
void tr_pb_int(tr_pb *pb, uint32_t field, int64_t v);
void tr_pb_bool(tr_pb *pb, uint32_t field, bool v);
void tr_pb_double(tr_pb *pb, uint32_t field, double v);

/* A string or bytes field holding n bytes. */
void tr_pb_bytes(tr_pb *pb, uint32_t field, const void *data, size_t n);

/* A string field holding s[0..n) with each invalid UTF-8 sequence replaced
 * by U+FFFD, as the JSON writer does, so both formats carry the same
 * names. */
void tr_pb_utf8(tr_pb *pb, uint32_t field, const char *s, size_t n);

/* Starts a nested message (or the payload of any length-delimited field)
 * and returns a mark for tr_pb_end(), which closes it. */
size_t tr_pb_begin(tr_pb *pb, uint32_t field);
void tr_pb_end(tr_pb *pb, size_t mark);

#endif

/* pbread.h: reads the fields of a protocol-buffers message held in memory,
 * one at a time, without copying: what the Perfetto trace reader walks
 * each packet with (wire types: output/pb.h).
 *
 * Nothing allocates.  A field's bytes (length-delimited ones) point into
 * the message and are valid as long as it is. */
#ifndef TRACED_PBREAD_H
#define TRACED_PBREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "output/pb.h"

/* The part of a message still to read. */
typedef struct tr_pbr {
  const uint8_t *p, *end;
} tr_pbr;

typedef struct tr_pbr_field {
  uint32_t num; /* field number, >= 1 */
  int wt;       /* TR_PB_VARINT, TR_PB_FIXED64, TR_PB_LEN or TR_PB_FIXED32 */
  uint64_t v;   /* varint, fixed64 (little-endian hosts), fixed32 */
  const uint8_t *data;
  size_t len; /* TR_PB_LEN */
} tr_pbr_field;

static inline tr_pbr tr_pbr_of(const void *msg, size_t len) {
  return (tr_pbr){msg, (const uint8_t *)msg + len};
}

/* The message inside a length-delimited field. */
static inline tr_pbr tr_pbr_sub(const tr_pbr_field *f) {
  return tr_pbr_of(f->data, f->len);
}

/* Reads the next field into *f: 1, 0 at the end of the message, -1 when it
 * is malformed (a varint over 10 bytes, field number 0 or over 2^32, a
 * length past the end, a group or an unknown wire type). */
int tr_pbr_next(tr_pbr *b, tr_pbr_field *f);

#endif

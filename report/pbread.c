/* pbread.c: the in-memory protocol-buffers field reader of pbread.h. */
#include "pbread.h"

#include <string.h>

static bool varint(tr_pbr *b, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < 10 && b->p < b->end; i++) {
    uint8_t c = *b->p++;
    *v |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) return true;
  }
  return false;
}

int tr_pbr_next(tr_pbr *b, tr_pbr_field *f) {
  if (b->p >= b->end) return 0;
  uint64_t tag;
  if (!varint(b, &tag)) return -1;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (int)(tag & 7);
  if (f->num == 0 || tag >> 3 > UINT32_MAX) return -1;
  switch (f->wt) {
    case TR_PB_VARINT:
      return varint(b, &f->v) ? 1 : -1;
    case TR_PB_FIXED64:
      if (b->end - b->p < 8) return -1;
      memcpy(&f->v, b->p, 8); /* little-endian hosts */
      b->p += 8;
      return 1;
    case TR_PB_FIXED32: {
      if (b->end - b->p < 4) return -1;
      uint32_t x;
      memcpy(&x, b->p, 4);
      f->v = x;
      b->p += 4;
      return 1;
    }
    case TR_PB_LEN: {
      uint64_t n;
      if (!varint(b, &n) || n > (uint64_t)(b->end - b->p)) return -1;
      f->data = b->p;
      f->len = (size_t)n;
      b->p += n;
      return 1;
    }
    default:
      return -1; /* groups (3, 4) and 6, 7 */
  }
}

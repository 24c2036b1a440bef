/* mpcheck.c: a bounds-checking walk over msgpack bytes, run before
 * msgpack-c unpacks anything a peer sent. */
#include "mpcheck.h"

#define MP_MAX_DEPTH TR_MPCHECK_MAX_DEPTH

static long check(const uint8_t *p, size_t n, int depth) {
  if (n == 0 || depth > MP_MAX_DEPTH) return -1;
  uint8_t c = p[0];
  size_t hdr = 1;
  uint64_t len = 0, items = 0;
  if (c <= 0x7f || c >= 0xe0) return 1;
  if ((c & 0xf0) == 0x80) {
    items = 2u * (c & 0x0fu);
    goto container;
  }
  if ((c & 0xf0) == 0x90) {
    items = c & 0x0fu;
    goto container;
  }
  if ((c & 0xe0) == 0xa0) {
    len = c & 0x1fu;
    goto bytes;
  }
#define BE16(q) ((uint64_t)(q)[0] << 8 | (q)[1])
#define BE32(q)                                                              \
  ((uint64_t)(q)[0] << 24 | (uint64_t)(q)[1] << 16 | (uint64_t)(q)[2] << 8 | \
   (q)[3])
  switch (c) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      return 1;
    case 0xcc:
    case 0xd0:
      return n >= 2 ? 2 : -1;
    case 0xcd:
    case 0xd1:
      return n >= 3 ? 3 : -1;
    case 0xca:
    case 0xce:
    case 0xd2:
      return n >= 5 ? 5 : -1;
    case 0xcb:
    case 0xcf:
    case 0xd3:
      return n >= 9 ? 9 : -1;
    case 0xd4:
      return n >= 3 ? 3 : -1;
    case 0xd5:
      return n >= 4 ? 4 : -1;
    case 0xd6:
      return n >= 6 ? 6 : -1;
    case 0xd7:
      return n >= 10 ? 10 : -1;
    case 0xd8:
      return n >= 18 ? 18 : -1;
    case 0xc4:
    case 0xd9:
      if (n < 2) return -1;
      hdr = 2;
      len = p[1];
      goto bytes;
    case 0xc5:
    case 0xda:
      if (n < 3) return -1;
      hdr = 3;
      len = BE16(p + 1);
      goto bytes;
    case 0xc6:
    case 0xdb:
      if (n < 5) return -1;
      hdr = 5;
      len = BE32(p + 1);
      goto bytes;
    case 0xc7:
      if (n < 3) return -1;
      hdr = 3;
      len = p[1];
      goto bytes;
    case 0xc8:
      if (n < 4) return -1;
      hdr = 4;
      len = BE16(p + 1);
      goto bytes;
    case 0xc9:
      if (n < 6) return -1;
      hdr = 6;
      len = BE32(p + 1);
      goto bytes;
    case 0xdc:
      if (n < 3) return -1;
      hdr = 3;
      items = BE16(p + 1);
      goto container;
    case 0xdd:
      if (n < 5) return -1;
      hdr = 5;
      items = BE32(p + 1);
      goto container;
    case 0xde:
      if (n < 3) return -1;
      hdr = 3;
      items = 2 * BE16(p + 1);
      goto container;
    case 0xdf:
      if (n < 5) return -1;
      hdr = 5;
      items = 2 * BE32(p + 1);
      goto container;
    default:
      return -1; /* 0xc1: never used */
  }
#undef BE16
#undef BE32
bytes:
  if (n < hdr || n - hdr < len) return -1;
  return (long)(hdr + len);
container:
  if (n < hdr || items > n - hdr) return -1;
  {
    size_t off = hdr;
    for (uint64_t i = 0; i < items; i++) {
      long k = check(p + off, n - off, depth + 1);
      if (k < 0) return -1;
      off += (size_t)k;
    }
    return (long)off;
  }
}

long tr_mpcheck_size(const uint8_t *p, size_t n) { return check(p, n, 0); }

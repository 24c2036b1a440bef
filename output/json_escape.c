/* json_escape.c: escaping bytes for a JSON string, invalid UTF-8 repaired,
 * into a buffer or onto a stdio stream. */
#include "json_escape.h"

#include <string.h>

#include "utf8.h"

/* 0: copied as is; 1: ASCII that must be escaped; 2: start of a non-ASCII
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
          memcpy(d, "u00", 3);
          d += 3;
          *d++ = hex_digits[c >> 4];
          *d++ = hex_digits[c & 15];
      }
      s++;
      continue;
    }
    int k = tr_utf8_seq(s, (size_t)(end - s));
    if (k > 0) {
      memcpy(d, s, (size_t)k);
      d += k;
      s += k;
    } else {
      memcpy(d, "\\ufffd", 6);
      d += 6;
      s += -k;
    }
  }
  return (size_t)(d - dst);
}

/* Input bytes escaped at a time onto a stream (with no allocation). */
#define PUT_CHUNK 256u

void tr_json_put_str(FILE *f, const char *s, size_t n) {
  char buf[TR_JSON_ESCAPED_MAX(PUT_CHUNK)];
  fputc('"', f);
  while (n > 0) {
    size_t k = n;
    if (k > PUT_CHUNK) {
      /* Cut before a byte that is no continuation byte, when one of the
       * last few is: a sequence is then never split, and the escaped
       * chunks are what escaping it whole would give. */
      k = PUT_CHUNK;
      for (size_t b = PUT_CHUNK; b > PUT_CHUNK - 4; b--)
        if (((uint8_t)s[b] & 0xc0) != 0x80) {
          k = b;
          break;
        }
    }
    fwrite(buf, 1, tr_json_escape(buf, s, k), f);
    s += k;
    n -= k;
  }
  fputc('"', f);
}

/* utf8.c: UTF-8 validation and replacement of ill-formed sequences. */
#include "utf8.h"

#include <string.h>

int tr_utf8_seq(const uint8_t *s, size_t avail) {
  uint8_t c = s[0];
  int need;
  uint8_t lo = 0x80, hi = 0xbf;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 1;
  } else if (c == 0xe0) {
    need = 2;
    lo = 0xa0; /* overlong below U+0800 */
  } else if (c == 0xed) {
    need = 2;
    hi = 0x9f; /* surrogates U+D800..U+DFFF */
  } else if (c >= 0xe1 && c <= 0xef) {
    need = 2;
  } else if (c == 0xf0) {
    need = 3;
    lo = 0x90; /* overlong below U+10000 */
  } else if (c >= 0xf1 && c <= 0xf3) {
    need = 3;
  } else if (c == 0xf4) {
    need = 3;
    hi = 0x8f; /* above U+10FFFF */
  } else {
    return -1; /* continuation byte, C0/C1 overlong lead, F5..FF */
  }
  for (int i = 1; i <= need; i++) {
    if ((size_t)i >= avail) return -i;
    uint8_t b = s[i];
    if (b < lo || b > hi) return -i;
    lo = 0x80;
    hi = 0xbf;
  }
  return need + 1;
}

size_t tr_utf8_sanitize(char *dst, const char *src, size_t n) {
  const uint8_t *s = (const uint8_t *)src, *end = s + n;
  char *d = dst;
  while (s < end) {
    const uint8_t *run = s;
    while (s < end && *s < 0x80) s++;
    if (s > run) {
      memcpy(d, run, (size_t)(s - run));
      d += s - run;
    }
    if (s == end) break;
    tr_utf8_copy(&d, &s, end, TR_UTF8_REPLACEMENT, 3);
  }
  return (size_t)(d - dst);
}

size_t tr_utf8_sanitized_len(const char *src, size_t n) {
  const uint8_t *s = (const uint8_t *)src, *end = s + n;
  size_t len = 0;
  while (s < end) {
    if (*s < 0x80) {
      s++;
      len++;
      continue;
    }
    int k = tr_utf8_seq(s, (size_t)(end - s));
    if (k > 0) {
      s += k;
      len += (size_t)k;
    } else {
      s += -k;
      len += 3;
    }
  }
  return len;
}

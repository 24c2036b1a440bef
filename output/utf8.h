/* utf8.h: validating UTF-8 the way every trace writer must agree on, so a
 * name that is not valid UTF-8 reads the same in every output format.
 *
 * Each maximal ill-formed subsequence (a stray continuation byte, an
 * overlong form, a surrogate, a code point above U+10FFFF, a truncated
 * sequence) stands for one U+FFFD: the Unicode "maximal subpart"
 * practice (Unicode 15, section 3.9, table 3-7). */
#ifndef TRACED_UTF8_H
#define TRACED_UTF8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* s[0] is a byte >= 0x80 and avail >= 1 bytes are readable.  Returns the
 * length of the well-formed sequence starting at s (2..4), or minus the
 * length of the ill-formed subsequence to replace by one U+FFFD (-1..-3). */
int tr_utf8_seq(const uint8_t *s, size_t avail);

/* Copies the character at *s (a byte >= 0x80 before end) to *d, or, for
 * an ill-formed subsequence, the rlen bytes of `repl` (U+FFFD in the
 * output's spelling); advances both.  Inline: the writers call it per
 * non-ASCII character. */
static inline void tr_utf8_copy(char **d, const uint8_t **s, const uint8_t *end,
                                const char *repl, size_t rlen) {
  int k = tr_utf8_seq(*s, (size_t)(end - *s));
  if (k > 0) {
    memcpy(*d, *s, (size_t)k);
    *d += k;
    *s += k;
  } else {
    memcpy(*d, repl, rlen);
    *d += rlen;
    *s += -k;
  }
}

/* The UTF-8 encoding of U+FFFD. */
#define TR_UTF8_REPLACEMENT "\xef\xbf\xbd"

/* Worst-case output size of tr_utf8_sanitize for n input bytes (each
 * byte may become a 3-byte U+FFFD). */
#define TR_UTF8_SANITIZED_MAX(n) ((size_t)(n)*3u)

/* Copies src[0..n) to dst, replacing each ill-formed subsequence by
 * U+FFFD.  dst must hold TR_UTF8_SANITIZED_MAX(n) bytes.  Returns the
 * bytes written. */
size_t tr_utf8_sanitize(char *dst, const char *src, size_t n);

/* The length tr_utf8_sanitize would return, without writing. */
size_t tr_utf8_sanitized_len(const char *src, size_t n);

#endif

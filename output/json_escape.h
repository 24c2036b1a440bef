/* json_escape.h: the one JSON string escaper, shared by the JSON trace
 * writer, `traced report --json` and `traced status --json`: quote and
 * backslash escaped, control characters as \n \t ... or \u00XX, valid
 * UTF-8 copied, and each maximal invalid UTF-8 subsequence (stray
 * continuation, overlong form, surrogate, > U+10FFFF, truncated sequence)
 * replaced by \ufffd (utf8.h), so what it writes is always valid JSON. */
#ifndef TRACED_JSON_ESCAPE_H
#define TRACED_JSON_ESCAPE_H

#include <stddef.h>
#include <stdio.h>

/* Worst-case escaped size of n input bytes ("\u001f" or "\ufffd" for each). */
#define TR_JSON_ESCAPED_MAX(n) ((size_t)(n)*6u)

/* Escapes n bytes for use inside a JSON string.  dst must hold
 * TR_JSON_ESCAPED_MAX(n) bytes.  Returns the bytes written (no NUL). */
size_t tr_json_escape(char *dst, const char *src, size_t n);

/* Writes s[0..n) to f as a JSON string, quotes included.  Allocates
 * nothing; stream errors are left in ferror(f). */
void tr_json_put_str(FILE *f, const char *s, size_t n);

#endif

/* jsontok.c: a strict, streaming JSON tokenizer that pulls its input
 * through a fixed buffer, so memory does not grow with the input. */
#include "jsontok.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tr_jsontok_init(tr_jsontok *t, tr_jsontok_read_fn read, void *ctx) {
  memset(t, 0, sizeof(*t));
  t->read = read;
  t->ctx = ctx;
  t->line = 1;
  t->buf = malloc(TR_JSONTOK_BUF_SIZE);
  t->scap = 256;
  t->str = malloc(t->scap);
  if (t->buf == NULL || t->str == NULL) {
    tr_jsontok_fini(t);
    return -ENOMEM;
  }
  t->str[0] = '\0';
  return 0;
}

void tr_jsontok_fini(tr_jsontok *t) {
  free(t->buf);
  free(t->str);
  t->buf = NULL;
  t->str = NULL;
}

/* The byte offset (0-based) of the next unread byte. */
static uint64_t offset_of(const tr_jsontok *t) { return t->consumed + t->pos; }

static void verrorf(tr_jsontok *t, uint64_t line, uint64_t col, const char *fmt,
                    va_list ap) {
  int n = snprintf(t->err, sizeof(t->err),
                   "line %llu, column %llu: ", (unsigned long long)line,
                   (unsigned long long)col);
  if (n < 0 || (size_t)n >= sizeof(t->err)) return;
  vsnprintf(t->err + n, sizeof(t->err) - (size_t)n, fmt, ap);
}

void tr_jsontok_errorf(tr_jsontok *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verrorf(t, t->line, offset_of(t) - t->line_at + 1, fmt, ap);
  va_end(ap);
}

void tr_jsontok_token_errorf(tr_jsontok *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verrorf(t, t->tok_line, t->tok_col, fmt, ap);
  va_end(ap);
}

/* Makes buf[pos] readable.  Returns 1, 0 at the end of the input, or a
 * negative errno from the source. */
static int fill(tr_jsontok *t) {
  if (t->pos < t->len) return 1;
  if (t->eof) return 0;
  t->consumed += t->len;
  t->pos = t->len = 0;
  for (;;) {
    ssize_t n = t->read(t->ctx, t->buf, TR_JSONTOK_BUF_SIZE);
    if (n > 0) {
      t->len = (size_t)n;
      return 1;
    }
    if (n == 0) {
      t->eof = true;
      return 0;
    }
    if (n == -EINTR) continue;
    snprintf(t->err, sizeof(t->err), "reading failed at byte %llu: %s",
             (unsigned long long)t->consumed, strerror((int)-n));
    return (int)n;
  }
}

/* The next byte without consuming it, -1 at the end of the input, or a
 * source error (always below -1: an -EPERM would read as the end, so it
 * becomes -EIO). */
static inline int peek(tr_jsontok *t) {
  if (t->pos < t->len) return t->buf[t->pos];
  int rc = fill(t);
  if (rc < 0) return rc == -1 ? -EIO : rc;
  return rc == 0 ? -1 : t->buf[t->pos];
}

/* Skips whitespace and returns the next byte without consuming it: 0..255,
 * -1 at the end of the input, or a source error below -1. */
static int skip_ws(tr_jsontok *t) {
  for (;;) {
    int c = peek(t);
    if (c == ' ' || c == '\t' || c == '\r') {
      t->pos++;
    } else if (c == '\n') {
      t->pos++;
      t->line++;
      t->line_at = offset_of(t);
    } else {
      return c;
    }
  }
}

/* Appends to the string token, keeping at most TR_JSONTOK_STR_MAX bytes. */
static int str_put(tr_jsontok *t, const void *p, size_t n) {
  if (t->slen + n > TR_JSONTOK_STR_MAX) {
    t->truncated = true;
    n = TR_JSONTOK_STR_MAX - t->slen;
  }
  if (t->slen + n + 1 > t->scap) {
    size_t cap = t->scap;
    while (t->slen + n + 1 > cap) cap *= 2;
    if (cap > TR_JSONTOK_STR_MAX + 1) cap = TR_JSONTOK_STR_MAX + 1;
    char *s = realloc(t->str, cap);
    if (s == NULL) {
      snprintf(t->err, sizeof(t->err), "out of memory");
      return -ENOMEM;
    }
    t->str = s;
    t->scap = cap;
  }
  memcpy(t->str + t->slen, p, n);
  t->slen += n;
  t->str[t->slen] = '\0';
  return 0;
}

static int put_code_point(tr_jsontok *t, uint32_t cp) {
  uint8_t b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (uint8_t)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (uint8_t)(0xc0 | (cp >> 6));
    b[1] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 2;
  } else if (cp < 0x10000) {
    b[0] = (uint8_t)(0xe0 | (cp >> 12));
    b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[2] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 3;
  } else {
    b[0] = (uint8_t)(0xf0 | (cp >> 18));
    b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (uint8_t)(0x80 | (cp & 0x3f));
    n = 4;
  }
  return str_put(t, b, n);
}

#define REPLACEMENT 0xfffdu

/* Reads the four hex digits after "\u". */
static int read_hex4(tr_jsontok *t, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    int c = peek(t);
    if (c == -1) return -ENODATA;
    if (c < -1) return c;
    uint32_t d;
    if (c >= '0' && c <= '9')
      d = (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f')
      d = (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
      d = (uint32_t)(c - 'A' + 10);
    else {
      tr_jsontok_errorf(t, "bad \\u escape in a string");
      return -EBADMSG;
    }
    v = v * 16 + d;
    t->pos++;
  }
  *out = v;
  return 0;
}

static int lex_string(tr_jsontok *t) {
  t->pos++; /* the opening quote */
  t->slen = 0;
  t->str[0] = '\0';
  t->truncated = false;
  uint32_t high = 0; /* a high surrogate waiting for its low half */
  int rc;
  for (;;) {
    if (t->pos == t->len) {
      int f = fill(t);
      if (f == 0) return -ENODATA;
      if (f < 0) return f;
    }
    /* The common case: a run of bytes that need no decoding. */
    size_t start = t->pos;
    while (t->pos < t->len) {
      uint8_t b = t->buf[t->pos];
      if (b == '"' || b == '\\' || b < 0x20) break;
      t->pos++;
    }
    if (t->pos > start) {
      if (high) {
        high = 0;
        if ((rc = put_code_point(t, REPLACEMENT)) < 0) return rc;
      }
      if ((rc = str_put(t, t->buf + start, t->pos - start)) < 0) return rc;
    }
    if (t->pos == t->len) continue;
    uint8_t c = t->buf[t->pos];
    if (c == '"') {
      t->pos++;
      if (high) return put_code_point(t, REPLACEMENT) < 0 ? -ENOMEM : 0;
      return 0;
    }
    if (c < 0x20) {
      tr_jsontok_errorf(t, "control character 0x%02x inside a string", c);
      return -EBADMSG;
    }
    /* A backslash escape. */
    t->pos++;
    int e = peek(t);
    if (e == -1) return -ENODATA;
    if (e < -1) return e;
    t->pos++;
    uint32_t cp;
    switch (e) {
      case '"':
      case '\\':
      case '/':
        cp = (uint32_t)e;
        break;
      case 'b':
        cp = '\b';
        break;
      case 'f':
        cp = '\f';
        break;
      case 'n':
        cp = '\n';
        break;
      case 'r':
        cp = '\r';
        break;
      case 't':
        cp = '\t';
        break;
      case 'u':
        if ((rc = read_hex4(t, &cp)) < 0) return rc;
        break;
      default:
        t->pos--;
        tr_jsontok_errorf(t, "bad escape '\\%c' in a string",
                          e >= 0x20 && e < 0x7f ? e : '?');
        return -EBADMSG;
    }
    if (high) {
      if (cp >= 0xdc00 && cp <= 0xdfff) {
        cp = 0x10000 + ((high - 0xd800) << 10) + (cp - 0xdc00);
        high = 0;
        if ((rc = put_code_point(t, cp)) < 0) return rc;
        continue;
      }
      high = 0;
      if ((rc = put_code_point(t, REPLACEMENT)) < 0) return rc;
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
      high = cp;
      continue;
    }
    if (cp >= 0xdc00 && cp <= 0xdfff) cp = REPLACEMENT;
    if ((rc = put_code_point(t, cp)) < 0) return rc;
  }
}

/* Consumes one byte into the number token. */
static int num_take(tr_jsontok *t, int c) {
  if (t->slen >= TR_JSONTOK_NUM_MAX) {
    tr_jsontok_errorf(t, "number longer than %u characters",
                      TR_JSONTOK_NUM_MAX);
    return -E2BIG;
  }
  t->str[t->slen++] = (char)c;
  t->pos++;
  return 0;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* One or more digits. */
static int num_digits(tr_jsontok *t, const char *what) {
  int c = peek(t);
  if (c == -1) return -ENODATA;
  if (c < -1) return c;
  if (!is_digit(c)) {
    tr_jsontok_errorf(t, "expected a digit %s", what);
    return -EBADMSG;
  }
  int rc;
  while (is_digit(c)) {
    if ((rc = num_take(t, c)) < 0) return rc;
    c = peek(t);
    if (c < -1) return c;
  }
  return 0;
}

static int lex_number(tr_jsontok *t) {
  if (t->scap < TR_JSONTOK_NUM_MAX + 1) {
    char *s = realloc(t->str, TR_JSONTOK_NUM_MAX + 1);
    if (s == NULL) return -ENOMEM;
    t->str = s;
    t->scap = TR_JSONTOK_NUM_MAX + 1;
  }
  t->slen = 0;
  t->truncated = false;
  int rc, c = peek(t);
  if (c == '-') {
    if ((rc = num_take(t, c)) < 0) return rc;
    c = peek(t);
    if (c == -1) return -ENODATA;
    if (c < -1) return c;
  }
  if (c == '0') {
    if ((rc = num_take(t, c)) < 0) return rc;
    c = peek(t);
    if (c < -1) return c;
    if (is_digit(c)) {
      tr_jsontok_errorf(t, "a number has a leading zero");
      return -EBADMSG;
    }
  } else {
    if ((rc = num_digits(t, "in a number")) < 0) return rc;
    c = peek(t);
    if (c < -1) return c;
  }
  if (c == '.') {
    if ((rc = num_take(t, c)) < 0) return rc;
    if ((rc = num_digits(t, "after a decimal point")) < 0) return rc;
    c = peek(t);
    if (c < -1) return c;
  }
  if (c == 'e' || c == 'E') {
    if ((rc = num_take(t, c)) < 0) return rc;
    c = peek(t);
    if (c == '+' || c == '-') {
      if ((rc = num_take(t, c)) < 0) return rc;
    }
    if ((rc = num_digits(t, "in an exponent")) < 0) return rc;
  }
  t->str[t->slen] = '\0';
  return TR_TOK_NUMBER;
}

static int lex_literal(tr_jsontok *t, const char *word, int tok) {
  for (const char *w = word; *w; w++) {
    int c = peek(t);
    if (c == -1) return -ENODATA;
    if (c < -1) return c;
    if (c != *w) {
      tr_jsontok_errorf(t, "expected '%s'", word);
      return -EBADMSG;
    }
    t->pos++;
  }
  return tok;
}

int tr_jsontok_next(tr_jsontok *t) {
  int c = skip_ws(t);
  t->tok_line = t->line;
  t->tok_col = offset_of(t) - t->line_at + 1;
  if (c == -1) return TR_TOK_EOF;
  if (c < -1) return c;
  switch (c) {
    case '{':
      t->pos++;
      return TR_TOK_LBRACE;
    case '}':
      t->pos++;
      return TR_TOK_RBRACE;
    case '[':
      t->pos++;
      return TR_TOK_LBRACKET;
    case ']':
      t->pos++;
      return TR_TOK_RBRACKET;
    case ':':
      t->pos++;
      return TR_TOK_COLON;
    case ',':
      t->pos++;
      return TR_TOK_COMMA;
    case '"': {
      int rc = lex_string(t);
      return rc < 0 ? rc : TR_TOK_STRING;
    }
    case 't':
      return lex_literal(t, "true", TR_TOK_TRUE);
    case 'f':
      return lex_literal(t, "false", TR_TOK_FALSE);
    case 'n':
      return lex_literal(t, "null", TR_TOK_NULL);
    default:
      if (c == '-' || is_digit(c)) return lex_number(t);
      if (c > 0x20 && c < 0x7f)
        tr_jsontok_errorf(t, "unexpected character '%c'", c);
      else
        tr_jsontok_errorf(t, "unexpected byte 0x%02x", c);
      return -EBADMSG;
  }
}

/* ---- numbers ------------------------------------------------------------- */

int tr_json_number_scaled(const char *s, size_t n, int scale, int64_t *out) {
  const char *p = s, *end = s + n;
  bool neg = false;
  if (p < end && *p == '-') {
    neg = true;
    p++;
  }
  /* The significant digits, with the position of the decimal point. */
  const char *int_start = p;
  while (p < end && is_digit(*p)) p++;
  const char *int_end = p;
  const char *frac_start = p, *frac_end = p;
  if (p < end && *p == '.') {
    frac_start = ++p;
    while (p < end && is_digit(*p)) p++;
    frac_end = p;
  }
  long exp = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    p++;
    bool eneg = false;
    if (p < end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
    while (p < end && is_digit(*p)) {
      if (exp < 100000) exp = exp * 10 + (*p - '0');
      p++;
    }
    if (eneg) exp = -exp;
  }
  /* value = digits * 10^(exp - fraction digits + scale) */
  long shift = exp - (long)(frac_end - frac_start) + scale;
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  uint64_t v = 0;
  size_t ndig = (size_t)(int_end - int_start) + (size_t)(frac_end - frac_start);
  /* The digits that land left of the point once shifted; the first one
   * right of it decides the rounding. */
  long keep = (long)ndig + shift;
  if (keep > (long)ndig) keep = (long)ndig;
  int round_digit = 0;
  /* keep < 0: even the first digit lies beyond the rounding position. */
  for (size_t i = 0; keep >= 0 && i < ndig; i++) {
    size_t il = (size_t)(int_end - int_start);
    char d = i < il ? int_start[i] : frac_start[i - il];
    if ((long)i < keep) {
      if (v > (limit - (uint64_t)(d - '0')) / 10) return -ERANGE;
      v = v * 10 + (uint64_t)(d - '0');
    } else {
      round_digit = d - '0';
      break;
    }
  }
  if (shift > 0 && v != 0) {
    for (long i = 0; i < shift; i++) {
      if (v > limit / 10) return -ERANGE;
      v *= 10;
    }
  }
  if (round_digit >= 5) {
    if (v >= limit) return -ERANGE;
    v++;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

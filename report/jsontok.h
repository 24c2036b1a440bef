/* jsontok.h: a strict, streaming JSON tokenizer over a byte source, for
 * reading trace files far larger than memory.
 *
 * The tokenizer pulls bytes through a fixed buffer from a read callback and
 * returns one token at a time; it never holds more of the input than the
 * buffer and the current string or number token.  It checks the lexical
 * grammar of RFC 8259 strictly (no comments, no trailing garbage inside a
 * token, no raw control characters in strings, no leading zeros or bare
 * '.' in numbers); the caller checks the structure (it knows what it
 * expects next).
 *
 * Strings are decoded (escapes resolved, \uXXXX surrogate pairs joined into
 * UTF-8, a lone surrogate becomes U+FFFD) into a buffer that grows up to
 * TR_JSONTOK_STR_MAX bytes; the rest of a longer string is checked and
 * dropped (`truncated` is set).  Raw bytes >= 0x80 are copied as they are:
 * whoever prints a decoded string escapes it for its output. */
#ifndef TRACED_JSONTOK_H
#define TRACED_JSONTOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define TR_JSONTOK_BUF_SIZE (256u * 1024u)
#define TR_JSONTOK_STR_MAX (1024u * 1024u)
/* Longer numbers are refused: no trace needs them, and a bound keeps the
 * token buffer small. */
#define TR_JSONTOK_NUM_MAX 1024u

/* Reads up to n bytes into buf: returns the count, 0 at the end of the
 * input, or a negative errno. */
typedef ssize_t (*tr_jsontok_read_fn)(void *ctx, void *buf, size_t n);

typedef enum tr_tok {
  TR_TOK_EOF = 0, /* end of input between tokens */
  TR_TOK_LBRACE,
  TR_TOK_RBRACE,
  TR_TOK_LBRACKET,
  TR_TOK_RBRACKET,
  TR_TOK_COLON,
  TR_TOK_COMMA,
  TR_TOK_STRING, /* decoded into str/len */
  TR_TOK_NUMBER, /* its text in str/len, NUL-terminated */
  TR_TOK_TRUE,
  TR_TOK_FALSE,
  TR_TOK_NULL,
} tr_tok;

typedef struct tr_jsontok {
  tr_jsontok_read_fn read; /* the source; borrowed */
  void *ctx;
  uint8_t *buf; /* owned, TR_JSONTOK_BUF_SIZE bytes */
  size_t pos, len;
  bool eof;
  uint64_t consumed;          /* input bytes before buf[0] */
  uint64_t line;              /* 1-based line of the next byte */
  uint64_t line_at;           /* input offset where that line starts */
  uint64_t tok_line, tok_col; /* where the last token started (1-based) */
  char *str;                  /* owned: the current string or number token */
  size_t slen, scap;
  bool truncated; /* the current string was longer than TR_JSONTOK_STR_MAX */
  char err[192];  /* why the last call failed */
} tr_jsontok;

/* Prepares t to read through `read(ctx, ...)`.  Returns 0 or -ENOMEM. */
int tr_jsontok_init(tr_jsontok *t, tr_jsontok_read_fn read, void *ctx);
void tr_jsontok_fini(tr_jsontok *t);

/* The next token (a tr_tok, TR_TOK_EOF at the end of the input), or:
 *   -EBADMSG  the input is not JSON here (t->err says where and why);
 *   -ENODATA  the input ends inside a token (a file cut short);
 *   -E2BIG    a number longer than TR_JSONTOK_NUM_MAX;
 *   another negative errno from the source (t->err names it).
 * String and number contents are valid until the next call. */
int tr_jsontok_next(tr_jsontok *t);

/* Sets t->err to "line L, column C: " followed by the formatted message,
 * for errors found at the tokenizer's current position. */
void tr_jsontok_errorf(tr_jsontok *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The same at the start of the last token returned: for a caller that
 * did not expect that token there. */
void tr_jsontok_token_errorf(tr_jsontok *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Converts a number token's text to an integer: its value times 10^scale,
 * rounded half away from zero (scale 3 turns microseconds into
 * nanoseconds exactly for up to three decimals).  Returns 0, or -ERANGE
 * when the result does not fit an int64_t. */
int tr_json_number_scaled(const char *s, size_t n, int scale, int64_t *out);

#endif

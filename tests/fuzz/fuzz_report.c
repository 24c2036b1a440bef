/* fuzz_report.c: libFuzzer harness for `traced report`'s input side: the
 * streaming JSON tokenizer and trace reader (report/jsontok.c,
 * report/trace_read.c), the Perfetto protobuf reader
 * (report/pftrace_read.c), and the aggregation and printing of the report
 * (report/report.c).
 *
 * The input is a trace file's bytes (JSON or Perfetto, recognised from the
 * content as the command does).  Every event read is aggregated; then the
 * report is printed as text and as JSON, whatever the input was.  Checks:
 *   * the JSON report is valid JSON (parsed back with the tokenizer) and
 *     valid UTF-8;
 *   * the text report holds no control character but newlines (names
 *     are escaped for the terminal);
 *   * an error leaves a message.
 * Crashes, sanitizer reports and failed checks abort.  FUZZ_DUMP=1 prints
 * each report (to see what a seed does). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/jsontok.h"
#include "report/report.h"
#include "report/trace_read.h"

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "fuzz_report: check failed: %s (%s:%d)\n", #cond, \
              __FILE__, __LINE__);                                      \
      abort();                                                          \
    }                                                                   \
  } while (0)

typedef struct mem {
  const char *p;
  size_t n, pos;
} mem;

static ssize_t mem_read(void *ctx, void *buf, size_t n) {
  mem *m = ctx;
  size_t k = m->n - m->pos;
  if (k > n) k = n;
  /* Small reads, so tokens straddle buffer refills. */
  if (k > 7) k = 7;
  memcpy(buf, m->p + m->pos, k);
  m->pos += k;
  return (ssize_t)k;
}

/* Parses one JSON value; returns false when the text is not JSON. */
static bool json_value(tr_jsontok *t, int tok, int depth) {
  if (depth > 64) return false;
  switch (tok) {
    case TR_TOK_STRING:
    case TR_TOK_NUMBER:
    case TR_TOK_TRUE:
    case TR_TOK_FALSE:
    case TR_TOK_NULL:
      return true;
    case TR_TOK_LBRACKET:
      tok = tr_jsontok_next(t);
      if (tok == TR_TOK_RBRACKET) return true;
      for (;;) {
        if (!json_value(t, tok, depth + 1)) return false;
        tok = tr_jsontok_next(t);
        if (tok == TR_TOK_RBRACKET) return true;
        if (tok != TR_TOK_COMMA) return false;
        tok = tr_jsontok_next(t);
      }
    case TR_TOK_LBRACE:
      tok = tr_jsontok_next(t);
      if (tok == TR_TOK_RBRACE) return true;
      for (;;) {
        if (tok != TR_TOK_STRING) return false;
        if (tr_jsontok_next(t) != TR_TOK_COLON) return false;
        if (!json_value(t, tr_jsontok_next(t), depth + 1)) return false;
        tok = tr_jsontok_next(t);
        if (tok == TR_TOK_RBRACE) return true;
        if (tok != TR_TOK_COMMA) return false;
        tok = tr_jsontok_next(t);
      }
    default:
      return false;
  }
}

static bool valid_utf8(const uint8_t *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (n - i < len) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return false;
    i += len;
  }
  return true;
}

static void check_json(const char *out, size_t n) {
  CHECK(valid_utf8((const uint8_t *)out, n));
  mem m = {out, n, 0};
  tr_jsontok t;
  CHECK(tr_jsontok_init(&t, mem_read, &m) == 0);
  CHECK(json_value(&t, tr_jsontok_next(&t), 0));
  CHECK(tr_jsontok_next(&t) == TR_TOK_EOF);
  tr_jsontok_fini(&t);
}

static void check_text(const char *out, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint8_t c = (uint8_t)out[i];
    CHECK(c == '\n' || (c >= 0x20 && c != 0x7f));
  }
  CHECK(valid_utf8((const uint8_t *)out, n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  tr_trace *t;
  char err[256] = "";
  int rc = tr_trace_open_mem(&t, data, size, err, sizeof(err));
  if (rc < 0) {
    CHECK(err[0] != '\0');
    return 0;
  }
  tr_report *r;
  CHECK(tr_report_new(&r) == 0);
  tr_trace_event ev;
  while ((rc = tr_trace_next(t, &ev)) > 0) {
    CHECK(ev.name_len == 0 || ev.name != NULL);
    CHECK(tr_report_add(r, &ev) == 0);
  }
  if (rc < 0) CHECK(tr_trace_error(t)[0] != '\0');
  CHECK(tr_report_finish(r) == 0);
  tr_report_set_source(r, "fuzz", tr_trace_get_format(t),
                       tr_trace_compressed(t), tr_trace_cut_short(t),
                       tr_trace_skipped(t));
  tr_trace_close(t);

  static const tr_report_opts opts[] = {
      {.sort = TR_SORT_BOTH, .top = 20},
      {.sort = TR_SORT_CALLS, .top = 0},
      {.sort = TR_SORT_NAME, .top = 3, .has_pid = true, .pid = 1},
  };
  for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
    char *out;
    size_t n;
    FILE *f = open_memstream(&out, &n);
    CHECK(f != NULL);
    CHECK(tr_report_print_json(r, f, &opts[i]) == 0);
    fclose(f);
    check_json(out, n);
    if (getenv("FUZZ_DUMP")) fwrite(out, 1, n, stderr);
    free(out);
    f = open_memstream(&out, &n);
    CHECK(f != NULL);
    CHECK(tr_report_print_text(r, f, &opts[i]) == 0);
    fclose(f);
    check_text(out, n);
    if (getenv("FUZZ_DUMP")) fwrite(out, 1, n, stderr);
    free(out);
  }
  tr_report_free(r);
  return 0;
}

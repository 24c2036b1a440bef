/* check_report.c: unit tests of `traced report`'s pieces: the streaming
 * JSON tokenizer, the trace readers (Chrome JSON, Perfetto protobuf) and
 * the aggregation of calls into self and total times. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "report/jsontok.h"
#include "report/report.h"
#include "report/trace_read.h"

/* ---- a source that hands out `chunk` bytes per read ---------------------- */

typedef struct src {
  const char *p;
  size_t n, pos, chunk;
} src;

static ssize_t src_read(void *ctx, void *buf, size_t n) {
  src *s = ctx;
  size_t k = s->n - s->pos;
  if (k > n) k = n;
  if (s->chunk && k > s->chunk) k = s->chunk;
  memcpy(buf, s->p + s->pos, k);
  s->pos += k;
  return (ssize_t)k;
}

/* Tokenizes `text` read `chunk` bytes at a time; returns the tokens as
 * one string: {}[]:, for punctuation, s"..." for strings, n<text> for
 * numbers, t f z for literals, E<errno> for an error, and stops at EOF. */
static char *tokens(const char *text, size_t chunk) {
  static char out[4096];
  src s = {text, strlen(text), 0, chunk};
  tr_jsontok t;
  ck_assert_int_eq(tr_jsontok_init(&t, src_read, &s), 0);
  size_t o = 0;
  out[0] = '\0';
  for (;;) {
    int tok = tr_jsontok_next(&t);
    if (tok == TR_TOK_EOF) break;
    if (tok < 0) {
      o += (size_t)snprintf(out + o, sizeof(out) - o, "E%d", -tok);
      break;
    }
    static const char punct[] = " {}[]:,";
    if (tok <= TR_TOK_COMMA)
      out[o++] = punct[tok];
    else if (tok == TR_TOK_STRING)
      o += (size_t)snprintf(out + o, sizeof(out) - o, "s\"%.*s\"", (int)t.slen,
                            t.str);
    else if (tok == TR_TOK_NUMBER)
      o += (size_t)snprintf(out + o, sizeof(out) - o, "n%s", t.str);
    else
      out[o++] = tok == TR_TOK_TRUE ? 't' : tok == TR_TOK_FALSE ? 'f' : 'z';
    out[o] = '\0';
  }
  tr_jsontok_fini(&t);
  return out;
}

/* The same at every chunk size from 1 to 7 and unchunked: the result must
 * not depend on where the buffer refills fall. */
static void check_tokens(const char *text, const char *want) {
  for (size_t chunk = 0; chunk <= 7; chunk++)
    ck_assert_str_eq(tokens(text, chunk), want);
}

START_TEST(test_report_tok_structure) {
  check_tokens(" { \"a\" : [1, -2.5e3, true, false, null] }\n",
               "{s\"a\":[n1,n-2.5e3,t,f,z]}");
  check_tokens("", "");
  check_tokens("\t\r\n ", "");
  check_tokens("[]{}", "[]{}");
}
END_TEST

START_TEST(test_report_tok_strings) {
  check_tokens("\"a\\\"b\\\\c\\/d\\n\\t\\r\\b\\f\"",
               "s\"a\"b\\c/d\n\t\r\b\f\"");
  /* \u escapes become UTF-8; a surrogate pair one character. */
  check_tokens("\"caf\\u00e9 \\u20ac\"", "s\"caf\xc3\xa9 \xe2\x82\xac\"");
  check_tokens("\"\\ud834\\udd1e\"", "s\"\xf0\x9d\x84\x9e\"");
  /* Lone surrogates become U+FFFD. */
  check_tokens("\"\\ud834x\"", "s\"\xef\xbf\xbdx\"");
  check_tokens("\"\\udd1e\"", "s\"\xef\xbf\xbd\"");
  check_tokens("\"\\ud834\"", "s\"\xef\xbf\xbd\"");
  check_tokens("\"\\ud834\\ud834\\udd1e\"",
               "s\"\xef\xbf\xbd\xf0\x9d\x84\x9e\"");
  /* Raw UTF-8 is copied. */
  check_tokens("\"\xe6\x97\xa5\"", "s\"\xe6\x97\xa5\"");
  check_tokens("\"\"", "s\"\"");
}
END_TEST

START_TEST(test_report_tok_errors) {
  /* A control character inside a string, a bad escape, a bad \u. */
  check_tokens("\"a\nb\"", "E74");
  check_tokens("\"\\x\"", "E74");
  check_tokens("\"\\u12g4\"", "E74");
  /* Leading zeros, a bare minus, a missing fraction or exponent. */
  check_tokens("01", "E74");
  check_tokens("-x", "E74");
  check_tokens("1.x", "E74");
  check_tokens("1ex", "E74");
  check_tokens("tru ", "E74");
  check_tokens("@", "E74");
  /* The input ends inside a token: a file cut short (ENODATA). */
  check_tokens("\"abc", "E61");
  check_tokens("\"abc\\", "E61");
  check_tokens("\"\\u12", "E61");
  check_tokens("[1.", "[E61");
  check_tokens("-", "E61");
  check_tokens("1e+", "E61");
  check_tokens("nul", "E61");
  /* A number is complete at the end of the input. */
  check_tokens("12", "n12");
  check_tokens("0", "n0");
  check_tokens("-0.5E-2", "n-0.5E-2");
}
END_TEST

START_TEST(test_report_tok_long_string_truncated) {
  size_t n = TR_JSONTOK_STR_MAX + 1000;
  char *text = malloc(n + 3);
  text[0] = '"';
  memset(text + 1, 'x', n);
  text[n + 1] = '"';
  text[n + 2] = '\0';
  src s = {text, n + 2, 0, 0};
  tr_jsontok t;
  ck_assert_int_eq(tr_jsontok_init(&t, src_read, &s), 0);
  ck_assert_int_eq(tr_jsontok_next(&t), TR_TOK_STRING);
  ck_assert(t.truncated);
  ck_assert_uint_eq(t.slen, TR_JSONTOK_STR_MAX);
  ck_assert_int_eq(tr_jsontok_next(&t), TR_TOK_EOF);
  tr_jsontok_fini(&t);
  free(text);
}
END_TEST

START_TEST(test_report_tok_error_position) {
  src s = {"[1,\n  2 x]", 10, 0, 0};
  tr_jsontok t;
  ck_assert_int_eq(tr_jsontok_init(&t, src_read, &s), 0);
  int tok;
  while ((tok = tr_jsontok_next(&t)) > 0) continue;
  ck_assert_int_eq(tok, -EBADMSG);
  ck_assert_str_eq(t.err, "line 2, column 5: unexpected character 'x'");
  tr_jsontok_fini(&t);
}
END_TEST

static int64_t scaled(const char *s, int scale) {
  int64_t v = 12345;
  ck_assert_int_eq(tr_json_number_scaled(s, strlen(s), scale, &v), 0);
  return v;
}

static int scaled_err(const char *s, int scale) {
  int64_t v;
  return tr_json_number_scaled(s, strlen(s), scale, &v);
}

START_TEST(test_report_numbers) {
  /* Microseconds with three decimals are exact nanoseconds. */
  ck_assert_int_eq(scaled("9864957652.234", 3), 9864957652234);
  ck_assert_int_eq(scaled("0.001", 3), 1);
  ck_assert_int_eq(scaled("7", 3), 7000);
  ck_assert_int_eq(scaled("-1.5", 3), -1500);
  /* More decimals round to the nearest, halves away from zero. */
  ck_assert_int_eq(scaled("1.0004", 3), 1000);
  ck_assert_int_eq(scaled("1.0005", 3), 1001);
  ck_assert_int_eq(scaled("-1.0005", 3), -1001);
  ck_assert_int_eq(scaled("0.0004999", 3), 0);
  ck_assert_int_eq(scaled("0.00000001", 3), 0);
  /* Exponents. */
  ck_assert_int_eq(scaled("1e3", 3), 1000000);
  ck_assert_int_eq(scaled("1.5E-3", 3), 2);
  ck_assert_int_eq(scaled("2.5e+2", 0), 250);
  ck_assert_int_eq(scaled("1e-999999999", 3), 0);
  ck_assert_int_eq(scaled("0e999999999", 3), 0);
  ck_assert_int_eq(scaled("12345678901234567890e-10", 0), 1234567890);
  /* Limits of int64_t. */
  ck_assert_int_eq(scaled("9223372036854775807", 0), INT64_MAX);
  ck_assert_int_eq(scaled("-9223372036854775808", 0), INT64_MIN);
  ck_assert_int_eq(scaled_err("9223372036854775808", 0), -ERANGE);
  ck_assert_int_eq(scaled_err("9223372036854775.808", 3), -ERANGE);
  ck_assert_int_eq(scaled_err("1e19", 0), -ERANGE);
  ck_assert_int_eq(scaled_err("1e999999999", 0), -ERANGE);
  ck_assert_int_eq(scaled_err("9223372036854775807.5", 0), -ERANGE);
}
END_TEST

/* ---- the JSON trace reader ----------------------------------------------- */

typedef struct evlist {
  tr_trace_event ev[64];
  char names[64][64];
  int n;
  int rc; /* what ended the reading */
  bool cut;
  uint64_t skipped;
  char err[320];
} evlist;

static evlist *read_all(const char *text, size_t n) {
  static evlist l;
  memset(&l, 0, sizeof(l));
  tr_trace *t;
  char err[256];
  l.rc = tr_trace_open_mem(&t, text, n, err, sizeof(err));
  if (l.rc < 0) {
    snprintf(l.err, sizeof(l.err), "%s", err);
    return &l;
  }
  tr_trace_event ev;
  while ((l.rc = tr_trace_next(t, &ev)) > 0) {
    ck_assert_int_lt(l.n, 64);
    l.ev[l.n] = ev;
    snprintf(l.names[l.n], sizeof(l.names[0]), "%.*s", (int)ev.name_len,
             ev.name);
    l.ev[l.n].name = l.names[l.n];
    l.n++;
  }
  if (l.rc < 0) snprintf(l.err, sizeof(l.err), "%s", tr_trace_error(t));
  l.cut = tr_trace_cut_short(t);
  l.skipped = tr_trace_skipped(t);
  tr_trace_close(t);
  return &l;
}

#define READ(lit) read_all((lit), sizeof(lit) - 1)

START_TEST(test_report_read_traced_object_form) {
  evlist *l = READ(
      "{\"traceEvents\":[\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f (x.py:1)\",\"pid\":42,"
      "\"tid\":43,\"ts\":123456.789,\"dur\":7.890},\n"
      "{\"ph\":\"X\",\"cat\":\"api\",\"name\":\"span\",\"pid\":42,\"tid\":43,"
      "\"ts\":1.000,\"dur\":5.000,\"args\":{\"unfinished\":true}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"tick\",\"pid\":42,"
      "\"tid\":43,\"ts\":2.000},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"q\",\"pid\":42,\"tid\":43,"
      "\"ts\":3.000,\"args\":{\"value\":4}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"traced\",\"name\":\"traced: events "
      "lost (ring full)\",\"pid\":42,\"tid\":43,\"ts\":4.000,\"args\":"
      "{\"count\":17}},\n"
      "{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":42,\"tid\":43,\"args\":"
      "{\"name\":\"worker-1\",\"dropped\":3}},\n"
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":42,\"tid\":0,\"args\":"
      "{\"name\":\"python\",\"dropped\":20}},\n"
      "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":42,\"tid\":0,"
      "\"args\":{\"sort_index\":1}},\n"
      "{\"ph\":\"M\",\"name\":\"process_labels\",\"pid\":42,\"tid\":0,"
      "\"args\":{\"labels\":\"ppid 41\"}}\n"
      "]}\n");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(!l->cut);
  ck_assert_int_eq(l->n, 9);
  ck_assert_int_eq(l->ev[0].kind, TR_EV_COMPLETE);
  ck_assert_str_eq(l->names[0], "f (x.py:1)");
  ck_assert_int_eq(l->ev[0].pid, 42);
  ck_assert_int_eq(l->ev[0].tid, 43);
  ck_assert_int_eq(l->ev[0].ts_ns, 123456789);
  ck_assert_int_eq(l->ev[0].dur_ns, 7890);
  ck_assert(!l->ev[0].unfinished);
  ck_assert(l->ev[1].unfinished);
  ck_assert_int_eq(l->ev[2].kind, TR_EV_INSTANT);
  ck_assert_int_eq(l->ev[3].kind, TR_EV_COUNTER);
  ck_assert_int_eq(l->ev[4].kind, TR_EV_LOST);
  ck_assert_uint_eq(l->ev[4].count, 17);
  ck_assert_int_eq(l->ev[5].kind, TR_EV_THREAD_NAME);
  ck_assert_str_eq(l->names[5], "worker-1");
  ck_assert_int_eq(l->ev[6].kind, TR_EV_PROCESS_NAME);
  ck_assert_str_eq(l->names[6], "python");
  ck_assert(l->ev[6].has_dropped);
  ck_assert_uint_eq(l->ev[6].dropped, 20);
  ck_assert_int_eq(l->ev[7].kind, TR_EV_SORT_INDEX);
  ck_assert_int_eq(l->ev[7].sort_index, 1);
  ck_assert_int_eq(l->ev[8].kind, TR_EV_META);
}
END_TEST

START_TEST(test_report_read_array_form_and_cut_short) {
  /* traced's padded array head; the file ends after a complete event. */
  evlist *l = READ(
      "[               \n"
      "{\"ph\":\"X\",\"name\":\"a\",\"pid\":1,\"tid\":1,\"ts\":1.000,"
      "\"dur\":1.000},\n");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(l->cut);
  ck_assert_int_eq(l->n, 1);
  /* ... inside an event: that event is not reported. */
  l = READ(
      "[{\"ph\":\"X\",\"name\":\"a\",\"pid\":1,\"tid\":1,\"ts\":1,\"dur\":1},\n"
      "{\"ph\":\"X\",\"name\":\"b\",\"pid\":1,\"ti");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(l->cut);
  ck_assert_int_eq(l->n, 1);
  ck_assert_str_eq(l->names[0], "a");
  /* ... right after "[": an empty, cut-short trace. */
  l = READ("[");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(l->cut);
  ck_assert_int_eq(l->n, 0);
  /* A finished array form (an output that cannot seek). */
  l = READ("[               \n{\"ph\":\"i\",\"ts\":1}\n]\n");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(!l->cut);
  ck_assert_int_eq(l->n, 1);
  /* An object form cut short inside traceEvents, and after it. */
  l = READ("{\"traceEvents\":[{\"ph\":\"i\",\"ts\":1},");
  ck_assert(l->cut);
  ck_assert_int_eq(l->n, 1);
  l = READ("{\"traceEvents\":[{\"ph\":\"i\",\"ts\":1}],\"x\":[1,");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(l->cut);
  ck_assert_int_eq(l->n, 1);
}
END_TEST

START_TEST(test_report_read_other_producers) {
  /* Keys in any order, other keys (nested) skipped, B/E pairs, instants
   * with "I", other top-level keys before and after traceEvents. */
  evlist *l = READ(
      "{\"displayTimeUnit\":\"ns\",\"otherData\":{\"a\":[1,{\"b\":[]}]},\n"
      " \"traceEvents\":[\n"
      "  {\"name\":\"outer\",\"ts\":10,\"tid\":2,\"pid\":1,\"ph\":\"B\","
      "\"args\":{\"x\":[1,2,{\"y\":null}],\"name\":{\"deep\":true}}},\n"
      "  {\"ph\":\"E\",\"ts\":2e1,\"pid\":1,\"tid\":2},\n"
      "  "
      "{\"ph\":\"I\",\"ts\":11.5,\"pid\":1,\"tid\":2,\"name\":\"n\\u00e9\"},\n"
      "  {\"ph\":\"b\",\"ts\":12,\"pid\":1,\"tid\":2,\"id\":\"0x1\"}\n"
      " ],\n"
      " \"metadata\":{\"clock\":\"x\"}}");
  ck_assert_int_eq(l->rc, 0);
  ck_assert(!l->cut);
  ck_assert_int_eq(l->n, 4);
  ck_assert_int_eq(l->ev[0].kind, TR_EV_BEGIN);
  ck_assert_str_eq(l->names[0], "outer");
  ck_assert_int_eq(l->ev[0].ts_ns, 10000);
  ck_assert_int_eq(l->ev[1].kind, TR_EV_END);
  ck_assert_int_eq(l->ev[1].ts_ns, 20000);
  ck_assert_int_eq(l->ev[2].kind, TR_EV_INSTANT);
  ck_assert_str_eq(l->names[2], "n\xc3\xa9");
  ck_assert_int_eq(l->ev[2].ts_ns, 11500);
  ck_assert_int_eq(l->ev[3].kind, TR_EV_OTHER);
}
END_TEST

START_TEST(test_report_read_skips_unusable_events) {
  evlist *l = READ(
      "[{\"name\":\"no phase\",\"ts\":1},\n"
      " {\"ph\":\"X\",\"name\":\"no ts\",\"dur\":1},\n"
      " {\"ph\":\"X\",\"name\":\"negative\",\"ts\":1,\"dur\":-1},\n"
      " {\"ph\":\"X\",\"name\":\"string pid\",\"pid\":\"a\",\"ts\":1},\n"
      " {\"ph\":\"X\",\"name\":\"huge\",\"ts\":1e300},\n"
      " {\"ph\":\"XY\",\"name\":\"long ph\",\"ts\":1},\n"
      " {\"ph\":\"X\",\"name\":\"ok\",\"ts\":1}]");
  ck_assert_int_eq(l->rc, 0);
  ck_assert_int_eq(l->n, 1);
  ck_assert_str_eq(l->names[0], "ok");
  ck_assert_int_eq(l->ev[0].dur_ns, 0);
  ck_assert_uint_eq(l->skipped, 6);
}
END_TEST

START_TEST(test_report_read_errors) {
  evlist *l = READ("");
  ck_assert_int_eq(l->rc, -ENODATA);
  ck_assert_str_eq(l->err, "the file is empty");
  l = READ("  \n ");
  ck_assert_int_eq(l->rc, -EBADMSG);
  l = READ("hello");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "not a trace"));
  l = READ("{\"a\":1}");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "no traceEvents"));
  l = READ("{\"a\":");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "ends before its traceEvents"));
  l = READ("{\"traceEvents\":{}}");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "not an array"));
  l = READ("[1]");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "expected an event"));
  l = READ("[{\"ph\":\"i\",\"ts\":1} {}]");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_int_eq(l->n, 1);
  ck_assert_str_eq(l->err,
                   "line 1, column 20: expected ',' or ']' after an event");
  l = READ("[{\"ph\":\"i\",\"ts\":1},]");
  ck_assert_int_eq(l->rc, -EBADMSG);
  l = READ("[{\"ph\" \"i\"}]");
  ck_assert_int_eq(l->rc, -EBADMSG);
  l = READ("[{\"args\":{\"a\":[1,}}]");
  ck_assert_int_eq(l->rc, -EBADMSG);
  l = READ("[] []");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "after the end of the trace"));
  l = READ("{\"traceEvents\":[]} x");
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "unexpected character 'x'"));
  /* A byte order mark before JSON is accepted. */
  l = READ("\xef\xbb\xbf[{\"ph\":\"i\",\"ts\":1}]");
  ck_assert_int_eq(l->rc, 0);
  ck_assert_int_eq(l->n, 1);
}
END_TEST

START_TEST(test_report_read_deep_nesting) {
  /* Nesting within the limit is skipped; beyond it, a clear error. */
  static char text[20000];
  size_t n = 0;
  n += (size_t)sprintf(text, "[{\"ph\":\"i\",\"ts\":1,\"args\":");
  for (int i = 0; i < 4000; i++) text[n++] = '[';
  for (int i = 0; i < 4000; i++) text[n++] = ']';
  n += (size_t)sprintf(text + n, "}]");
  evlist *l = read_all(text, n);
  ck_assert_int_eq(l->rc, 0);
  ck_assert_int_eq(l->n, 1);
  n = (size_t)sprintf(text, "[{\"ph\":\"i\",\"ts\":1,\"args\":");
  for (int i = 0; i < 5000; i++) text[n++] = '[';
  l = read_all(text, n);
  ck_assert_int_eq(l->rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(l->err, "nested too deeply"));
}
END_TEST

START_TEST(test_report_read_gzip_file) {
  char path[] = "/tmp/check_report_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  gzFile gz = gzdopen(fd, "wb");
  const char text[] =
      "{\"traceEvents\":[{\"ph\":\"X\",\"name\":\"a\",\"pid\":1,\"tid\":1,"
      "\"ts\":1.000,\"dur\":2.000}]}";
  ck_assert_int_eq(gzwrite(gz, text, sizeof(text) - 1), sizeof(text) - 1);
  ck_assert_int_eq(gzclose(gz), Z_OK);
  tr_trace *t;
  char err[256];
  ck_assert_int_eq(tr_trace_open_path(&t, path, err, sizeof(err)), 0);
  ck_assert(tr_trace_compressed(t));
  tr_trace_event ev;
  ck_assert_int_eq(tr_trace_next(t, &ev), 1);
  ck_assert_int_eq(ev.dur_ns, 2000);
  ck_assert_int_eq(tr_trace_next(t, &ev), 0);
  ck_assert(!tr_trace_cut_short(t));
  tr_trace_close(t);
  /* The same file cut short inside the gzip stream. */
  ck_assert_int_eq(truncate(path, 30), 0);
  ck_assert_int_eq(tr_trace_open_path(&t, path, err, sizeof(err)), 0);
  while (tr_trace_next(t, &ev) > 0) continue;
  ck_assert(tr_trace_cut_short(t));
  tr_trace_close(t);
  unlink(path);
  ck_assert_int_eq(tr_trace_open_path(&t, path, err, sizeof(err)), -ENOENT);
}
END_TEST

/* ---- aggregation --------------------------------------------------------- */

static tr_report *report_of(const char *text) {
  tr_trace *t;
  char err[256];
  ck_assert_int_eq(tr_trace_open_mem(&t, text, strlen(text), err, sizeof(err)),
                   0);
  tr_report *r;
  ck_assert_int_eq(tr_report_new(&r), 0);
  tr_trace_event ev;
  int rc;
  while ((rc = tr_trace_next(t, &ev)) > 0)
    ck_assert_int_eq(tr_report_add(r, &ev), 0);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(tr_report_finish(r), 0);
  tr_report_set_source(r, "mem", tr_trace_get_format(t), false,
                       tr_trace_cut_short(t), tr_trace_skipped(t));
  tr_trace_close(t);
  return r;
}

static char *print_json_all(tr_report *r) {
  char *out;
  size_t len;
  FILE *f = open_memstream(&out, &len);
  tr_report_opts o = {.sort = TR_SORT_BOTH};
  ck_assert_int_eq(tr_report_print_json(r, f, &o), 0);
  ck_assert_int_eq(tr_report_print_text(r, f, &o), 0);
  fclose(f);
  return out;
}

/* Asserts a function's numbers in process `pid` (-1: overall). */
static void expect(tr_report *r, int64_t pid, const char *name, uint64_t calls,
                   uint64_t prim, int64_t self, int64_t total) {
  tr_report_fn f;
  ck_assert_msg(tr_report_lookup(r, pid < 0, pid, name, &f), "no %s", name);
  ck_assert_msg(f.calls == calls && f.primitive == prim && f.self_ns == self &&
                    f.total_ns == total,
                "%s: calls %llu/%llu self %lld total %lld, want %llu/%llu "
                "%lld %lld",
                name, (unsigned long long)f.calls,
                (unsigned long long)f.primitive, (long long)f.self_ns,
                (long long)f.total_ns, (unsigned long long)calls,
                (unsigned long long)prim, (long long)self, (long long)total);
}

#define X(name, ts, dur)                                                \
  "{\"ph\":\"X\",\"name\":\"" name "\",\"pid\":1,\"tid\":1,\"ts\":" #ts \
  ",\"dur\":" #dur "}"
#define XT(tid, name, ts, dur)                                                 \
  "{\"ph\":\"X\",\"name\":\"" name "\",\"pid\":1,\"tid\":" #tid ",\"ts\":" #ts \
  ",\"dur\":" #dur "}"

/* main [0,100] calls a [10,30] (which calls c [12,15]) and b [40,90]
 * (which calls c [50,60] and c [70,71]): the events in traced's order
 * (each written when its call returns), then in start order. */
static const char *const nested_end_order =
    "[" X("c", 0.012, 0.003) ",\n" X("a", 0.010, 0.020) ",\n" X(
        "c", 0.050, 0.010) ",\n" X("c", 0.070,
                                   0.001) ",\n" X("b", 0.040,
                                                  0.050) ",\n" X("main", 0.000,
                                                                 0.100) "]";
static const char *const nested_start_order =
    "[" X("main", 0.000, 0.100) ",\n" X("a", 0.010, 0.020) ",\n" X(
        "c", 0.012, 0.003) ",\n" X("b", 0.040,
                                   0.050) ",\n" X("c", 0.050,
                                                  0.010) ",\n" X("c", 0.070,
                                                                 0.001) "]";

static void check_nested(tr_report *r) {
  expect(r, 1, "main", 1, 1, 100 - 20 - 50, 100);
  expect(r, 1, "a", 1, 1, 20 - 3, 20);
  expect(r, 1, "b", 1, 1, 50 - 10 - 1, 50);
  expect(r, 1, "c", 3, 3, 14, 14);
}

START_TEST(test_report_nested_end_order) {
  tr_report *r = report_of(nested_end_order);
  check_nested(r);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_nested_start_order) {
  tr_report *r = report_of(nested_start_order);
  check_nested(r);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_recursion) {
  /* f(3) -> f(2) -> f(1) -> g, then f again at top level: cumtime counts
   * the outermost calls only; ncalls 4/2. */
  tr_report *r =
      report_of("[" X("g", 0.004, 0.001) "," X("f", 0.003, 0.003) "," X(
          "f", 0.002, 0.006) "," X("f", 0.001, 0.009) "," X("f", 0.020,
                                                            0.002) "]");
  expect(r, 1, "f", 4, 2, 9 - 1 + 2, 9 + 2);
  expect(r, 1, "g", 1, 1, 1, 1);
  tr_report_free(r);
  /* Mutual recursion: f -> g -> f -> g. */
  r = report_of("[" X("g", 0.004, 0.002) "," X("f", 0.003, 0.004) "," X(
      "g", 0.002, 0.006) "," X("f", 0.001, 0.008) "]");
  expect(r, 1, "f", 2, 1, 2 + 2, 8);
  expect(r, 1, "g", 2, 1, 2 + 2, 6);
  tr_report_free(r);
  /* The same in start order. */
  r = report_of("[" X("f", 0.001, 0.008) "," X("g", 0.002, 0.006) "," X(
      "f", 0.003, 0.004) "," X("g", 0.004, 0.002) "]");
  expect(r, 1, "f", 2, 1, 4, 8);
  expect(r, 1, "g", 2, 1, 4, 6);
  tr_report_free(r);
  /* Recursion whose inner calls sit below different callers, and a
   * recursive call in one subtree that must not affect its sibling. */
  r = report_of("[" X("f", 0.002, 0.001) "," X("h", 0.001, 0.003) "," X(
      "f", 0.006, 0.001) "," X("f", 0.000, 0.010) "," X("f", 0.020, 0.001) "]");
  expect(r, 1, "f", 4, 2, 1 + 1 + (10 - 3 - 1) + 1, 10 + 1);
  expect(r, 1, "h", 1, 1, 2, 3);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_threads_interleaved) {
  /* Two threads' events interleaved in the file: each nests on its own. */
  tr_report *r = report_of(
      "[" XT(1, "a", 0.001, 0.001) "," XT(2, "a", 0.001, 0.005) "," XT(
          1, "b", 0.000, 0.010) "," XT(2, "b", 0.000, 0.008) "]");
  expect(r, 1, "a", 2, 2, 6, 6);
  expect(r, 1, "b", 2, 2, 9 + 3, 18);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_unfinished_and_begin_end) {
  /* B/E pairs nest like X events; a B without its E ends at its thread's
   * last timestamp as unfinished; an X marked unfinished counts with its
   * recorded duration. */
  tr_report *r = report_of(
      "[{\"ph\":\"B\",\"name\":\"outer\",\"pid\":1,\"tid\":1,\"ts\":0},"
      "{\"ph\":\"B\",\"name\":\"inner\",\"pid\":1,\"tid\":1,\"ts\":0.002},"
      "{\"ph\":\"E\",\"pid\":1,\"tid\":1,\"ts\":0.005},"
      "{\"ph\":\"X\",\"name\":\"x\",\"pid\":1,\"tid\":1,\"ts\":0.006,"
      "\"dur\":0.004,\"args\":{\"unfinished\":true}},"
      "{\"ph\":\"i\",\"name\":\"last\",\"pid\":1,\"tid\":1,\"ts\":0.012}]");
  expect(r, 1, "inner", 1, 1, 3, 3);
  expect(r, 1, "x", 1, 1, 4, 4);
  expect(r, 1, "outer", 1, 1, 12 - 3 - 4, 12);
  tr_report_fn f;
  ck_assert(tr_report_lookup(r, false, 1, "outer", &f));
  ck_assert_uint_eq(f.unfinished, 1);
  ck_assert(tr_report_lookup(r, false, 1, "x", &f));
  ck_assert_uint_eq(f.unfinished, 1);
  ck_assert(tr_report_lookup(r, false, 1, "inner", &f));
  ck_assert_uint_eq(f.unfinished, 0);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_misnested_counted) {
  /* b overlaps a partially: counted, and both still count as calls. */
  tr_report *r =
      report_of("[" X("a", 0.000, 0.010) "," X("b", 0.005, 0.010) "]");
  expect(r, 1, "a", 1, 1, 10, 10);
  expect(r, 1, "b", 1, 1, 10, 10);
  char *out;
  size_t len;
  FILE *f = open_memstream(&out, &len);
  tr_report_opts o = {.sort = TR_SORT_TOTAL, .top = 0};
  ck_assert_int_eq(tr_report_print_json(r, f, &o), 0);
  fclose(f);
  ck_assert_ptr_nonnull(strstr(out, "\"misnested\":1,"));
  free(out);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_extreme_times) {
  /* Times at the ends of int64_t: durations are clamped and sums wrap
   * instead of overflowing (UBSan builds abort on signed overflow). */
  tr_report *r = report_of(
      "[{\"ph\":\"X\",\"name\":\"a\",\"ts\":-9223372036854775.808,"
      "\"dur\":9223372036854775.807},"
      "{\"ph\":\"X\",\"name\":\"a\",\"ts\":9223372036854775.807,"
      "\"dur\":9223372036854775.807},"
      "{\"ph\":\"X\",\"name\":\"b\",\"ts\":0,"
      "\"dur\":9223372036854775.807},"
      "{\"ph\":\"X\",\"name\":\"c\",\"ts\":-9223372036854775.808,"
      "\"dur\":9223372036854775.807},"
      "{\"ph\":\"B\",\"name\":\"d\",\"ts\":9223372036854775.807},"
      "{\"ph\":\"E\",\"ts\":-9223372036854775.808}]");
  tr_report_fn f;
  ck_assert(tr_report_lookup(r, false, 0, "a", &f));
  ck_assert_uint_eq(f.calls, 2);
  ck_assert(tr_report_lookup(r, false, 0, "d", &f));
  ck_assert_int_eq(f.total_ns, 0); /* an end before its begin: 0 long */
  free(print_json_all(r));
  tr_report_free(r);
}
END_TEST

static char *print(tr_report *r, bool json, tr_report_opts o) {
  char *out;
  size_t len;
  FILE *f = open_memstream(&out, &len);
  ck_assert_int_eq(
      json ? tr_report_print_json(r, f, &o) : tr_report_print_text(r, f, &o),
      0);
  fclose(f);
  return out;
}

START_TEST(test_report_processes_and_output) {
  /* Two processes with names, sort indexes, dropped counts (metadata and
   * lost markers) and a hostile function name. */
  tr_report *r = report_of(
      "{\"traceEvents\":[\n"
      "{\"ph\":\"X\",\"name\":\"w\",\"pid\":7,\"tid\":7,\"ts\":0,\"dur\":3},\n"
      "{\"ph\":\"X\",\"name\":\"w\",\"pid\":5,\"tid\":5,\"ts\":0,\"dur\":2},\n"
      "{\"ph\":\"X\",\"name\":\"evil\\u001b[31m\\n\\\"\",\"pid\":5,\"tid\":6,"
      "\"ts\":1,\"dur\":1},\n"
      "{\"ph\":\"i\",\"cat\":\"traced\",\"name\":\"traced: events lost (ring "
      "full)\",\"pid\":7,\"tid\":7,\"ts\":4,\"args\":{\"count\":9}},\n"
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":7,\"tid\":0,"
      "\"args\":{\"name\":\"Worker\",\"dropped\":4}},\n"
      "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":7,\"tid\":0,"
      "\"args\":{\"sort_index\":2}},\n"
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":5,\"tid\":0,"
      "\"args\":{\"name\":\"Main\",\"dropped\":1}},\n"
      "{\"ph\":\"M\",\"name\":\"process_sort_index\",\"pid\":5,\"tid\":0,"
      "\"args\":{\"sort_index\":1}}\n"
      "]}");
  expect(r, -1, "w", 2, 2, 5000, 5000);
  expect(r, 7, "w", 1, 1, 3000, 3000);
  expect(r, 5, "w", 1, 1, 2000, 2000);
  char *json = print(r, true, (tr_report_opts){.top = 0});
  ck_assert_ptr_nonnull(strstr(json,
                               "\"processes\":2,\"threads\":3,"
                               "\"events\":4,\"dropped\":10,"));
  /* Main (sort index 1) before Worker; Worker's dropped is the larger of
   * its metadata (4) and its lost markers (9). */
  char *m = strstr(json,
                   "{\"pid\":5,\"name\":\"Main\",\"threads\":2,"
                   "\"events\":2,\"dropped\":1,");
  char *w = strstr(json,
                   "{\"pid\":7,\"name\":\"Worker\",\"threads\":1,"
                   "\"events\":2,\"dropped\":9,");
  ck_assert_ptr_nonnull(m);
  ck_assert_ptr_nonnull(w);
  ck_assert((m) < (w));
  ck_assert_ptr_nonnull(strstr(json, "\"name\":\"evil\\u001b[31m\\n\\\"\""));
  ck_assert_ptr_nonnull(
      strstr(json,
             "{\"name\":\"w\",\"calls\":2,\"primitive_calls\":2,"
             "\"self_ns\":5000,\"total_ns\":5000,\"unfinished\":0}"));
  free(json);
  char *text =
      print(r, false, (tr_report_opts){.sort = TR_SORT_BOTH, .top = 20});
  /* No escape character reaches the terminal. */
  ck_assert_ptr_null(strchr(text, 0x1b));
  ck_assert_ptr_nonnull(strstr(text, "evil\\x1b[31m\\x0a\""));
  ck_assert_ptr_nonnull(strstr(text, "== all 2 processes"));
  char *mt = strstr(text, "== Main (pid 5): 2 threads, 2 events, 1 dropped");
  char *wt = strstr(text, "== Worker (pid 7): 1 thread, 2 events, 9 dropped");
  ck_assert_ptr_nonnull(mt);
  ck_assert_ptr_nonnull(wt);
  ck_assert((mt) < (wt));
  ck_assert_ptr_nonnull(
      strstr(text,
             "               2       0.005       0.003       0.005       0.003"
             "  w\n"));
  free(text);
  /* --pid: that process only, and "overall" is its numbers. */
  json = print(r, true, (tr_report_opts){.has_pid = true, .pid = 7});
  ck_assert_ptr_null(strstr(json, "\"pid\":5"));
  ck_assert_ptr_nonnull(strstr(json,
                               " \"overall\":[\n    {\"name\":\"w\","
                               "\"calls\":1,"));
  free(json);
  /* --top and --sort. */
  text = print(r, false, (tr_report_opts){.sort = TR_SORT_CALLS, .top = 1});
  ck_assert_ptr_nonnull(strstr(text, "top 1 of 2 functions by calls"));
  free(text);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_percall_and_recursive_ncalls_text) {
  tr_report *r = report_of("[" X("f", 3, 3) "," X("f", 1, 9) "]");
  char *text = print(r, false, (tr_report_opts){.sort = TR_SORT_TOTAL});
  /* ncalls 2/1; tottime 0.009 ms; percall 0.0045 -> 0.005 (to the
   * nearest microsecond); cumtime 0.009 over 1 primitive call. */
  ck_assert_ptr_nonnull(strstr(
      text,
      "             2/1       0.009       0.005       0.009       0.009  f\n"));
  free(text);
  tr_report_free(r);
}
END_TEST

/* ---- Perfetto protobuf --------------------------------------------------- */

typedef struct pbuf {
  uint8_t b[2048];
  size_t n;
} pbuf;

static void pvarint(pbuf *p, uint64_t v) {
  do {
    uint8_t c = v & 0x7f;
    v >>= 7;
    p->b[p->n++] = (uint8_t)(c | (v ? 0x80 : 0));
  } while (v);
}

static void pvar(pbuf *p, uint32_t field, uint64_t v) {
  pvarint(p, (uint64_t)field << 3);
  pvarint(p, v);
}

static void plen(pbuf *p, uint32_t field, const void *d, size_t n) {
  pvarint(p, (uint64_t)field << 3 | 2);
  pvarint(p, n);
  memcpy(p->b + p->n, d, n);
  p->n += n;
}

static void pstr(pbuf *p, uint32_t field, const char *s) {
  plen(p, field, s, strlen(s));
}

static void pmsg(pbuf *p, uint32_t field, const pbuf *m) {
  plen(p, field, m->b, m->n);
}

/* A Trace with one packet appended. */
static void packet(pbuf *trace, const pbuf *pkt) { pmsg(trace, 1, pkt); }

static void track_desc(pbuf *trace, uint64_t uuid, int64_t pid, int64_t tid,
                       const char *name) {
  pbuf d = {0}, td = {0}, pkt = {0};
  pvar(&d, 1, (uint64_t)pid);
  if (tid >= 0) pvar(&d, 2, (uint64_t)tid);
  pstr(&d, tid >= 0 ? 5 : 6, name);
  pvar(&td, 1, uuid);
  pmsg(&td, tid >= 0 ? 4 : 3, &d);
  pmsg(&pkt, 60, &td);
  packet(trace, &pkt);
}

static void slice(pbuf *trace, uint32_t seq, uint64_t ts, int type,
                  uint64_t uuid, uint64_t name_iid, const char *name_new) {
  pbuf ev = {0}, pkt = {0};
  pvar(&ev, 9, (uint64_t)type);
  pvar(&ev, 11, uuid);
  if (name_iid) pvar(&ev, 10, name_iid);
  pvar(&pkt, 8, ts);
  pvar(&pkt, 10, seq);
  if (name_new != NULL) {
    pbuf en = {0}, in = {0};
    pvar(&en, 1, name_iid);
    pstr(&en, 2, name_new);
    pmsg(&in, 2, &en);
    pmsg(&pkt, 12, &in);
  }
  pmsg(&pkt, 11, &ev);
  packet(trace, &pkt);
}

static tr_report *report_of_pb(const pbuf *trace, bool *cut) {
  tr_trace *t;
  char err[256];
  ck_assert_int_eq(tr_trace_open_mem(&t, trace->b, trace->n, err, sizeof(err)),
                   0);
  ck_assert_int_eq(tr_trace_get_format(t), TR_TRACE_PERFETTO);
  tr_report *r;
  ck_assert_int_eq(tr_report_new(&r), 0);
  tr_trace_event ev;
  int rc;
  while ((rc = tr_trace_next(t, &ev)) > 0)
    ck_assert_int_eq(tr_report_add(r, &ev), 0);
  ck_assert_int_eq(rc, 0);
  *cut = tr_trace_cut_short(t);
  ck_assert_int_eq(tr_report_finish(r), 0);
  tr_trace_close(t);
  return r;
}

START_TEST(test_report_perfetto) {
  pbuf trace = {0};
  track_desc(&trace, 100, 42, -1, "MainProcess");
  track_desc(&trace, 101, 42, 43, "MainThread");
  /* main [1000, 9000] > f [2000, 5000] > f [3000, 4000]; interned names on
   * sequence 7, main's name given inline on the first use. */
  slice(&trace, 7, 1000, 1, 101, 1, "main");
  slice(&trace, 7, 2000, 1, 101, 2, "f");
  slice(&trace, 7, 3000, 1, 101, 2, NULL);
  slice(&trace, 7, 4000, 2, 101, 0, NULL);
  slice(&trace, 7, 5000, 2, 101, 0, NULL);
  slice(&trace, 7, 9000, 2, 101, 0, NULL);
  /* An open slice at the end: unfinished at the thread's last time. */
  slice(&trace, 7, 9500, 1, 101, 2, NULL);
  slice(&trace, 7, 9700, 3, 101, 1, NULL); /* an instant */
  bool cut;
  tr_report *r = report_of_pb(&trace, &cut);
  ck_assert(!cut);
  expect(r, 42, "main", 1, 1, 8000 - 3000, 8000);
  expect(r, 42, "f", 3, 2, 2000 + 1000 + 200, 3000 + 200);
  tr_report_fn f;
  ck_assert(tr_report_lookup(r, false, 42, "f", &f));
  ck_assert_uint_eq(f.unfinished, 1);
  char *json = print(r, true, (tr_report_opts){0});
  ck_assert_ptr_nonnull(
      strstr(json,
             "{\"pid\":42,\"name\":\"MainProcess\",\"threads\":1,"
             "\"events\":5,"));
  free(json);
  tr_report_free(r);

  /* The same trace cut short inside its last packet. */
  trace.n -= 3;
  r = report_of_pb(&trace, &cut);
  ck_assert(cut);
  expect(r, 42, "main", 1, 1, 5000, 8000);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_perfetto_incremental_state) {
  /* A sequence that clears its incremental state re-defines iid 1; the
   * default track comes from TracePacketDefaults. */
  pbuf trace = {0};
  track_desc(&trace, 5, 1, 2, "T");
  pbuf pkt = {0}, defs = {0}, ted = {0};
  pvar(&ted, 11, 5);
  pmsg(&defs, 11, &ted);
  pvar(&pkt, 10, 3);
  pvar(&pkt, 13, 1);
  pmsg(&pkt, 59, &defs);
  packet(&trace, &pkt);
  slice(&trace, 3, 10, 1, 5, 1, "first");
  slice(&trace, 3, 20, 2, 5, 0, NULL);
  pkt.n = 0;
  pvar(&pkt, 10, 3);
  pvar(&pkt, 13, 1);
  pmsg(&pkt, 59, &defs);
  packet(&trace, &pkt);
  /* No track_uuid: the default applies. */
  pbuf ev = {0}, en = {0}, in = {0};
  pvar(&ev, 9, 1);
  pvar(&ev, 10, 1);
  pvar(&en, 1, 1);
  pstr(&en, 2, "second");
  pmsg(&in, 2, &en);
  pkt.n = 0;
  pvar(&pkt, 8, 30);
  pvar(&pkt, 10, 3);
  pmsg(&pkt, 12, &in);
  pmsg(&pkt, 11, &ev);
  packet(&trace, &pkt);
  slice(&trace, 3, 45, 2, 5, 0, NULL);
  bool cut;
  tr_report *r = report_of_pb(&trace, &cut);
  expect(r, 1, "first", 1, 1, 10, 10);
  expect(r, 1, "second", 1, 1, 15, 15);
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_perfetto_malformed) {
  /* A packet whose inner length overruns it is skipped and counted; the
   * packets around it are read. */
  pbuf trace = {0};
  track_desc(&trace, 1, 1, 1, "T");
  uint8_t bad[] = {0x5a, 0x7f, 0x01}; /* field 11, length 127, 1 byte */
  plen(&trace, 1, bad, sizeof(bad));
  slice(&trace, 1, 10, 1, 1, 1, "a");
  slice(&trace, 1, 20, 2, 1, 0, NULL);
  tr_trace *t;
  char err[256];
  ck_assert_int_eq(tr_trace_open_mem(&t, trace.b, trace.n, err, sizeof(err)),
                   0);
  tr_trace_event ev;
  int n = 0, rc;
  while ((rc = tr_trace_next(t, &ev)) > 0) n++;
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(n, 3);
  ck_assert_uint_eq(tr_trace_skipped(t), 1);
  tr_trace_close(t);
  /* A top-level wire type that cannot occur is an error. */
  trace.b[trace.n++] = 0x0b; /* field 1, wire type 3 */
  ck_assert_int_eq(tr_trace_open_mem(&t, trace.b, trace.n, err, sizeof(err)),
                   0);
  while ((rc = tr_trace_next(t, &ev)) > 0) continue;
  ck_assert_int_eq(rc, -EBADMSG);
  ck_assert_ptr_nonnull(strstr(tr_trace_error(t), "wire type 3"));
  tr_trace_close(t);
}
END_TEST

/* ---- Perfetto traces as traced's writer encodes them ----------------------
 * (output/writer_pftrace.c, docs/formats.md): descriptors on sequence 1,
 * nameless first and named when recording ends; each thread on its own
 * sequence, whose first packet clears incremental state and sets
 * TracePacketDefaults (the thread's track, the sequence clock 64) and a
 * snapshot declaring clock 64 incremental and equal to MONOTONIC, the
 * trace clock; timestamps are deltas on it. */

enum { MONO = 3, BOOT = 6 };

/* A TrackDescriptor packet on sequence 1: a process (tid < 0), a thread,
 * or (pid < 0) a counter track named `name` under `parent`. */
static void desc(pbuf *trace, uint64_t uuid, uint64_t parent, int64_t pid,
                 int64_t tid, const char *name) {
  pbuf d = {0}, td = {0}, pkt = {0};
  pvar(&td, 1, uuid);
  if (parent) pvar(&td, 5, parent);
  if (pid < 0) {
    pstr(&td, 2, name);
    pmsg(&td, 8, &d); /* an empty CounterDescriptor */
  } else {
    pvar(&d, 1, (uint64_t)pid);
    if (tid >= 0) pvar(&d, 2, (uint64_t)tid);
    if (name != NULL) pstr(&d, tid >= 0 ? 5 : 6, name);
    pmsg(&td, tid >= 0 ? 4 : 3, &d);
  }
  pvar(&pkt, 10, 1);
  pmsg(&pkt, 60, &td);
  packet(trace, &pkt);
}

/* A ClockSnapshot packet on sequence `seq` with `n` clocks {id, timestamp,
 * is_incremental, unit_multiplier_ns (0: none)}; primary: 0 for none.
 * `first`: the sequence's first packet, which also clears incremental
 * state and sets the defaults (track `track`, clock `clock`). */
static void snapshot(pbuf *trace, uint32_t seq, bool first, uint64_t track,
                     uint32_t clock, uint32_t primary, int n,
                     const uint64_t (*clocks)[4]) {
  pbuf pkt = {0}, cs = {0};
  pvar(&pkt, 10, seq);
  if (first) {
    pbuf defs = {0}, ted = {0};
    pvar(&pkt, 13, 1);
    if (clock) pvar(&defs, 58, clock);
    if (track) {
      pvar(&ted, 11, track);
      pmsg(&defs, 11, &ted);
    }
    pmsg(&pkt, 59, &defs);
  }
  for (int i = 0; i < n; i++) {
    pbuf c = {0};
    pvar(&c, 1, clocks[i][0]);
    pvar(&c, 2, clocks[i][1]);
    if (clocks[i][2]) pvar(&c, 3, 1);
    if (clocks[i][3]) pvar(&c, 4, clocks[i][3]);
    pmsg(&cs, 1, &c);
  }
  if (primary) pvar(&cs, 2, primary);
  pmsg(&pkt, 6, &cs);
  packet(trace, &pkt);
}

/* A TrackEvent packet. */
typedef struct tev_opts {
  uint32_t seq, flags; /* flags: sequence_flags (2: needs incremental) */
  bool no_ts;
  uint64_t ts;
  uint32_t clock;     /* timestamp_clock_id; 0: none */
  int type;           /* 1 BEGIN, 2 END, 3 INSTANT, 4 COUNTER */
  uint64_t track;     /* track_uuid; 0: none (the sequence default) */
  uint64_t iid;       /* name_iid */
  const char *intern; /* interns iid as this name in the packet */
  const char *name;   /* a literal name */
  bool unfinished;
  uint64_t count; /* a `count` annotation */
  bool dropped;   /* previous_packet_dropped */
} tev_opts;

static void tev(pbuf *trace, tev_opts o) {
  pbuf ev = {0}, pkt = {0};
  pvar(&ev, 9, (uint64_t)o.type);
  if (o.track) pvar(&ev, 11, o.track);
  if (o.iid) pvar(&ev, 10, o.iid);
  if (o.name) pstr(&ev, 23, o.name);
  if (o.unfinished || o.count) {
    pbuf a = {0};
    pstr(&a, 10, o.unfinished ? "unfinished" : "count");
    pvar(&a, o.unfinished ? 2 : 3, o.unfinished ? 1 : o.count);
    pmsg(&ev, 4, &a);
  }
  if (o.type == 4) {
    /* double_counter_value = 2.5: field 44, fixed64. */
    const double v = 2.5;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    pvarint(&ev, 44u << 3 | 1);
    for (int i = 0; i < 8; i++) ev.b[ev.n++] = (uint8_t)(bits >> (8 * i));
  }
  if (!o.no_ts) pvar(&pkt, 8, o.ts);
  if (o.clock) pvar(&pkt, 58, o.clock);
  pvar(&pkt, 10, o.seq);
  if (o.flags) pvar(&pkt, 13, o.flags);
  if (o.dropped) pvar(&pkt, 42, 1);
  if (o.intern != NULL) {
    pbuf en = {0}, in = {0};
    pvar(&en, 1, o.iid);
    pstr(&en, 2, o.intern);
    pmsg(&in, 2, &en);
    pmsg(&pkt, 12, &in);
  }
  pmsg(&pkt, 11, &ev);
  packet(trace, &pkt);
}

/* The report of a Perfetto trace in memory, with the reader's counts. */
static tr_report *pf_report(const pbuf *trace) {
  tr_trace *t;
  char err[256];
  ck_assert_int_eq(tr_trace_open_mem(&t, trace->b, trace->n, err, sizeof(err)),
                   0);
  tr_report *r;
  ck_assert_int_eq(tr_report_new(&r), 0);
  tr_trace_event ev;
  int rc;
  while ((rc = tr_trace_next(t, &ev)) > 0)
    ck_assert_int_eq(tr_report_add(r, &ev), 0);
  ck_assert_int_eq(rc, 0);
  ck_assert_int_eq(tr_report_finish(r), 0);
  tr_report_set_source(r, "mem", tr_trace_get_format(t), false,
                       tr_trace_cut_short(t), tr_trace_skipped(t));
  tr_trace_close(t);
  return r;
}

static void expect_json(tr_report *r, const char *want) {
  char *json = print(r, true, (tr_report_opts){0});
  ck_assert_msg(strstr(json, want) != NULL, "%s\nnot in\n%s", want, json);
  free(json);
}

#define P 10u                  /* pid */
#define PT ((P << 2) | 1u)     /* the process's track */
#define T(tid) (1000u + (tid)) /* a thread's track */
#define CT 77u                 /* a counter track */

START_TEST(test_report_perfetto_incremental_clock) {
  pbuf trace = {0};
  /* The writer's first packet: BOOTTIME and MONOTONIC, MONOTONIC primary. */
  snapshot(&trace, 1, false, 0, 0, MONO, 2,
           (const uint64_t[][4]){{BOOT, 5000000, 0, 0}, {MONO, 1000000, 0, 0}});
  desc(&trace, PT, 0, P, -1, NULL);
  desc(&trace, T(11), PT, P, 11, NULL);
  desc(&trace, CT, PT, -1, 0, "depth");
  /* Thread 11, sequence 2: clock 64 starts at 1000 (its own units) where
   * MONOTONIC is 2000000. */
  snapshot(&trace, 2, true, T(11), 64, 0, 2,
           (const uint64_t[][4]){{64, 1000, 1, 0}, {MONO, 2000000, 0, 0}});
  tev(&trace, (tev_opts){.seq = 2,
                         .flags = 2,
                         .ts = 0,
                         .type = 1,
                         .iid = 1,
                         .intern = "main"});
  tev(&trace,
      (tev_opts){
          .seq = 2, .flags = 2, .ts = 100, .type = 1, .iid = 2, .intern = "f"});
  tev(&trace, (tev_opts){.seq = 2, .flags = 2, .ts = 50, .type = 2});
  /* Earlier than the clock's last value: written absolute, in MONOTONIC;
   * the deltas go on from 2000150. */
  tev(&trace, (tev_opts){.seq = 2,
                         .flags = 2,
                         .ts = 2000120,
                         .clock = MONO,
                         .type = 3,
                         .iid = 1});
  tev(&trace, (tev_opts){.seq = 2, .flags = 2, .ts = 850, .type = 2});
  /* A counter value on its own track, written on thread 11's sequence. */
  tev(&trace,
      (tev_opts){.seq = 2, .flags = 2, .ts = 10, .type = 4, .track = CT});

  /* Thread 12, sequence 3: its own clock 64, starting at 0 where MONOTONIC
   * is 3000000.  The same iid names another function here. */
  desc(&trace, T(12), PT, P, 12, NULL);
  snapshot(&trace, 3, true, T(12), 64, 0, 2,
           (const uint64_t[][4]){{64, 0, 1, 0}, {MONO, 3000000, 0, 0}});
  tev(&trace,
      (tev_opts){
          .seq = 3, .flags = 2, .ts = 5, .type = 1, .iid = 1, .intern = "g"});
  tev(&trace, (tev_opts){.seq = 3, .flags = 2, .ts = 7, .type = 2});

  /* Thread 13, sequence 4: another producer's way: clock 65 counts
   * microseconds, is not incremental, and its snapshot relates it to
   * BOOTTIME only (BOOTTIME 7000000 is MONOTONIC 3000000, by the first
   * snapshot). */
  desc(&trace, T(13), PT, P, 13, NULL);
  snapshot(&trace, 4, true, T(13), 65, 0, 2,
           (const uint64_t[][4]){{65, 10, 0, 1000}, {BOOT, 7000000, 0, 0}});
  tev(&trace,
      (tev_opts){
          .seq = 4, .flags = 2, .ts = 12, .type = 1, .iid = 1, .intern = "u"});
  tev(&trace, (tev_opts){.seq = 4, .flags = 2, .ts = 15, .type = 2});
  /* An absolute BOOTTIME timestamp: MONOTONIC 3010000. */
  tev(&trace, (tev_opts){.seq = 4,
                         .flags = 2,
                         .ts = 7010000,
                         .clock = BOOT,
                         .type = 3,
                         .iid = 1});

  /* Recording ends: the names. */
  desc(&trace, T(11), PT, P, 11, "MainThread");
  desc(&trace, T(12), PT, P, 12, "worker");
  desc(&trace, PT, 0, P, -1, "proc");

  tr_report *r = pf_report(&trace);
  expect(r, P, "main", 1, 1, 1000 - 50, 1000);
  expect(r, P, "f", 1, 1, 50, 50);
  expect(r, P, "g", 1, 1, 7, 7);
  expect(r, P, "u", 1, 1, 3000, 3000);
  /* Three threads (the counter is thread 11's), seven events: four
   * calls, two instants and a counter value. */
  expect_json(r,
              "\"start_ns\":2000000,\"end_ns\":3010000,\"duration_ns\":"
              "1010000,\n \"processes\":1,\"threads\":3,\"events\":7,"
              "\"dropped\":0,\"unfinished\":0,\"misnested\":0,\"skipped\":0");
  expect_json(r, "{\"pid\":10,\"name\":\"proc\",\"threads\":3,\"events\":7,");
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_perfetto_sequence_state) {
  pbuf trace = {0};
  snapshot(&trace, 1, false, 0, 0, MONO, 1,
           (const uint64_t[][4]){{MONO, 1000, 0, 0}});
  desc(&trace, T(1), 0, P, 1, "T");
  /* A sequence clock no snapshot declared: the event cannot be placed in
   * time and is skipped (counted); so is one on a clock id past 127. */
  tev(&trace, (tev_opts){.seq = 2,
                         .ts = 5,
                         .clock = 64,
                         .type = 3,
                         .track = T(1),
                         .name = "lost-in-time"});
  tev(&trace, (tev_opts){.seq = 2,
                         .ts = 5,
                         .clock = 200,
                         .type = 3,
                         .track = T(1),
                         .name = "lost-in-time"});
  /* Sequence 3 starts, then a packet was lost: packets that need
   * incremental state are skipped (counted) until it is cleared again. */
  snapshot(&trace, 3, true, T(1), 64, 0, 2,
           (const uint64_t[][4]){{64, 0, 1, 0}, {MONO, 2000, 0, 0}});
  tev(&trace,
      (tev_opts){
          .seq = 3, .flags = 2, .ts = 10, .type = 1, .iid = 1, .intern = "a"});
  tev(&trace, (tev_opts){.seq = 3, .flags = 2, .ts = 10, .type = 2});
  tev(&trace, (tev_opts){.seq = 3,
                         .flags = 2,
                         .dropped = true,
                         .ts = 10,
                         .type = 1,
                         .iid = 1});
  tev(&trace, (tev_opts){.seq = 3, .flags = 2, .ts = 10, .type = 2});
  /* Cleared again with new defaults: clock 64 goes on from 2020 (only a
   * snapshot that holds it restarts it). */
  snapshot(&trace, 3, true, T(1), 64, 0, 0, NULL);
  tev(&trace,
      (tev_opts){
          .seq = 3, .flags = 2, .ts = 30, .type = 1, .iid = 1, .intern = "b"});
  tev(&trace, (tev_opts){.seq = 3, .flags = 2, .ts = 5, .type = 2});
  /* Cleared without defaults: no default track or clock any more, so this
   * timestamp is absolute (trace time) and the event names its track. */
  tev(&trace, (tev_opts){.seq = 3,
                         .flags = 1,
                         .ts = 3000,
                         .type = 1,
                         .track = T(1),
                         .iid = 1,
                         .intern = "c"});
  tev(&trace,
      (tev_opts){.seq = 3, .flags = 2, .ts = 3004, .type = 2, .track = T(1)});
  /* A packet with a clock snapshot holds nothing else that is read, as in
   * trace_processor: its event is ignored (not counted). */
  pbuf pkt = {0}, cs = {0}, c = {0}, ev = {0};
  pvar(&c, 1, MONO);
  pvar(&c, 2, 5000);
  pmsg(&cs, 1, &c);
  pvar(&pkt, 8, 5000);
  pvar(&pkt, 10, 3);
  pmsg(&pkt, 6, &cs);
  pvar(&ev, 9, 3);
  pvar(&ev, 11, T(1));
  pstr(&ev, 23, "ignored");
  pmsg(&pkt, 11, &ev);
  packet(&trace, &pkt);

  tr_report *r = pf_report(&trace);
  expect(r, P, "a", 1, 1, 10, 10);
  expect(r, P, "b", 1, 1, 5, 5);
  expect(r, P, "c", 1, 1, 4, 4);
  tr_report_fn f;
  ck_assert(!tr_report_lookup(r, false, P, "lost-in-time", &f));
  expect_json(r,
              "\"start_ns\":2010,\"end_ns\":3004,\"duration_ns\":994,\n "
              "\"processes\":1,\"threads\":1,\"events\":3,\"dropped\":0,"
              "\"unfinished\":0,\"misnested\":0,\"skipped\":4");
  tr_report_free(r);
}
END_TEST

START_TEST(test_report_perfetto_traced_markers) {
  /* An unfinished call's END and a lost-events marker, as the writer
   * writes them; a process known from its nameless descriptor comes in
   * the order of the descriptors (no sort index in Perfetto). */
  pbuf trace = {0};
  snapshot(&trace, 1, false, 0, 0, MONO, 1,
           (const uint64_t[][4]){{MONO, 1, 0, 0}});
  desc(&trace, (20u << 2) | 1u, 0, 20, -1, NULL);
  desc(&trace, PT, 0, P, -1, NULL);
  desc(&trace, T(1), PT, P, 1, NULL);
  snapshot(&trace, 2, true, T(1), 64, 0, 2,
           (const uint64_t[][4]){{64, 100, 1, 0}, {MONO, 100, 0, 0}});
  tev(&trace, (tev_opts){.seq = 2,
                         .flags = 2,
                         .ts = 0,
                         .type = 1,
                         .iid = 1,
                         .intern = "open"});
  tev(&trace, (tev_opts){.seq = 2,
                         .flags = 2,
                         .ts = 20,
                         .type = 3,
                         .name = "traced: events lost (ring full)",
                         .count = 42});
  tev(&trace,
      (tev_opts){.seq = 2, .flags = 2, .ts = 0, .type = 2, .unfinished = true});
  desc(&trace, T(1), PT, P, 1, "MainThread");
  desc(&trace, PT, 0, P, -1, "ten");
  desc(&trace, (20u << 2) | 1u, 0, 20, -1, "twenty");
  tr_report *r = pf_report(&trace);
  tr_report_fn f;
  ck_assert(tr_report_lookup(r, false, P, "open", &f));
  ck_assert_uint_eq(f.unfinished, 1);
  ck_assert_int_eq(f.total_ns, 20);
  expect_json(r,
              "\"processes\":2,\"threads\":1,\"events\":2,\"dropped\":42,"
              "\"unfinished\":1,");
  expect_json(r,
              "\"process_reports\":[\n  {\"pid\":20,\"name\":\"twenty\","
              "\"threads\":0,\"events\":0,\"dropped\":0,\"unfinished\":0,");
  expect_json(r,
              "{\"pid\":10,\"name\":\"ten\",\"threads\":1,\"events\":2,"
              "\"dropped\":42,\"unfinished\":1,");
  tr_report_free(r);
}
END_TEST

static Suite *report_suite(void) {
  Suite *s = suite_create("report");
  TCase *tok = tcase_create("tokenizer");
  tcase_add_test(tok, test_report_tok_structure);
  tcase_add_test(tok, test_report_tok_strings);
  tcase_add_test(tok, test_report_tok_errors);
  tcase_add_test(tok, test_report_tok_long_string_truncated);
  tcase_add_test(tok, test_report_tok_error_position);
  tcase_add_test(tok, test_report_numbers);
  suite_add_tcase(s, tok);
  TCase *rd = tcase_create("reader");
  tcase_add_test(rd, test_report_read_traced_object_form);
  tcase_add_test(rd, test_report_read_array_form_and_cut_short);
  tcase_add_test(rd, test_report_read_other_producers);
  tcase_add_test(rd, test_report_read_skips_unusable_events);
  tcase_add_test(rd, test_report_read_errors);
  tcase_add_test(rd, test_report_read_deep_nesting);
  tcase_add_test(rd, test_report_read_gzip_file);
  suite_add_tcase(s, rd);
  TCase *agg = tcase_create("aggregation");
  tcase_add_test(agg, test_report_nested_end_order);
  tcase_add_test(agg, test_report_nested_start_order);
  tcase_add_test(agg, test_report_recursion);
  tcase_add_test(agg, test_report_threads_interleaved);
  tcase_add_test(agg, test_report_unfinished_and_begin_end);
  tcase_add_test(agg, test_report_misnested_counted);
  tcase_add_test(agg, test_report_extreme_times);
  tcase_add_test(agg, test_report_processes_and_output);
  tcase_add_test(agg, test_report_percall_and_recursive_ncalls_text);
  suite_add_tcase(s, agg);
  TCase *pf = tcase_create("perfetto");
  tcase_add_test(pf, test_report_perfetto);
  tcase_add_test(pf, test_report_perfetto_incremental_state);
  tcase_add_test(pf, test_report_perfetto_malformed);
  tcase_add_test(pf, test_report_perfetto_incremental_clock);
  tcase_add_test(pf, test_report_perfetto_sequence_state);
  tcase_add_test(pf, test_report_perfetto_traced_markers);
  suite_add_tcase(s, pf);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(report_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

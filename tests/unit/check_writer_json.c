/* check_writer_json.c: unit tests of the JSON writer: escaping of hostile
 * names, exact event formatting, buffering and write errors. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "output/writer_json.h"
#include "proto/traced_proto.h"

static char *escape(const char *s, size_t n) {
  static char out[TR_JSON_ESCAPED_MAX(256) + 1];
  ck_assert_uint_le(n, 256);
  size_t k = tr_json_escape(out, s, n);
  ck_assert_uint_le(k, TR_JSON_ESCAPED_MAX(n));
  out[k] = '\0';
  return out;
}

#define ESC(lit) escape((lit), sizeof(lit) - 1)

/* ---- escaping ------------------------------------------------------------ */

START_TEST(test_writer_json_escape_plain) {
  ck_assert_str_eq(ESC("f (x.py:12)"), "f (x.py:12)");
  ck_assert_str_eq(ESC(""), "");
  ck_assert_str_eq(ESC("\x7f"), "\x7f"); /* DEL is legal in JSON */
}
END_TEST

START_TEST(test_writer_json_escape_quotes_backslashes) {
  ck_assert_str_eq(ESC("a\"b"), "a\\\"b");
  ck_assert_str_eq(ESC("C:\\path\\"), "C:\\\\path\\\\");
  ck_assert_str_eq(ESC("\"\\\""), "\\\"\\\\\\\"");
}
END_TEST

START_TEST(test_writer_json_escape_control_chars) {
  ck_assert_str_eq(ESC("\n\t\r\b\f"), "\\n\\t\\r\\b\\f");
  ck_assert_str_eq(ESC("\x01\x1f"), "\\u0001\\u001f");
  ck_assert_str_eq(ESC("a\0b"), "a\\u0000b");
  ck_assert_str_eq(ESC("\x1b[31m"), "\\u001b[31m");
}
END_TEST

START_TEST(test_writer_json_escape_valid_utf8) {
  ck_assert_str_eq(ESC("caf\xc3\xa9"), "caf\xc3\xa9");   /* é */
  ck_assert_str_eq(ESC("\xe2\x82\xac"), "\xe2\x82\xac"); /* € */
  ck_assert_str_eq(ESC("\xe6\x97\xa5\xe6\x9c\xac"), "\xe6\x97\xa5\xe6\x9c\xac");
  ck_assert_str_eq(ESC("\xf0\x9d\x84\x9e"), "\xf0\x9d\x84\x9e"); /* U+1D11E */
  ck_assert_str_eq(ESC("\xc2\x80"), "\xc2\x80");                 /* U+0080 */
  ck_assert_str_eq(ESC("\xed\x9f\xbf"), "\xed\x9f\xbf");         /* U+D7FF */
  ck_assert_str_eq(ESC("\xee\x80\x80"), "\xee\x80\x80");         /* U+E000 */
  ck_assert_str_eq(ESC("\xef\xbf\xbf"), "\xef\xbf\xbf");         /* U+FFFF */
  ck_assert_str_eq(ESC("\xf4\x8f\xbf\xbf"), "\xf4\x8f\xbf\xbf"); /* U+10FFFF */
}
END_TEST

START_TEST(test_writer_json_escape_invalid_utf8) {
  ck_assert_str_eq(ESC("\x80"), "\\ufffd"); /* stray continuation */
  ck_assert_str_eq(ESC("a\xff"
                       "b"),
                   "a\\ufffdb"); /* never valid */
  ck_assert_str_eq(ESC("\xfe\xfe"), "\\ufffd\\ufffd");
  ck_assert_str_eq(ESC("caf\xe9"), "caf\\ufffd"); /* Latin-1 é */
  /* A truncated sequence is one replacement (its maximal subpart). */
  ck_assert_str_eq(ESC("\xe2\x82"), "\\ufffd");
  ck_assert_str_eq(ESC("\xe2\x82"
                       "A"),
                   "\\ufffdA");
  ck_assert_str_eq(ESC("\xf0\x9d\x84"), "\\ufffd");
  ck_assert_str_eq(ESC("\xc3"), "\\ufffd");
  ck_assert_str_eq(ESC("\xc3\""), "\\ufffd\\\"");
}
END_TEST

START_TEST(test_writer_json_escape_overlong) {
  ck_assert_str_eq(ESC("\xc0\xaf"), "\\ufffd\\ufffd"); /* '/' */
  ck_assert_str_eq(ESC("\xc1\xbf"), "\\ufffd\\ufffd");
  ck_assert_str_eq(ESC("\xe0\x80\xaf"), "\\ufffd\\ufffd\\ufffd");
  ck_assert_str_eq(ESC("\xe0\x9f\xbf"), "\\ufffd\\ufffd\\ufffd");
  ck_assert_str_eq(ESC("\xf0\x80\x80\xaf"), "\\ufffd\\ufffd\\ufffd\\ufffd");
  ck_assert_str_eq(ESC("\xf0\x8f\xbf\xbf"), "\\ufffd\\ufffd\\ufffd\\ufffd");
}
END_TEST

START_TEST(test_writer_json_escape_surrogates_and_range) {
  ck_assert_str_eq(ESC("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd"); /* D800 */
  ck_assert_str_eq(ESC("\xed\xbf\xbf"), "\\ufffd\\ufffd\\ufffd"); /* DFFF */
  ck_assert_str_eq(ESC("\xf4\x90\x80\x80"),
                   "\\ufffd\\ufffd\\ufffd\\ufffd"); /* 110000 */
  ck_assert_str_eq(ESC("\xf5\x80\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");
}
END_TEST

START_TEST(test_writer_json_escape_every_byte_is_bounded) {
  /* Every single byte value, alone and followed by junk, stays within the
   * documented bound and never produces a raw control or invalid byte. */
  for (int b = 0; b < 256; b++) {
    char in[4] = {(char)b, (char)0xbf, (char)0x80, (char)b};
    char *out = escape(in, sizeof(in));
    for (const unsigned char *p = (const unsigned char *)out; *p; p++)
      ck_assert_int_ge(*p, 0x20);
  }
}
END_TEST

/* Onto a stream (tr_json_put_str, for `traced report --json` and `traced
 * status --json`): the input is escaped in chunks, which must give what
 * escaping it whole gives, whatever UTF-8 (valid or not) a chunk ends in. */
START_TEST(test_writer_json_put_str_matches_escape) {
  static const uint8_t alphabet[] = {'a',  '"',  '\\', '\n', 0x01, 0x7f,
                                     0x80, 0xbf, 0xc2, 0xe0, 0xe2, 0xed,
                                     0xf0, 0xf4, 0xf5, 0xff};
  static char in[1200], want[TR_JSON_ESCAPED_MAX(1200) + 2];
  unsigned x = 7;
  for (int round = 0; round < 400; round++) {
    size_t n = (size_t)(round * 3) % sizeof(in);
    for (size_t i = 0; i < n; i++) {
      x = x * 1103515245u + 12345u;
      /* Mostly continuation bytes, so sequences straddle the chunks. */
      in[i] = (char)((x >> 16) % 3 ? 0x80 | ((x >> 8) & 0x3f)
                                   : alphabet[(x >> 8) % sizeof(alphabet)]);
    }
    want[0] = '"';
    size_t k = 1 + tr_json_escape(want + 1, in, n);
    want[k++] = '"';
    char *got = NULL;
    size_t glen = 0;
    FILE *f = open_memstream(&got, &glen);
    ck_assert_ptr_nonnull(f);
    tr_json_put_str(f, in, n);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_uint_eq(glen, k);
    ck_assert_int_eq(memcmp(got, want, k), 0);
    free(got);
  }
}
END_TEST

/* ---- events ----------------------------------------------------------------
 */

static int out_fd(void) {
  int fd = memfd_create("check_writer_json", MFD_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* The lanes' buffers sealed, as at the end of a drain pass, and waited
 * for until the I/O thread has written them.  Returns 0 or the writer's
 * error. */
static int flush(tr_writer *w) {
  for (unsigned i = 0; i < w->nlanes; i++) tr_writer_lane_flush(w, i, true);
  return tr_writer_wait(w);
}

/* What a session's end does: every lane flushed with force, the writer
 * closed, then waited for until it is done.  Returns its result. */
static int finish(tr_writer *w) {
  for (unsigned i = 0; i < w->nlanes; i++) tr_writer_lane_flush(w, i, true);
  tr_writer_close(w);
  int rc = tr_writer_wait(w), done_rc = 1;
  ck_assert(tr_writer_done(w, &done_rc));
  ck_assert_int_eq(rc, done_rc);
  return rc;
}

static uint64_t events_of(const tr_writer *w) {
  uint64_t n;
  tr_writer_stats(w, &n, NULL, NULL);
  return n;
}

static uint64_t dropped_of(const tr_writer *w) {
  uint64_t n;
  tr_writer_stats(w, NULL, &n, NULL);
  return n;
}

static uint64_t bytes_of(const tr_writer *w) {
  uint64_t n;
  tr_writer_stats(w, NULL, NULL, &n);
  return n;
}

/* The whole file, NUL-terminated (caller frees). */
static char *slurp(int fd, size_t *len) {
  off_t end = lseek(fd, 0, SEEK_END);
  ck_assert_int_ge(end, 0);
  char *buf = malloc((size_t)end + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(pread(fd, buf, (size_t)end, 0), end);
  buf[end] = '\0';
  if (len) *len = (size_t)end;
  return buf;
}

START_TEST(test_writer_json_empty_trace) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  ck_assert_int_eq(finish(&w->base), 0);
  ck_assert_int_eq(finish(&w->base), 0); /* idempotent */
  char *s = slurp(fd, NULL);
  ck_assert_str_eq(s, "{\"traceEvents\":[\n\n]}\n");
  ck_assert_uint_eq(bytes_of(&w->base), strlen(s));
  ck_assert_uint_eq(events_of(&w->base), 0);
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

/* While a session runs, and for outputs that cannot seek, the file is the
 * array form with a padded head: loadable even when cut short. */
START_TEST(test_writer_json_array_form_until_finished) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "f", 1, 1, 2, 1000, 10, false, NULL, 0);
  ck_assert_int_eq(flush(&w->base), 0);
  char *s = slurp(fd, NULL);
  ck_assert_str_eq(s,
                   "[               \n"
                   "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":1,"
                   "\"tid\":2,\"ts\":1.000,\"dur\":0.010}");
  free(s);
  tr_writer_free(&w->base);
  close(fd);

  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  ck_assert_int_eq(tr_json_open(&w, p[1], "test", false, 1), 0);
  ck_assert_int_eq(finish(&w->base), 0);
  char buf[64] = "";
  ck_assert_int_eq(read(p[0], buf, sizeof(buf) - 1),
                   (ssize_t)bytes_of(&w->base));
  ck_assert_str_eq(buf, "[               \n\n]\n");
  tr_writer_free(&w->base);
  close(p[0]);
  close(p[1]);
}
END_TEST

START_TEST(test_writer_json_events_exact) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  tr_json_meta(w, 0, "process_name", 42, 0, "name", "py\"thon", 7);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "f (x.py:1)", 10, 42, 43, 123456789, 7890,
                false, NULL, 0);
  tr_json_slice(w, 0, TR_CAT_C, "builtins.len", 12, 42, 43, 5, 0, true, NULL,
                0);
  tr_json_instant(w, 0, TR_CAT_API, "mark", 4, 42, 43, 1000, NULL, 0);
  tr_json_counter(w, 0, "mem", 3, 42, 43, 2000, 3.25, NULL, 0);
  tr_json_counter(w, 0, "mem", 3, 42, 43, 2001, 0.1, NULL, 0);
  tr_json_counter(w, 0, "mem", 3, 42, 43, 2002, NAN, NULL, 0);
  tr_json_counter(w, 0, "mem", 3, 42, 43, 2003, -1e300, NULL, 0);
  tr_json_lost(w, 0, 42, 43, 3000, 17);
  tr_json_slice(w, 0, TR_CAT_API, "span", 4, 4294967295u, 4294967295u,
                UINT64_MAX, 999, false, NULL, 0);
  ck_assert_int_eq(finish(&w->base), 0);
  char *s = slurp(fd, NULL);
  const char *want =
      "{\"traceEvents\":[\n"
      "{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":42,\"tid\":0,"
      "\"args\":{\"name\":\"py\\\"thon\"}},\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f (x.py:1)\",\"pid\":42,"
      "\"tid\":43,\"ts\":123456.789,\"dur\":7.890},\n"
      "{\"ph\":\"X\",\"cat\":\"c\",\"name\":\"builtins.len\",\"pid\":42,"
      "\"tid\":43,\"ts\":0.005,\"dur\":0.000,\"args\":{\"unfinished\":true}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"mark\",\"pid\":42,"
      "\"tid\":43,\"ts\":1.000},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"mem\",\"pid\":42,\"tid\":43,"
      "\"ts\":2.000,\"args\":{\"value\":3.25}},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"mem\",\"pid\":42,\"tid\":43,"
      "\"ts\":2.001,\"args\":{\"value\":0.1}},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"mem\",\"pid\":42,\"tid\":43,"
      "\"ts\":2.002,\"args\":{\"value\":null}},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"mem\",\"pid\":42,\"tid\":43,"
      "\"ts\":2.003,\"args\":{\"value\":-1e+300}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"traced\",\"name\":\"traced: events "
      "lost (ring full)\",\"pid\":42,\"tid\":43,\"ts\":3.000,"
      "\"args\":{\"count\":17}},\n"
      "{\"ph\":\"X\",\"cat\":\"api\",\"name\":\"span\",\"pid\":4294967295,"
      "\"tid\":4294967295,\"ts\":18446744073709551.615,\"dur\":0.999}\n"
      "]}\n";
  ck_assert_str_eq(s, want);
  ck_assert_uint_eq(events_of(&w->base), 9); /* metadata is not counted */
  ck_assert_uint_eq(bytes_of(&w->base), strlen(want));
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

/* Each lane keeps its last event's formatted pid, tid and leading
 * timestamp digits (put_ids_ts): events that change any of the three, one
 * at a time, on both sides of 10^8 us, must read as printf writes them. */
START_TEST(test_writer_json_ids_ts_cache_follows_changes) {
  static const struct {
    uint32_t pid, tid;
    uint64_t ts;
  } ev[] = {
      {7, 8, 99999999999ull},        /* 99,999,999.999 us: no cached digits */
      {7, 8, 100000000000ull},       /* 10^8 us: a leading digit */
      {7, 8, 100000000001ull},       /* the same leading digits */
      {9, 8, 100000000002ull},       /* another pid */
      {9, 10, 100000000003ull},      /* another tid */
      {9, 10, 12345678901234567ull}, /* other leading digits */
      {9, 10, 5ull},                 /* back below: none */
      {7, 8, 199999999999999ull},    /* the first pid and tid again */
      {4294967295u, 4294967295u, UINT64_MAX},
      {0, 0, 0},
  };
  const size_t n = sizeof(ev) / sizeof(ev[0]);
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  for (size_t i = 0; i < n; i++)
    tr_json_slice(w, 0, TR_CAT_PYTHON, "f", 1, ev[i].pid, ev[i].tid, ev[i].ts,
                  1, false, NULL, 0);
  ck_assert_int_eq(finish(&w->base), 0);
  char *s = slurp(fd, NULL);
  char want[4096];
  size_t k = (size_t)snprintf(want, sizeof(want), "{\"traceEvents\":[\n");
  for (size_t i = 0; i < n; i++)
    k += (size_t)snprintf(
        want + k, sizeof(want) - k,
        "%s{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":%u,"
        "\"tid\":%u,\"ts\":%llu.%03u,\"dur\":0.001}",
        i > 0 ? ",\n" : "", ev[i].pid, ev[i].tid,
        (unsigned long long)(ev[i].ts / 1000), (unsigned)(ev[i].ts % 1000));
  snprintf(want + k, sizeof(want) - k, "\n]}\n");
  ck_assert_str_eq(s, want);
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

START_TEST(test_writer_json_args_every_type) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  tr_arg args[] = {
      {.key = "s", .klen = 1, .type = TR_ARG_STR, .v.s = {"x\"\n\xff", 4}},
      {.key = "i", .klen = 1, .type = TR_ARG_INT, .v.i = INT64_MIN},
      {.key = "u", .klen = 1, .type = TR_ARG_UINT, .v.u = UINT64_MAX},
      {.key = "d", .klen = 1, .type = TR_ARG_DOUBLE, .v.d = 0.5},
      {.key = "nan", .klen = 3, .type = TR_ARG_DOUBLE, .v.d = NAN},
      {.key = "inf", .klen = 3, .type = TR_ARG_DOUBLE, .v.d = -INFINITY},
      {.key = "b", .klen = 1, .type = TR_ARG_BOOL, .v.b = true},
      {.key = "k\"\x01", .klen = 3, .type = TR_ARG_BOOL, .v.b = false},
  };
  uint32_t n = sizeof(args) / sizeof(args[0]);
  tr_json_slice(w, 0, TR_CAT_API, "s", 1, 1, 2, 1000, 10, false, args, n);
  tr_json_slice(w, 0, TR_CAT_API, "t", 1, 1, 2, 1000, 10, true, args, 1);
  tr_json_instant(w, 0, TR_CAT_API, "i", 1, 1, 2, 3000, args + 6, 1);
  ck_assert_int_eq(finish(&w->base), 0);
  char *s = slurp(fd, NULL);
  const char *want =
      "{\"traceEvents\":[\n"
      "{\"ph\":\"X\",\"cat\":\"api\",\"name\":\"s\",\"pid\":1,\"tid\":2,"
      "\"ts\":1.000,\"dur\":0.010,\"args\":{\"s\":\"x\\\"\\n\\ufffd\","
      "\"i\":-9223372036854775808,\"u\":18446744073709551615,\"d\":0.5,"
      "\"nan\":null,\"inf\":null,\"b\":true,\"k\\\"\\u0001\":false}},\n"
      "{\"ph\":\"X\",\"cat\":\"api\",\"name\":\"t\",\"pid\":1,\"tid\":2,"
      "\"ts\":1.000,\"dur\":0.010,\"args\":{\"unfinished\":true,"
      "\"s\":\"x\\\"\\n\\ufffd\"}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"i\",\"pid\":1,"
      "\"tid\":2,\"ts\":3.000,\"args\":{\"b\":true}}\n"
      "]}\n";
  ck_assert_str_eq(s, want);
  ck_assert_uint_eq(events_of(&w->base), 3);
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

static tr_arg str_arg(const char *k, const char *v, uint32_t vlen) {
  tr_arg a = {.key = k, .klen = (uint32_t)strlen(k), .type = TR_ARG_STR};
  a.v.s.ptr = v;
  a.v.s.len = vlen;
  return a;
}

START_TEST(test_writer_json_args_exact) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  tr_arg a[6];
  a[0] = str_arg("a", "'x\"y'", 5);
  a[1] = (tr_arg){.key = "n", .klen = 1, .type = TR_ARG_INT, .v.i = -42};
  a[2] =
      (tr_arg){.key = "u", .klen = 1, .type = TR_ARG_UINT, .v.u = UINT64_MAX};
  a[3] = (tr_arg){.key = "d", .klen = 1, .type = TR_ARG_DOUBLE, .v.d = 0.5};
  a[4] = (tr_arg){.key = "b", .klen = 1, .type = TR_ARG_BOOL, .v.b = true};
  a[5] = str_arg("k\n\xff", "\xe2\x80\xa6", 3);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "f", 1, 1, 2, 1000, 10, false, a, 6);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "g", 1, 1, 2, 1000, 10, true, a, 1);
  tr_json_instant(w, 0, TR_CAT_API, "i", 1, 1, 2, 1000, a + 4, 1);
  tr_json_counter(w, 0, "c", 1, 1, 2, 1000, 99.0, a + 1, 3);
  tr_json_counter(w, 0, "c", 1, 1, 2, 1000, 99.0, NULL, 0);
  ck_assert_int_eq(finish(&w->base), 0);
  char *s = slurp(fd, NULL);
  const char *want =
      "{\"traceEvents\":[\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":1,"
      "\"tid\":2,\"ts\":1.000,\"dur\":0.010,\"args\":{\"a\":\"'x\\\"y'\","
      "\"n\":-42,\"u\":18446744073709551615,\"d\":0.5,\"b\":true,"
      "\"k\\n\\ufffd\":\"\xe2\x80\xa6\"}},\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"g\",\"pid\":1,"
      "\"tid\":2,\"ts\":1.000,\"dur\":0.010,\"args\":{\"unfinished\":true,"
      "\"a\":\"'x\\\"y'\"}},\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"i\",\"pid\":1,"
      "\"tid\":2,\"ts\":1.000,\"args\":{\"b\":true}},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"c\",\"pid\":1,\"tid\":2,"
      "\"ts\":1.000,\"args\":{\"n\":-42,\"u\":18446744073709551615,"
      "\"d\":0.5}},\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"c\",\"pid\":1,\"tid\":2,"
      "\"ts\":1.000,\"args\":{\"value\":99}}\n"
      "]}\n";
  ck_assert_str_eq(s, want);
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

START_TEST(test_writer_json_hostile_name_roundtrip) {
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  const char raw[] = "q\"\\\n\x01\xff\xed\xa0\x80\xc3\xa9";
  char esc[TR_JSON_ESCAPED_MAX(sizeof(raw))];
  size_t n = tr_json_escape(esc, raw, sizeof(raw) - 1);
  tr_json_slice(w, 0, TR_CAT_PYTHON, esc, n, 1, 2, 3000, 1000, false, NULL, 0);
  tr_json_meta(w, 0, "thread_name", 1, 2, "name", raw, sizeof(raw) - 1);
  finish(&w->base);
  char *s = slurp(fd, NULL);
  ck_assert_ptr_nonnull(strstr(
      s,
      "\"name\":\"q\\\"\\\\\\n\\u0001\\ufffd\\ufffd\\ufffd\\ufffd\xc3\xa9\""));
  ck_assert_ptr_nonnull(strstr(
      s,
      "\"args\":{\"name\":\"q\\\"\\\\\\n\\u0001\\ufffd\\ufffd\\ufffd\\ufffd"
      "\xc3\xa9\"}"));
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

START_TEST(test_writer_json_many_events_flush) {
  /* Far more than one buffer: every event reaches the file in order. */
  int fd = out_fd();
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  const int n = 20000;
  for (int i = 0; i < n; i++)
    tr_json_slice(w, 0, TR_CAT_PYTHON, "some_function (module.py:123)", 29, 100,
                  101, (uint64_t)i * 1000, 500, false, NULL, 0);
  ck_assert_int_eq(finish(&w->base), 0);
  size_t len;
  char *s = slurp(fd, &len);
  ck_assert_uint_eq(len, bytes_of(&w->base));
  ck_assert_uint_gt(len, 2 * TR_JSON_BUF_SIZE);
  ck_assert_uint_eq(events_of(&w->base), (uint64_t)n);
  int lines = 0;
  for (size_t i = 0; i < len; i++) lines += s[i] == '\n';
  ck_assert_int_eq(lines, n + 2);
  ck_assert_ptr_nonnull(strstr(s, "\"ts\":19999.000,\"dur\":0.500}\n]}\n"));
  ck_assert_int_eq(memcmp(s, "{\"traceEvents\":[\n{", 18), 0);
  free(s);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

START_TEST(test_writer_json_write_error_counts_dropped) {
  /* A descriptor that refuses writes: the writer fails once, then counts
   * every event as dropped and writes nothing more. */
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  tr_json *w;
  ck_assert_int_eq(tr_json_open(&w, fd, "test", false, 1), 0);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "a", 1, 1, 1, 1, 1, false, NULL, 0);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "b", 1, 1, 1, 1, 1, false, NULL, 0);
  ck_assert_int_lt(flush(&w->base), 0);
  ck_assert(atomic_load(&w->base.sink.failed));
  ck_assert_uint_eq(dropped_of(&w->base), 2);
  ck_assert_uint_eq(events_of(&w->base), 0);
  tr_json_slice(w, 0, TR_CAT_PYTHON, "c", 1, 1, 1, 1, 1, false, NULL, 0);
  tr_json_instant(w, 0, TR_CAT_API, "d", 1, 1, 1, 1, NULL, 0);
  ck_assert_uint_eq(dropped_of(&w->base), 4);
  ck_assert_int_lt(finish(&w->base), 0);
  ck_assert_uint_eq(bytes_of(&w->base), 0);
  tr_writer_free(&w->base);
  close(fd);
}
END_TEST

static Suite *writer_json_suite(void) {
  Suite *s = suite_create("writer_json");
  TCase *esc = tcase_create("escape");
  tcase_add_test(esc, test_writer_json_escape_plain);
  tcase_add_test(esc, test_writer_json_escape_quotes_backslashes);
  tcase_add_test(esc, test_writer_json_escape_control_chars);
  tcase_add_test(esc, test_writer_json_escape_valid_utf8);
  tcase_add_test(esc, test_writer_json_escape_invalid_utf8);
  tcase_add_test(esc, test_writer_json_escape_overlong);
  tcase_add_test(esc, test_writer_json_escape_surrogates_and_range);
  tcase_add_test(esc, test_writer_json_escape_every_byte_is_bounded);
  tcase_add_test(esc, test_writer_json_put_str_matches_escape);
  suite_add_tcase(s, esc);
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_writer_json_empty_trace);
  tcase_add_test(core, test_writer_json_array_form_until_finished);
  tcase_add_test(core, test_writer_json_events_exact);
  tcase_add_test(core, test_writer_json_ids_ts_cache_follows_changes);
  tcase_add_test(core, test_writer_json_args_every_type);
  tcase_add_test(core, test_writer_json_args_exact);
  tcase_add_test(core, test_writer_json_hostile_name_roundtrip);
  tcase_add_test(core, test_writer_json_many_events_flush);
  suite_add_tcase(s, core);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_writer_json_write_error_counts_dropped);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(writer_json_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

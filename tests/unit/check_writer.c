/* check_writer.c: unit tests of the writer interface (output/writer.c) and
 * its gzip and Perfetto backends: gzip holds exactly the JSON, Perfetto
 * interns each name once per stream, unresolvable names write nothing,
 * write errors count every event as dropped. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "output/formats.h"
#include "output/writer.h"
#include "output/writer_json.h"
#include "output/writer_pftrace.h"

/* A fake string table: id i (4-aligned) names names[i / 4]. */
static const char *const names[] = {"<unknown>", "f (x.py:1)", "g", "q\"\xff"};

static bool resolve(void *ctx, uint32_t id, const char **s, uint32_t *len) {
  (void)ctx;
  if (id % 4 != 0 || id / 4 >= sizeof(names) / sizeof(names[0])) return false;
  *s = names[id / 4];
  *len = (uint32_t)strlen(names[id / 4]);
  return true;
}

static int out_fd(void) {
  int fd = memfd_create("check_writer", MFD_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  return fd;
}

static char *slurp(int fd, size_t *len) {
  off_t end = lseek(fd, 0, SEEK_END);
  char *buf = malloc((size_t)end + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_int_eq(pread(fd, buf, (size_t)end, 0), end);
  buf[end] = '\0';
  *len = (size_t)end;
  return buf;
}

static size_t count(const char *hay, size_t n, const char *needle) {
  size_t k = strlen(needle), c = 0;
  for (size_t i = 0; i + k <= n; i++)
    if (memcmp(hay + i, needle, k) == 0) c++;
  return c;
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

/* The same events into any writer: two processes, one of which writes
 * slices, an instant, a counter, a lost marker and names. */
static void write_events(tr_writer *w) {
  tr_wstream *a, *b;
  ck_assert_int_eq(tr_wstream_open(w, 0, 10, resolve, NULL, &a), 0);
  ck_assert_int_eq(tr_wstream_open(w, 0, 20, resolve, NULL, &b), 0);
  tr_arg args[2] = {
      {.key = "n", .klen = 1, .type = TR_ARG_INT, .v.i = -3},
      {.key = "s", .klen = 1, .type = TR_ARG_STR, .v.s = {"a\"b", 3}},
  };
  for (int i = 0; i < 3; i++) {
    uint64_t ts = 1000 + 100 * (uint64_t)i;
    ck_assert_int_eq(tr_wstream_enter(a, 11, TR_CAT_PYTHON, 4, ts), 0);
    ck_assert_int_eq(tr_wstream_slice(a, 11, TR_CAT_PYTHON, 4, ts, 50, i == 2,
                                      i == 1 ? args : NULL, i == 1 ? 2 : 0),
                     0);
  }
  ck_assert_int_eq(tr_wstream_instant(a, 11, TR_CAT_API, 8, 1500, NULL, 0), 0);
  ck_assert_int_eq(tr_wstream_counter(a, 11, 8, 1600, 2.5, NULL, 0), 0);
  tr_wstream_lost(a, 11, 1700, 4);
  ck_assert_int_eq(tr_wstream_enter(b, 21, TR_CAT_C, 12, 2000), 0);
  ck_assert_int_eq(
      tr_wstream_slice(b, 21, TR_CAT_C, 12, 2000, 5, false, NULL, 0), 0);
  tr_wstream_thread_name(a, 11, "main", 4, 0);
  tr_wstream_process_name(a, "proc-a", 6, 0);
  tr_wstream_sort_index(a, 1);
  tr_wstream_labels(a, "ppid 1", 6);
  tr_wstream_process_name(b, "proc-b", 6, 0);
  tr_wstream_close(a);
  tr_wstream_close(b);
}

/* The JSON inside a gzip file (one member, complete), NUL-terminated. */
static char *gunzip(const char *gz, size_t gn, size_t *n) {
  size_t cap = 64u << 20;
  char *plain = malloc(cap);
  ck_assert_ptr_nonnull(plain);
  z_stream zs;
  memset(&zs, 0, sizeof(zs));
  ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = (Bytef *)gz;
  zs.avail_in = (uInt)gn;
  zs.next_out = (Bytef *)plain;
  zs.avail_out = (uInt)cap - 1;
  ck_assert_int_eq(inflate(&zs, Z_FINISH), Z_STREAM_END);
  ck_assert_uint_eq(zs.avail_in, 0);
  *n = zs.total_out;
  plain[*n] = '\0';
  inflateEnd(&zs);
  return plain;
}

START_TEST(test_writer_format_names) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse("json", 4, &f), 0);
  ck_assert_int_eq(f, TR_FORMAT_JSON);
  ck_assert_int_eq(tr_format_parse("json.gz", 7, &f), 0);
  ck_assert_int_eq(f, TR_FORMAT_JSON_GZ);
  ck_assert_int_eq(tr_format_parse("perfetto", 8, &f), 0);
  ck_assert_int_eq(f, TR_FORMAT_PERFETTO);
  ck_assert_int_eq(tr_format_parse("JSON", 4, &f), -EINVAL);
  ck_assert_int_eq(tr_format_parse("json", 3, &f), -EINVAL);
  ck_assert_int_eq(tr_format_parse("", 0, &f), -EINVAL);
  ck_assert_str_eq(tr_format_name(TR_FORMAT_JSON_GZ), "json.gz");
}
END_TEST

START_TEST(test_writer_gzip_holds_the_json) {
  int jfd = out_fd(), gfd = out_fd();
  tr_writer *j, *g;
  ck_assert_int_eq(tr_writer_open(&j, jfd, TR_FORMAT_JSON, "test", 1), 0);
  ck_assert_int_eq(tr_writer_open(&g, gfd, TR_FORMAT_JSON_GZ, "test", 1), 0);
  write_events(j);
  write_events(g);
  /* Mid-stream, under TR_GZ_CHUNK_MIN and younger than TR_GZ_SYNC_NS: the
   * lane keeps its bytes. */
  tr_writer_lane_flush(g, 0, false);
  ck_assert_uint_gt(g->lanes[0].c->len, 0);
  ck_assert_int_eq(finish(j), 0);
  ck_assert_int_eq(finish(g), 0);
  ck_assert_int_eq(finish(g), 0); /* idempotent */
  ck_assert_uint_eq(events_of(j), 7);
  ck_assert_uint_eq(events_of(g), 7);

  size_t jn, gn;
  char *js = slurp(jfd, &jn), *gz = slurp(gfd, &gn);
  ck_assert_uint_eq(bytes_of(g), gn);
  ck_assert_int_eq((uint8_t)gz[0], 0x1f);
  ck_assert_int_eq((uint8_t)gz[1], 0x8b);
  size_t pn;
  char *plain = gunzip(gz, gn, &pn); /* one member, all of it */
  ck_assert_uint_eq(pn, jn);
  ck_assert_int_eq(memcmp(plain, js, jn), 0);
  ck_assert_ptr_nonnull(strstr(js, "\"args\":{\"n\":-3,\"s\":\"a\\\"b\"}},\n"));
  ck_assert_ptr_nonnull(strstr(js, "\"args\":{\"unfinished\":true}},\n"));
  free(plain);
  free(js);
  free(gz);
  tr_writer_free(j);
  tr_writer_free(g);
  close(jfd);
  close(gfd);
}
END_TEST

START_TEST(test_writer_pftrace_interns_once_per_stream) {
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, TR_FORMAT_PERFETTO, "test", 1), 0);
  write_events(w);
  ck_assert_int_eq(finish(w), 0);
  ck_assert_uint_eq(events_of(w), 7); /* a slice is one event, two packets */
  size_t n;
  char *s = slurp(fd, &n);
  ck_assert_uint_eq(bytes_of(w), n);
  /* Stream a uses name id 4 three times, interning it once; stream b
   * never uses it. */
  ck_assert_uint_eq(count(s, n, "f (x.py:1)"), 1);
  ck_assert_uint_eq(count(s, n, "python"), 2); /* categories, per stream */
  /* An invalid UTF-8 name is written with U+FFFD, as JSON writes it. */
  ck_assert_uint_eq(count(s, n, "q\"\xef\xbf\xbd"), 1);
  ck_assert_uint_eq(count(s, n, "unfinished"), 1);
  ck_assert_uint_eq(count(s, n, "traced: events lost (ring full)"), 1);
  ck_assert_uint_eq(count(s, n, "proc-a"), 1);
  ck_assert_uint_eq(count(s, n, "proc-b"), 1);
  ck_assert_uint_eq(count(s, n, "ppid 1"), 0); /* labels: JSON only */
  /* The first packet is sequence 1's clock snapshot. */
  ck_assert_int_eq((uint8_t)s[0], 0x0a);
  ck_assert_int_eq((uint8_t)s[2], 0x50); /* field 10, varint */
  ck_assert_int_eq((uint8_t)s[3], 1);
  ck_assert_int_eq((uint8_t)s[4], 0x32); /* field 6, length-delimited */
  free(s);
  tr_writer_free(w);
  close(fd);
}
END_TEST

START_TEST(test_writer_unresolvable_name_writes_nothing) {
  for (int f = TR_FORMAT_JSON; f <= TR_FORMAT_PERFETTO; f++) {
    int fd = out_fd();
    tr_writer *w;
    tr_wstream *s;
    ck_assert_int_eq(tr_writer_open(&w, fd, (tr_format)f, "test", 1), 0);
    ck_assert_int_eq(tr_wstream_open(w, 0, 1, resolve, NULL, &s), 0);
    /* Perfetto resolves a call's name when it enters (its BEGIN); the
     * caller writes no slice for a call whose enter failed. */
    if (f == TR_FORMAT_PERFETTO)
      ck_assert_int_eq(tr_wstream_enter(s, 1, TR_CAT_PYTHON, 400, 1), -EINVAL);
    else
      ck_assert_int_eq(
          tr_wstream_slice(s, 1, TR_CAT_PYTHON, 400, 1, 1, false, NULL, 0),
          -EINVAL);
    ck_assert_int_eq(tr_wstream_instant(s, 1, TR_CAT_API, 5, 1, NULL, 0),
                     -EINVAL);
    ck_assert_int_eq(tr_wstream_counter(s, 1, 4000, 1, 1.0, NULL, 0), -EINVAL);
    ck_assert_uint_eq(events_of(w), 0);
    ck_assert_uint_eq(dropped_of(w), 0);
    tr_wstream_close(s);
    finish(w);
    tr_writer_free(w);
    close(fd);
  }
}
END_TEST

START_TEST(test_writer_write_error_counts_dropped) {
  for (int f = TR_FORMAT_JSON; f <= TR_FORMAT_PERFETTO; f++) {
    /* A pipe whose reader leaves once the head is written, so the next
     * write fails (EPIPE: the I/O thread never takes SIGPIPE), and fails
     * only when the buffered event is written: the I/O thread writes
     * asynchronously, and a descriptor refusing every write would fail
     * the head before the event was even formatted. */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    tr_writer *w;
    tr_wstream *s;
    ck_assert_int_eq(tr_writer_open(&w, p[1], (tr_format)f, "test", 1), 0);
    ck_assert_int_eq(tr_writer_wait(w), 0);
    uint64_t head = bytes_of(w);
    ck_assert_uint_gt(head, 0);
    close(p[0]);
    ck_assert_int_eq(tr_wstream_open(w, 0, 1, resolve, NULL, &s), 0);
    ck_assert_int_eq(tr_wstream_enter(s, 1, TR_CAT_PYTHON, 4, 1), 0);
    ck_assert_int_eq(
        tr_wstream_slice(s, 1, TR_CAT_PYTHON, 4, 1, 1, false, NULL, 0), 0);
    ck_assert_uint_eq(events_of(w), 1);
    tr_writer_lane_flush(w, 0, true);
    ck_assert_int_eq(tr_writer_wait(w), -EPIPE);
    ck_assert_uint_eq(events_of(w), 0);
    ck_assert_uint_eq(dropped_of(w), 1);
    ck_assert_int_eq(tr_wstream_counter(s, 1, 8, 2, 1.0, NULL, 0), 0);
    ck_assert_uint_eq(dropped_of(w), 2);
    tr_wstream_close(s);
    ck_assert_int_eq(finish(w), -EPIPE);
    ck_assert_uint_eq(bytes_of(w), head); /* nothing after the failure */
    tr_writer_free(w);
    close(p[1]);
  }
}
END_TEST

START_TEST(test_writer_pftrace_uuids) {
  ck_assert_uint_eq(tr_pf_process_uuid(5), (5u << 2) | 1);
  ck_assert_uint_eq(tr_pf_thread_uuid(5, 7), (5ull << 24) | (7u << 2) | 2);
  ck_assert_uint_eq(tr_pf_counter_uuid(5, "c", 1) & 3, 3);
  ck_assert_uint_ne(tr_pf_counter_uuid(5, "c", 1),
                    tr_pf_counter_uuid(6, "c", 1));
  ck_assert_uint_eq(tr_pf_counter_uuid(5, "c", 1),
                    tr_pf_counter_uuid(5, "c", 1));
}
END_TEST

/* n slices of one thread, sealed every 100 as a drain worker's passes
 * seal them, then the process's name; returns how many were offered. */
static uint64_t write_many(tr_writer *w, int n) {
  /* No ck_assert in the loop: under an RLIMIT_FSIZE, Check's own record of
   * each assertion would pass the limit. */
  tr_wstream *a;
  if (tr_wstream_open(w, 0, 10, resolve, NULL, &a) != 0) return 0;
  int bad = 0;
  for (int i = 0; i < n; i++) {
    uint64_t ts = 1000 + 100 * (uint64_t)i;
    bad |= tr_wstream_enter(a, 11, TR_CAT_PYTHON, 4, ts);
    bad |= tr_wstream_slice(a, 11, TR_CAT_PYTHON, 4, ts, 50, false, NULL, 0);
    if (i % 100 == 99) tr_writer_lane_flush(w, 0, false);
  }
  tr_wstream_process_name(a, "proc-a", 6, 0);
  tr_wstream_close(a);
  return bad == 0 ? (uint64_t)n : 0;
}

static bool ends_with(const char *s, size_t n, const char *end) {
  size_t k = strlen(end);
  return n >= k && memcmp(s + n - k, end, k) == 0;
}

START_TEST(test_writer_max_bytes_bounds_the_file) {
  const uint64_t max = 96u * 1024u;
  for (int f = TR_FORMAT_JSON; f <= TR_FORMAT_PERFETTO; f++) {
    int fd = out_fd();
    tr_writer *w;
    ck_assert_int_eq(tr_writer_open(&w, fd, (tr_format)f, "test", 1), 0);
    tr_writer_set_max_bytes(w, max);
    uint64_t offered = write_many(w, 100000);
    ck_assert_uint_eq(offered, 100000);
    ck_assert_int_eq(finish(w), 0);
    bool limited, unclosed;
    int err;
    tr_writer_cut(w, &limited, &err, &unclosed);
    ck_assert(limited);
    ck_assert_int_eq(err, 0);
    ck_assert(!unclosed);
    ck_assert_uint_gt(events_of(w), 100);
    ck_assert_uint_gt(dropped_of(w), 0);
    ck_assert_uint_eq(events_of(w) + dropped_of(w), offered);
    size_t n;
    char *s = slurp(fd, &n);
    ck_assert_uint_eq(bytes_of(w), n);
    ck_assert_uint_le(n, max);
    char *text = s;
    size_t tn = n;
    if (f == TR_FORMAT_JSON_GZ) text = gunzip(s, n, &tn);
    ck_assert_uint_eq(count(text, tn, "size limit of 98304 bytes reached"), 1);
    char note[64];
    snprintf(note, sizeof(note), "%llu events dropped",
             (unsigned long long)dropped_of(w));
    ck_assert_uint_eq(count(text, tn, note), 1);
    if (f == TR_FORMAT_PERFETTO) {
      /* Metadata written past the bound still goes in while it fits. */
      ck_assert_uint_eq(count(text, tn, "proc-a"), 1);
    } else {
      ck_assert(
          ends_with(text, tn, "}\n]}\n") &&
          count(text, tn, "\"ph\":\"i\",\"s\":\"g\",\"cat\":\"traced\"") == 1);
      ck_assert_uint_eq(count(text, tn, "\"ph\":\"X\""), events_of(w));
      if (f == TR_FORMAT_JSON) ck_assert_uint_eq(count(text, tn, "proc-a"), 1);
    }
    if (text != s) free(text);
    free(s);
    tr_writer_free(w);
    close(fd);
  }
}
END_TEST

/* Writes write_many(n) into a new file under an RLIMIT_FSIZE of `limit`
 * bytes: a real write(2) failing with EFBIG, part way through a chunk, as
 * ENOSPC does on a full disk.  Returns the file's bytes. */
static char *write_past_fsize(tr_format f, rlim_t limit, int n, size_t *len,
                              tr_writer **out) {
  char path[] = "/tmp/check_writer_fsize_XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  unlink(path);
  struct rlimit old, lim = {limit, RLIM_INFINITY};
  ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &old), 0);
  lim.rlim_max = old.rlim_max;
  signal(SIGXFSZ, SIG_IGN);
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", 1), 0);
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  uint64_t offered = write_many(w, n);
  for (unsigned i = 0; i < w->nlanes; i++) tr_writer_lane_flush(w, i, true);
  tr_writer_close(w);
  int rc = tr_writer_wait(w);
  setrlimit(RLIMIT_FSIZE, &old);
  ck_assert_int_eq(rc, -EFBIG);
  ck_assert_uint_eq(offered, (uint64_t)n);
  ck_assert_uint_eq(events_of(w) + dropped_of(w), offered);
  ck_assert_uint_gt(dropped_of(w), 0);
  char *s = slurp(fd, len);
  ck_assert_uint_le(*len, limit);
  ck_assert_uint_eq(bytes_of(w), *len);
  close(fd);
  *out = w;
  return s;
}

START_TEST(test_writer_disk_full_ends_at_a_whole_event) {
  const char *note = "write failed: File too large";
  for (int f = TR_FORMAT_JSON; f <= TR_FORMAT_PERFETTO; f++) {
    tr_writer *w;
    size_t n;
    char *s = write_past_fsize((tr_format)f, 100000, 100000, &n, &w);
    bool limited, unclosed;
    int err;
    tr_writer_cut(w, &limited, &err, &unclosed);
    ck_assert(!limited);
    ck_assert_int_eq(err, -EFBIG);
    ck_assert(!unclosed);
    char *text = s;
    size_t tn = n;
    if (f == TR_FORMAT_JSON_GZ) text = gunzip(s, n, &tn);
    ck_assert_uint_eq(count(text, tn, note), 1);
    if (f != TR_FORMAT_PERFETTO) {
      ck_assert(
          ends_with(text, tn, "}\n]}\n") &&
          count(text, tn, "\"ph\":\"i\",\"s\":\"g\",\"cat\":\"traced\"") == 1);
      ck_assert_uint_eq(count(text, tn, "\"ph\":\"X\""), events_of(w));
    }
    if (text != s) free(text);
    free(s);
    tr_writer_free(w);
  }
}
END_TEST

START_TEST(test_writer_disk_full_without_room_for_the_end) {
  /* Where the first run's last whole chunk ended, the second run's limit
   * leaves 10 bytes: its ending cannot be written there either, so the
   * file ends at that event, unclosed, and says so. */
  tr_writer *w;
  size_t n;
  char *s = write_past_fsize(TR_FORMAT_JSON, 100000, 100000, &n, &w);
  const char *mark = strstr(s, ",\n{\"ph\":\"i\",\"s\":\"g\"");
  ck_assert_ptr_nonnull(mark);
  size_t boundary = (size_t)(mark - s);
  free(s);
  tr_writer_free(w);
  s = write_past_fsize(TR_FORMAT_JSON, boundary + 10, 100000, &n, &w);
  bool limited, unclosed;
  int err;
  tr_writer_cut(w, &limited, &err, &unclosed);
  ck_assert_int_eq(err, -EFBIG);
  ck_assert(unclosed);
  ck_assert_uint_eq(n, boundary);
  ck_assert(ends_with(s, n, "}")); /* a whole event */
  free(s);
  tr_writer_free(w);
}
END_TEST

static Suite *writer_suite(void) {
  Suite *s = suite_create("writer");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_writer_format_names);
  tcase_add_test(core, test_writer_gzip_holds_the_json);
  tcase_add_test(core, test_writer_pftrace_interns_once_per_stream);
  tcase_add_test(core, test_writer_pftrace_uuids);
  suite_add_tcase(s, core);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_writer_unresolvable_name_writes_nothing);
  tcase_add_test(errors, test_writer_write_error_counts_dropped);
  tcase_add_test(errors, test_writer_max_bytes_bounds_the_file);
  tcase_add_test(errors, test_writer_disk_full_ends_at_a_whole_event);
  tcase_add_test(errors, test_writer_disk_full_without_room_for_the_end);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(writer_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* check_sink.c: unit tests of a writer's lanes and ordered chunk sink
 * (output/sink.c, output/writer.c): several threads writing into one
 * writer through their own lanes, in every format, give a file that reads
 * back whole (every event once, each stream's in its order; gzip one
 * member); a write error part way counts every event written or dropped;
 * a chunk still being sealed holds back the chunks numbered after it;
 * written chunks are pooled for the next writer. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "output/formats.h"
#include "output/gzout.h"
#include "output/writer.h"
#include "report/trace_read.h"

#define PID0 1000u /* stream i of lane l has pid PID0 + l * MAX_S + i */
#define MAX_S 4    /* streams per lane at most */
#define NAME_ID 4  /* the one name events use */
#define TS(k) (1000u + 1000u * (uint64_t)(k))

static const char *const formats[] = {"json", "json.gz", "perfetto"};

static bool resolve(void *ctx, uint32_t id, const char **s, uint32_t *len) {
  (void)ctx;
  if (id != NAME_ID) return false;
  *s = "some_function (module.py:123)";
  *len = (uint32_t)strlen(*s);
  return true;
}

static int out_fd(void) {
  int fd = memfd_create("check_sink", MFD_CLOEXEC);
  ck_assert_int_ge(fd, 0);
  return fd;
}

/* ---- lanes on threads ---------------------------------------------------
 * Each thread owns one lane, as a drain worker does: it opens its streams
 * there, writes n calls on each (round robin, so the lane's buffer mixes
 * them), flushes its lane every few events as a drain pass ends, names and
 * closes its streams, and flushes with force.  Failures are recorded, not
 * asserted: Check asserts from the test's own thread. */

typedef struct lane_job {
  tr_writer *w;
  unsigned lane;
  unsigned streams;
  unsigned n;
  int err; /* the first unexpected return value */
} lane_job;

static void *lane_main(void *arg) {
  lane_job *j = arg;
  tr_wstream *s[MAX_S];
  for (unsigned i = 0; i < j->streams; i++) {
    int rc = tr_wstream_open(j->w, j->lane, PID0 + j->lane * MAX_S + i, resolve,
                             NULL, &s[i]);
    if (rc < 0) {
      j->err = rc;
      return NULL;
    }
  }
  unsigned count = 0;
  for (unsigned k = 0; k < j->n; k++) {
    for (unsigned i = 0; i < j->streams; i++) {
      uint32_t tid = s[i]->pid;
      int rc = tr_wstream_enter(s[i], tid, TR_CAT_PYTHON, NAME_ID, TS(k));
      if (rc == 0)
        rc = tr_wstream_slice(s[i], tid, TR_CAT_PYTHON, NAME_ID, TS(k), 10,
                              false, NULL, 0);
      if (rc < 0 && j->err == 0) j->err = rc;
      if (++count % 61 == 0) tr_writer_lane_flush(j->w, j->lane, false);
    }
  }
  for (unsigned i = 0; i < j->streams; i++) {
    tr_wstream_thread_name(s[i], s[i]->pid, "worker", 6, 0);
    tr_wstream_process_name(s[i], "proc", 4, 0);
    tr_wstream_close(s[i]);
  }
  tr_writer_lane_flush(j->w, j->lane, true);
  return NULL;
}

/* Runs nlanes threads of `streams` streams of n calls each into w, then
 * closes w and waits until it is done.  Returns the writer's result. */
static int run_lanes(tr_writer *w, unsigned nlanes, unsigned streams,
                     unsigned n) {
  pthread_t th[8];
  lane_job jobs[8];
  ck_assert_uint_le(nlanes, 8);
  for (unsigned l = 0; l < nlanes; l++) {
    jobs[l] = (lane_job){.w = w, .lane = l, .streams = streams, .n = n};
    ck_assert_int_eq(pthread_create(&th[l], NULL, lane_main, &jobs[l]), 0);
  }
  for (unsigned l = 0; l < nlanes; l++) {
    ck_assert_int_eq(pthread_join(th[l], NULL), 0);
    ck_assert_int_eq(jobs[l].err, 0);
  }
  tr_writer_close(w);
  int rc = tr_writer_wait(w), done_rc = 1;
  ck_assert(tr_writer_done(w, &done_rc));
  ck_assert_int_eq(rc, done_rc);
  return rc;
}

/* Reads the trace in fd back: every stream's n calls, each once and in
 * order, nothing skipped, nothing cut short. */
static void check_trace(int fd, tr_format f, unsigned nlanes, unsigned streams,
                        unsigned n) {
  char path[64], err[256] = "";
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  tr_trace *t;
  ck_assert_msg(tr_trace_open_path(&t, path, err, sizeof(err)) == 0, "%s", err);
  ck_assert_int_eq(tr_trace_get_format(t),
                   f == TR_FORMAT_PERFETTO ? TR_TRACE_PERFETTO : TR_TRACE_JSON);
  ck_assert(tr_trace_compressed(t) == (f == TR_FORMAT_JSON_GZ));
  unsigned next[8 * MAX_S] = {0};
  int want = f == TR_FORMAT_PERFETTO ? TR_EV_BEGIN : TR_EV_COMPLETE;
  tr_trace_event ev;
  int rc;
  uint64_t calls = 0;
  while ((rc = tr_trace_next(t, &ev)) == 1) {
    if (ev.kind != want) continue;
    ck_assert_int_ge(ev.pid, PID0);
    unsigned lane = (unsigned)(ev.pid - PID0) / MAX_S;
    unsigned i = (unsigned)(ev.pid - PID0) % MAX_S;
    ck_assert_uint_lt(lane, nlanes);
    ck_assert_uint_lt(i, streams);
    unsigned *k = &next[lane * MAX_S + i];
    ck_assert_uint_lt(*k, n);
    ck_assert_int_eq(ev.ts_ns, (int64_t)TS(*k)); /* in order, none twice */
    (*k)++;
    calls++;
  }
  ck_assert_msg(rc == 0, "%s", tr_trace_error(t));
  ck_assert(!tr_trace_cut_short(t));
  ck_assert_uint_eq(tr_trace_skipped(t), 0);
  ck_assert_uint_eq(calls, (uint64_t)nlanes * streams * n);
  tr_trace_close(t);
}

/* The whole of a gzip file inflates as exactly one member. */
static void check_one_gzip_member(int fd) {
  off_t end = lseek(fd, 0, SEEK_END);
  uint8_t *in = malloc((size_t)end);
  ck_assert_ptr_nonnull(in);
  ck_assert_int_eq(pread(fd, in, (size_t)end, 0), end);
  z_stream zs;
  memset(&zs, 0, sizeof(zs));
  ck_assert_int_eq(inflateInit2(&zs, 15 + 16), Z_OK);
  zs.next_in = in;
  zs.avail_in = (uInt)end;
  static uint8_t out[64 * 1024];
  int rc;
  do {
    zs.next_out = out;
    zs.avail_out = sizeof(out);
    rc = inflate(&zs, Z_NO_FLUSH);
  } while (rc == Z_OK);
  ck_assert_int_eq(rc, Z_STREAM_END); /* CRC and length checked */
  ck_assert_uint_eq(zs.avail_in, 0);  /* nothing after the member */
  inflateEnd(&zs);
  free(in);
}

static atomic_int notified;

/* On the I/O thread, once it is done.  Relaxed: the test reads the count
 * after tr_writer_free, whose join of that thread orders it. */
static void on_done(void *arg) {
  (void)arg;
  atomic_fetch_add_explicit(&notified, 1, memory_order_relaxed);
}

START_TEST(test_sink_lanes_from_threads) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  const unsigned nlanes = 4, streams = 2;
  /* Several buffers' worth per lane (Perfetto's events are smaller). */
  const unsigned n = f == TR_FORMAT_PERFETTO ? 12000 : 4000;
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", nlanes), 0);
  atomic_store_explicit(&notified, 0, memory_order_relaxed);
  tr_writer_set_notify(w, on_done, NULL);
  ck_assert_int_eq(run_lanes(w, nlanes, streams, n), 0);
  uint64_t events, dropped, bytes;
  tr_writer_stats(w, &events, &dropped, &bytes);
  ck_assert_uint_eq(events, (uint64_t)nlanes * streams * n);
  ck_assert_uint_eq(dropped, 0);
  ck_assert_uint_eq(bytes, (uint64_t)lseek(fd, 0, SEEK_END));
  ck_assert_uint_eq(tr_writer_backlog(w), 0);
  ck_assert_uint_gt(w->sink.next_seq, 2 * nlanes); /* several chunks each */
  check_trace(fd, f, nlanes, streams, n);
  if (f == TR_FORMAT_JSON_GZ) check_one_gzip_member(fd);
  tr_writer_free(w);
  ck_assert_int_eq(atomic_load_explicit(&notified, memory_order_relaxed), 1);
  close(fd);
}
END_TEST

/* One lane used from one thread, as the single-threaded daemon does,
 * gives the same events in every format as several lanes do. */
START_TEST(test_sink_one_lane) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", 1), 0);
  ck_assert_int_eq(run_lanes(w, 1, 3, 5000), 0);
  check_trace(fd, f, 1, 3, 5000);
  if (f == TR_FORMAT_JSON_GZ) check_one_gzip_member(fd);
  tr_writer_free(w);
  close(fd);
}
END_TEST

/* ---- write errors -------------------------------------------------------- */

/* Bytes each format writes before its file fails: several chunks in. */
static size_t fail_after(tr_format f) {
  return f == TR_FORMAT_JSON_GZ ? 16 * 1024 : 1024 * 1024;
}

typedef struct pipe_reader {
  int fd;
  size_t limit;
  size_t got;
} pipe_reader;

/* Reads `limit` bytes, then closes its end: the writer's next write(2)
 * fails with EPIPE. */
static void *reader_main(void *arg) {
  pipe_reader *r = arg;
  static char buf[64 * 1024];
  while (r->got < r->limit) {
    size_t want =
        r->limit - r->got < sizeof(buf) ? r->limit - r->got : sizeof(buf);
    ssize_t k = read(r->fd, buf, want);
    if (k <= 0) break;
    r->got += (size_t)k;
  }
  close(r->fd);
  return NULL;
}

/* Every event written or dropped, some of each; the writer's error. */
static void check_failed(tr_writer *w, int rc, int want, uint64_t emitted) {
  ck_assert_int_eq(rc, want);
  uint64_t events, dropped;
  tr_writer_stats(w, &events, &dropped, NULL);
  ck_assert_uint_eq(events + dropped, emitted);
  ck_assert_uint_gt(events, 0);
  ck_assert_uint_gt(dropped, 0);
  ck_assert_uint_eq(tr_writer_backlog(w), 0);
}

START_TEST(test_sink_pipe_closed_mid_way) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  pipe_reader r = {.fd = p[0], .limit = fail_after(f)};
  pthread_t reader;
  ck_assert_int_eq(pthread_create(&reader, NULL, reader_main, &r), 0);
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, p[1], f, "test", 3), 0);
  const unsigned n = 30000;
  int rc = run_lanes(w, 3, 1, n);
  /* SIGPIPE stays blocked on the I/O thread: the write fails instead. */
  check_failed(w, rc, -EPIPE, 3ull * n);
  ck_assert_int_eq(pthread_join(reader, NULL), 0);
  ck_assert_uint_eq(r.got, r.limit);
  tr_writer_free(w);
  close(p[1]);
}
END_TEST

/* A full disk, as far as the writer can tell: the file may not grow past
 * RLIMIT_FSIZE, so a write(2) fails with EFBIG (SIGXFSZ stays blocked on
 * the I/O thread: it would otherwise end the process). */
START_TEST(test_sink_file_limit_mid_way) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  struct rlimit lim = {fail_after(f), fail_after(f)};
  ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", 2), 0);
  const unsigned n = 30000;
  int rc = run_lanes(w, 2, 2, n);
  check_failed(w, rc, -EFBIG, 2ull * 2 * n);
  uint64_t bytes;
  tr_writer_stats(w, NULL, NULL, &bytes);
  ck_assert_uint_le(bytes, fail_after(f));
  tr_writer_free(w);
  close(fd);
}
END_TEST

/* ---- order --------------------------------------------------------------
 * Lane 0 seals the chunk numbered 0 and is held inside its seal hook (as
 * if compressing it slowly) while lane 1 seals chunks 1 and 2: the I/O
 * thread must write nothing but the head until chunk 0 is ready, then all
 * three in order. */

static const tr_writer_ops *real_ops;
static tr_writer_ops slow_ops;
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool sealing0, release0;

static int slow_seal(tr_writer *w, unsigned lane, tr_chunk *c) {
  if (c->seq == 0) {
    pthread_mutex_lock(&gate_mu);
    sealing0 = true;
    pthread_cond_broadcast(&gate_cv);
    while (!release0) pthread_cond_wait(&gate_cv, &gate_mu);
    pthread_mutex_unlock(&gate_mu);
  }
  return real_ops->seal != NULL ? real_ops->seal(w, lane, c) : 0;
}

typedef struct first_job {
  tr_writer *w;
  int err;
} first_job;

static void *first_main(void *arg) {
  first_job *j = arg;
  tr_wstream *s;
  j->err = tr_wstream_open(j->w, 0, PID0, resolve, NULL, &s);
  if (j->err < 0) return NULL;
  j->err = tr_wstream_enter(s, 1, TR_CAT_PYTHON, NAME_ID, TS(0));
  if (j->err == 0)
    j->err = tr_wstream_slice(s, 1, TR_CAT_PYTHON, NAME_ID, TS(0), 10, false,
                              NULL, 0);
  tr_wstream_close(s);
  tr_writer_lane_flush(j->w, 0, true); /* chunk 0: held in slow_seal */
  return NULL;
}

START_TEST(test_sink_chunk0_holds_back_later_chunks) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", 2), 0);
  ck_assert_int_eq(tr_writer_wait(w), 0); /* the head is written */
  uint64_t head;
  tr_writer_stats(w, NULL, NULL, &head);
  ck_assert_uint_gt(head, 0);
  real_ops = w->ops;
  slow_ops = *w->ops;
  slow_ops.seal = slow_seal;
  w->ops = &slow_ops;
  sealing0 = release0 = false;

  first_job j = {.w = w};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, first_main, &j), 0);
  pthread_mutex_lock(&gate_mu);
  while (!sealing0) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);

  /* This thread is lane 1's: chunks 1 and 2, each of one call. */
  tr_wstream *s;
  ck_assert_int_eq(tr_wstream_open(w, 1, PID0 + MAX_S, resolve, NULL, &s), 0);
  for (unsigned k = 0; k < 2; k++) {
    ck_assert_int_eq(tr_wstream_enter(s, 2, TR_CAT_PYTHON, NAME_ID, TS(k)), 0);
    ck_assert_int_eq(tr_wstream_slice(s, 2, TR_CAT_PYTHON, NAME_ID, TS(k), 10,
                                      false, NULL, 0),
                     0);
    tr_writer_lane_flush(w, 1, true);
  }
  tr_wstream_close(s);
  tr_writer_lane_flush(w, 1, true);
  /* However long the I/O thread has, it writes nothing past the head. */
  struct timespec nap = {0, 50 * 1000 * 1000};
  nanosleep(&nap, NULL);
  uint64_t bytes;
  tr_writer_stats(w, NULL, NULL, &bytes);
  ck_assert_uint_eq(bytes, head);
  ck_assert_uint_gt(tr_writer_backlog(w), 0);

  pthread_mutex_lock(&gate_mu);
  release0 = true;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_int_eq(j.err, 0);
  tr_writer_close(w);
  ck_assert_int_eq(tr_writer_wait(w), 0);

  /* Lane 0's call first (chunk 0 lost its separator, so the file reads),
   * then lane 1's in order. */
  char path[64], err[256] = "";
  snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
  tr_trace *t;
  ck_assert_msg(tr_trace_open_path(&t, path, err, sizeof(err)) == 0, "%s", err);
  int want = f == TR_FORMAT_PERFETTO ? TR_EV_BEGIN : TR_EV_COMPLETE;
  const int64_t order[][2] = {
      {PID0, TS(0)}, {PID0 + MAX_S, TS(0)}, {PID0 + MAX_S, TS(1)}};
  unsigned got = 0;
  tr_trace_event ev;
  int rc;
  while ((rc = tr_trace_next(t, &ev)) == 1) {
    if (ev.kind != want) continue;
    ck_assert_uint_lt(got, 3);
    ck_assert_int_eq(ev.pid, order[got][0]);
    ck_assert_int_eq(ev.ts_ns, order[got][1]);
    got++;
  }
  ck_assert_msg(rc == 0, "%s", tr_trace_error(t));
  ck_assert(!tr_trace_cut_short(t));
  ck_assert_uint_eq(got, 3);
  tr_trace_close(t);
  if (f == TR_FORMAT_JSON_GZ) check_one_gzip_member(fd);
  tr_writer_free(w);
  close(fd);
}
END_TEST

/* A full buffer sealed in the middle of a pass waits for a few more
 * before the I/O thread is woken; the end of the pass wakes it even when
 * it seals nothing itself (a gzip lane keeps its young, small rest). */
START_TEST(test_sink_pass_end_writes_full_chunks) {
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, TR_FORMAT_JSON_GZ, "test", 1), 0);
  ck_assert_int_eq(tr_writer_wait(w), 0); /* the head is written */
  uint64_t head, bytes;
  tr_writer_stats(w, NULL, NULL, &head);
  tr_wstream *s;
  ck_assert_int_eq(tr_wstream_open(w, 0, PID0, resolve, NULL, &s), 0);
  unsigned k = 0;
  while (w->sink.next_seq < 1 || w->lanes[0].c->len == 0) {
    ck_assert_int_eq(tr_wstream_slice(s, 1, TR_CAT_PYTHON, NAME_ID, TS(k), 10,
                                      false, NULL, 0),
                     0);
    k++;
  }
  ck_assert_uint_lt(w->lanes[0].c->len, TR_GZ_CHUNK_MIN);
  tr_writer_lane_flush(w, 0, false);
  ck_assert_uint_gt(w->lanes[0].c->len, 0); /* kept: small and young */
  /* No tr_writer_wait here: it would wake the I/O thread itself. */
  for (int i = 0; i < 2000; i++) {
    tr_writer_stats(w, NULL, NULL, &bytes);
    if (bytes > head) break;
    struct timespec ms = {0, 1000 * 1000};
    nanosleep(&ms, NULL);
  }
  ck_assert_uint_gt(bytes, head);
  tr_wstream_close(s);
  tr_writer_lane_flush(w, 0, true);
  tr_writer_close(w);
  ck_assert_int_eq(tr_writer_wait(w), 0);
  check_trace(fd, TR_FORMAT_JSON_GZ, 1, 1, k);
  tr_writer_free(w);
  close(fd);
}
END_TEST

/* A writer freed without being closed (its owner failed part way) stops
 * its I/O thread and discards what was queued. */
START_TEST(test_sink_free_without_close) {
  tr_format f;
  ck_assert_int_eq(tr_format_parse(formats[_i], strlen(formats[_i]), &f), 0);
  int fd = out_fd();
  tr_writer *w;
  ck_assert_int_eq(tr_writer_open(&w, fd, f, "test", 2), 0);
  tr_wstream *s;
  ck_assert_int_eq(tr_wstream_open(w, 1, PID0, resolve, NULL, &s), 0);
  ck_assert_int_eq(tr_wstream_enter(s, 1, TR_CAT_PYTHON, NAME_ID, TS(0)), 0);
  ck_assert_int_eq(
      tr_wstream_slice(s, 1, TR_CAT_PYTHON, NAME_ID, TS(0), 10, false, NULL, 0),
      0);
  tr_wstream_close(s);
  tr_writer_lane_flush(w, 1, true);
  ck_assert(!tr_writer_done(w, NULL));
  tr_writer_free(w);
  close(fd);
}
END_TEST

/* A chunk given back when its writer is done is kept for the next
 * writer of the same chunk size (its pages are already there), and never
 * handed to a writer of larger chunks. */
START_TEST(test_sink_chunks_pooled_across_writers) {
  tr_sink a, b, c; /* zeroed, as a writer's are (calloc) */
  memset(&a, 0, sizeof(a));
  memset(&b, 0, sizeof(b));
  memset(&c, 0, sizeof(c));
  ck_assert_int_eq(tr_sink_init(&a, -1, 4096, 2), 0);
  ck_assert_int_eq(tr_sink_init(&b, -1, 4096, 2), 0);
  ck_assert_int_eq(tr_sink_init(&c, -1, 8192, 2), 0);
  tr_chunk *x = tr_sink_chunk(&a);
  ck_assert_ptr_nonnull(x);
  x->len = 100;
  tr_chunk_free(x);
  tr_chunk *y = tr_sink_chunk(&b);
  ck_assert_ptr_eq(y, x);
  ck_assert_uint_eq(y->len, 0); /* emptied for its new writer */
  tr_chunk_free(y);
  tr_chunk *z = tr_sink_chunk(&c);
  ck_assert_ptr_nonnull(z);
  ck_assert_ptr_ne(z, y);
  ck_assert_uint_eq(z->size, 8192);
  memset(z->buf, 0, 8192); /* the whole buffer is there */
  tr_chunk_free(z);
  tr_sink_fini(&a);
  tr_sink_fini(&b);
  tr_sink_fini(&c);
}
END_TEST

static Suite *sink_suite(void) {
  Suite *s = suite_create("sink");
  TCase *core = tcase_create("core");
  tcase_set_timeout(core, 120); /* generous for sanitizer builds */
  tcase_add_loop_test(core, test_sink_lanes_from_threads, 0, 3);
  tcase_add_loop_test(core, test_sink_one_lane, 0, 3);
  tcase_add_loop_test(core, test_sink_chunk0_holds_back_later_chunks, 0, 3);
  tcase_add_loop_test(core, test_sink_free_without_close, 0, 3);
  tcase_add_test(core, test_sink_pass_end_writes_full_chunks);
  tcase_add_test(core, test_sink_chunks_pooled_across_writers);
  suite_add_tcase(s, core);
  TCase *errors = tcase_create("errors");
  tcase_set_timeout(errors, 120);
  tcase_add_loop_test(errors, test_sink_pipe_closed_mid_way, 0, 3);
  tcase_add_loop_test(errors, test_sink_file_limit_mid_way, 0, 3);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(sink_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

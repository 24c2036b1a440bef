/* check_proc.c: unit tests of record decoding and enter/exit pairing
 * (daemon/proc.c) over in-memory rings and arenas, checked against the
 * exact JSON written. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "daemon/proc.h"
#include "daemon/ringread.h"
#include "libclient/src/argbuf.h"
#include "output/formats.h"
#include "output/writer.h"
#include "output/writer_json.h"
#include "proto/traced_proto.h"

typedef struct fixture {
  void *arena_mem;
  uint8_t *arena_data;
  tr_arena_hdr *arena_hdr;
  void *ring_mem;
  tr_ring_hdr *ring_hdr;
  tr_record *slots;
  uint64_t head;
  tr_proc proc;
  tr_writer *out;
  int fd;
} fixture;

static fixture F;

static uint32_t intern(const char *s) {
  uint32_t off = atomic_load(&F.arena_hdr->committed);
  uint32_t len = (uint32_t)strlen(s);
  memcpy(F.arena_data + off, &len, 4);
  memcpy(F.arena_data + off + 4, s, len);
  atomic_store(&F.arena_hdr->committed, off + ((4 + len + 3) & ~3u));
  return off;
}

static void put(uint64_t ts, uint32_t id, uint16_t kind) {
  tr_record *r = &F.slots[F.head & 1023];
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = 0;
  F.head++;
  atomic_store(&F.ring_hdr->head, F.head);
}

/* An ARGS record carrying b's payload (it may wrap around the ring). */
static void put_args(uint64_t ts, const tr_argbuf *b) {
  uint32_t slots = (b->len + 15) / 16;
  tr_record *r = &F.slots[F.head & 1023];
  r->ts = ts;
  r->id = b->len;
  r->kind = TR_REC_ARGS;
  r->extra = (uint16_t)slots;
  for (uint32_t i = 0; i < slots; i++) {
    tr_record *s = &F.slots[(F.head + 1 + i) & 1023];
    memset(s, 0, sizeof(*s));
    uint32_t k = b->len - i * 16 < 16 ? b->len - i * 16 : 16;
    memcpy(s, b->data + i * 16, k);
  }
  F.head += 1 + slots;
  atomic_store(&F.ring_hdr->head, F.head);
}

static void put_counter(uint64_t ts, uint32_t id, double v) {
  tr_record *r = &F.slots[F.head & 1023];
  r->ts = ts;
  r->id = id;
  r->kind = TR_REC_COUNTER;
  r->extra = 1;
  tr_record *s = &F.slots[(F.head + 1) & 1023];
  memset(s, 0, sizeof(*s));
  memcpy(s, &v, sizeof(v));
  F.head += 2;
  atomic_store(&F.ring_hdr->head, F.head);
}

static void setup(void) {
  memset(&F, 0, sizeof(F));
  size_t asize = TR_SHM_HEADER_SIZE + TR_ARENA_MIN_SIZE;
  F.arena_mem = aligned_alloc(4096, asize);
  memset(F.arena_mem, 0, asize);
  F.arena_hdr = F.arena_mem;
  F.arena_hdr->magic = TR_ARENA_MAGIC;
  F.arena_hdr->version = TR_PROTO_VERSION;
  F.arena_hdr->header_size = TR_SHM_HEADER_SIZE;
  F.arena_hdr->capacity = TR_ARENA_MIN_SIZE;
  F.arena_data = (uint8_t *)F.arena_mem + TR_SHM_HEADER_SIZE;
  intern("<unknown>");

  size_t rsize = TR_SHM_HEADER_SIZE + 1024 * sizeof(tr_record);
  F.ring_mem = aligned_alloc(4096, rsize);
  memset(F.ring_mem, 0, rsize);
  F.ring_hdr = F.ring_mem;
  F.ring_hdr->magic = TR_RING_MAGIC;
  F.ring_hdr->version = TR_PROTO_VERSION;
  F.ring_hdr->header_size = TR_SHM_HEADER_SIZE;
  F.ring_hdr->capacity = 1024;
  F.ring_hdr->tid = 11;
  F.slots = (tr_record *)((uint8_t *)F.ring_mem + TR_SHM_HEADER_SIZE);

  tr_proc_init(&F.proc, 10, 1000, 1000);
  F.proc.producer = true;
  tr_arenaview a;
  ck_assert_int_eq(tr_arena_attach(&a, F.arena_mem, asize, TR_ARENA_MIN_SIZE),
                   0);
  tr_proc_set_arena(&F.proc, &a);
  tr_proc_set_name(&F.proc, "proc", 4);
  tr_ringview v;
  ck_assert_int_eq(tr_ringview_attach(&v, F.ring_mem, rsize, 1024), 0);
  ck_assert_int_eq(tr_proc_add_thread(&F.proc, &v, "main", 4), 0);

  F.fd = memfd_create("check_proc", MFD_CLOEXEC);
  ck_assert_int_ge(F.fd, 0);
  ck_assert_int_eq(tr_writer_open(&F.out, F.fd, TR_FORMAT_JSON, "test", 1), 0);
}

/* What a session's end does to its writer: lane 0 flushed with force,
 * the writer closed and waited for. */
static void finish(tr_writer *w) {
  tr_writer_lane_flush(w, 0, true);
  tr_writer_close(w);
  ck_assert_int_eq(tr_writer_wait(w), 0);
}

static void teardown(void) {
  tr_proc_fini(&F.proc);
  tr_writer_free(F.out);
  close(F.fd);
  free(F.arena_mem);
  free(F.ring_mem);
}

/* Detaches, finishes the file and returns its events without the
 * metadata lines (caller frees). */
static char *events(tr_proc_stats *st) {
  memset(st, 0, sizeof(*st));
  tr_proc_detach(&F.proc, st, NULL, 0);
  finish(F.out);
  off_t end = lseek(F.fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)end + 1);
  ck_assert_int_eq(pread(F.fd, buf, (size_t)end, 0), end);
  /* Keep only non-metadata lines, each without its trailing comma. */
  char *out = calloc(1, (size_t)end + 1);
  for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "{\"ph\":\"M\"", 9) == 0 ||
        strncmp(line, "{\"ph\"", 5) != 0)
      continue;
    size_t n = strlen(line);
    if (line[n - 1] == ',') line[--n] = '\0';
    strcat(out, line);
    strcat(out, "\n");
  }
  free(buf);
  return out;
}

#define X(cat, name, ts, dur)                          \
  "{\"ph\":\"X\",\"cat\":\"" cat "\",\"name\":\"" name \
  "\",\"pid\":10,\"tid\":11,\"ts\":" ts ",\"dur\":" dur "}\n"
#define XU(cat, name, ts, dur)                          \
  "{\"ph\":\"X\",\"cat\":\"" cat "\",\"name\":\"" name  \
  "\",\"pid\":10,\"tid\":11,\"ts\":" ts ",\"dur\":" dur \
  ",\"args\":{\"unfinished\":true}}\n"

START_TEST(test_proc_pairs_nested_calls) {
  uint32_t f = intern("f"), g = intern("g"), len = intern("builtins.len");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, g, TR_REC_PY_CALL);
  put(2000, f, TR_REC_PY_CALL);
  put(2500, len, TR_REC_C_CALL);
  put(2600, len, TR_REC_C_RETURN);
  put(3000, f, TR_REC_PY_RETURN);
  put(9000, g, TR_REC_PY_RETURN);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev, X("c", "builtins.len", "2.500", "0.100")
                           X("python", "f", "2.000", "1.000")
                               X("python", "g", "1.000", "8.000"));
  ck_assert_uint_eq(st.unmatched, 0);
  ck_assert_uint_eq(st.threads, 1);
  free(ev);
}
END_TEST

START_TEST(test_proc_mismatch_closes_inner_unfinished) {
  uint32_t f = intern("f"), g = intern("g"), h = intern("h");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, g, TR_REC_PY_CALL);
  put(2000, f, TR_REC_PY_CALL);
  put(3000, h, TR_REC_PY_CALL);
  put(5000, g, TR_REC_PY_RETURN); /* f and h never returned */
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev, XU("python", "h", "3.000", "2.000")
                           XU("python", "f", "2.000", "3.000")
                               X("python", "g", "1.000", "4.000"));
  ck_assert_uint_eq(st.unmatched, 0);
  free(ev);
}
END_TEST

START_TEST(test_proc_unmatched_exit_ignored) {
  uint32_t f = intern("f"), g = intern("g");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, f, TR_REC_PY_RETURN); /* nothing open */
  put(2000, g, TR_REC_PY_CALL);
  put(3000, f, TR_REC_PY_RETURN); /* g open, f never entered */
  put(4000, g, TR_REC_PY_RETURN);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev, X("python", "g", "2.000", "2.000"));
  ck_assert_uint_eq(st.unmatched, 2);
  free(ev);
}
END_TEST

START_TEST(test_proc_open_calls_unfinished_at_detach) {
  uint32_t f = intern("f"), g = intern("g"), s = intern("span");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, g, TR_REC_PY_CALL);
  put(2000, s, TR_REC_BEGIN);
  put(2500, f, TR_REC_PY_CALL);
  put(2600, f, TR_REC_PY_RETURN);
  put(7000, s, TR_REC_INSTANT); /* last timestamp seen */
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(
      ev,
      X("python", "f", "2.500", "0.100")
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"span\",\"pid\":10,"
      "\"tid\":11,\"ts\":7.000}\n"
      XU("api", "span", "2.000", "5.000") XU("python", "g", "1.000", "6.000"));
  free(ev);
}
END_TEST

START_TEST(test_proc_closed_ring_is_finished_and_freed) {
  uint32_t g = intern("g");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, g, TR_REC_PY_CALL);
  put(1500, g, TR_REC_INSTANT);
  atomic_store(&F.ring_hdr->closed, 1);
  atomic_store(&F.ring_hdr->dropped, 3);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  ck_assert_uint_eq(F.proc.nthreads, 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_ptr_nonnull(strstr(ev, XU("python", "g", "1.000", "0.500")));
  ck_assert_uint_eq(st.dropped, 3);
  free(ev);
}
END_TEST

START_TEST(test_proc_bad_ids_and_late_records) {
  uint32_t g = intern("g");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 500, NULL, 0),
                   0);
  put(100, g, TR_REC_PY_CALL);      /* late */
  put(1000, 2, TR_REC_INSTANT);     /* misaligned id */
  put(1000, 60000, TR_REC_INSTANT); /* beyond committed */
  put(1000, g, TR_REC_COUNTER);     /* counter without its payload */
  put(2000, g, 99);                 /* unknown kind: skipped */
  put(3000, 12345, TR_REC_LOST);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_ptr_nonnull(strstr(ev, "\"args\":{\"count\":12345}"));
  ck_assert_uint_eq(st.late, 1);
  ck_assert_uint_eq(st.malformed, 3);
  ck_assert_uint_eq(st.lost, 12345);
  free(ev);
}
END_TEST

START_TEST(test_proc_detached_discards) {
  uint32_t g = intern("g");
  put(1000, g, TR_REC_PY_CALL); /* recorded while no session is attached */
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  ck_assert_uint_eq(atomic_load(&F.ring_hdr->tail), 1);
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(2000, g, TR_REC_PY_RETURN); /* its exit: nothing open here */
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev, "");
  ck_assert_uint_eq(st.unmatched, 1);
  free(ev);
}
END_TEST

START_TEST(test_proc_broken_ring_fails) {
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  atomic_store(&F.ring_hdr->head, 5000);
  ck_assert_int_eq(tr_proc_drain(&F.proc), -EPROTO);
  ck_assert(F.proc.failed);
  ck_assert_uint_eq(F.proc.failed_tid, 11);
  tr_proc_stats st;
  free(events(&st));
}
END_TEST

START_TEST(test_proc_arguments) {
  uint32_t f = intern("f"), g = intern("g"), i = intern("i"), c = intern("c"),
           h = intern("h");
  tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0);
  /* The ring wraps inside the records below. */
  F.head = 1020;
  atomic_store(&F.ring_hdr->head, F.head);
  atomic_store(&F.ring_hdr->tail, F.head);
  F.proc.threads[0]->ring.tail = F.head;
  tr_argbuf b;
  tr_argbuf_init(&b);
  tr_argbuf_add_str(&b, "a", 1, "'x\"'", 4, 100);
  tr_argbuf_add_str(&b, "long", 4, "0123456789abcdefghijk", 21, 20);
  put_args(1000, &b);
  put(1000, g, TR_REC_PY_CALL);
  put(1500, f, TR_REC_PY_CALL); /* no arguments */
  tr_argbuf_init(&b);
  tr_argbuf_add_str(&b, "return_value", 12, "None", 4, 100);
  put_args(1600, &b);
  put(1600, f, TR_REC_PY_RETURN);
  tr_argbuf_init(&b);
  tr_argbuf_add_i64(&b, "n", 1, -3);
  tr_argbuf_add_bool(&b, "ok", 2, true);
  put_args(1700, &b);
  put(1700, i, TR_REC_INSTANT);
  tr_argbuf_init(&b);
  tr_argbuf_add_i64(&b, "depth", 5, 3);
  tr_argbuf_add_double(&b, "bytes", 5, 1.5);
  put_args(1800, &b);
  put_counter(1800, c, 3);
  tr_argbuf_init(&b);
  tr_argbuf_add_str(&b, "return_value", 12, "3", 1, 100);
  put_args(2000, &b);
  put(2000, g, TR_REC_PY_RETURN);
  /* An open call's arguments stay with it until it is closed. */
  tr_argbuf_init(&b);
  tr_argbuf_add_u64(&b, "u", 1, 7);
  put_args(3000, &b);
  put(3000, h, TR_REC_PY_CALL);
  put(4000, h, TR_REC_INSTANT);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(
      ev,
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":10,"
      "\"tid\":11,\"ts\":1.500,\"dur\":0.100,"
      "\"args\":{\"return_value\":\"None\"}}\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"i\",\"pid\":10,"
      "\"tid\":11,\"ts\":1.700,\"args\":{\"n\":-3,\"ok\":true}}\n"
      "{\"ph\":\"C\",\"cat\":\"api\",\"name\":\"c\",\"pid\":10,\"tid\":11,"
      "\"ts\":1.800,\"args\":{\"depth\":3,\"bytes\":1.5}}\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"g\",\"pid\":10,"
      "\"tid\":11,\"ts\":1.000,\"dur\":1.000,\"args\":{\"a\":\"'x\\\"'\","
      "\"long\":\"0123456789abcdefg\xe2\x80\xa6\",\"return_value\":\"3\"}}\n"
      "{\"ph\":\"i\",\"s\":\"t\",\"cat\":\"api\",\"name\":\"h\",\"pid\":10,"
      "\"tid\":11,\"ts\":4.000}\n"
      "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"h\",\"pid\":10,"
      "\"tid\":11,\"ts\":3.000,\"dur\":1.000,"
      "\"args\":{\"unfinished\":true,\"u\":7}}\n");
  ck_assert_uint_eq(st.malformed, 0);
  ck_assert_uint_eq(F.proc.threads[0]->arglen, 0);
  free(ev);
}
END_TEST

START_TEST(test_proc_malformed_arguments) {
  uint32_t f = intern("f"), t = intern("t");
  tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0);
  tr_argbuf b;
  tr_argbuf_init(&b);
  tr_argbuf_add_str(&b, "a", 1, "1", 1, 100);
  /* Length beyond its slots: malformed, the call is still written. */
  put_args(1000, &b);
  F.slots[(F.head - 2) & 1023].id = 17;
  put(1000, f, TR_REC_PY_CALL);
  put(1100, f, TR_REC_PY_RETURN);
  /* An unknown entry type. */
  b.data[0] = 9;
  put_args(2000, &b);
  put(2000, f, TR_REC_PY_CALL);
  put(2100, f, TR_REC_PY_RETURN);
  /* Arguments followed by a record that takes none are dropped, not
   * given to the next call. */
  b.data[0] = TR_ARGS_STR;
  put_args(3000, &b);
  put(3000, t, TR_REC_THREAD_NAME);
  put(3100, f, TR_REC_PY_CALL);
  put(3200, f, TR_REC_PY_RETURN);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev, X("python", "f", "1.000", "0.100")
                           X("python", "f", "2.000", "0.100")
                               X("python", "f", "3.100", "0.100"));
  ck_assert_uint_eq(st.malformed, 2);
  free(ev);
}
END_TEST

START_TEST(test_proc_min_duration) {
  uint32_t f = intern("f"), g = intern("g"), s = intern("s");
  tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0);
  F.proc.min_duration_ns = 1000;
  put(1000, g, TR_REC_PY_CALL);
  put(1100, f, TR_REC_PY_CALL);
  put(1200, f, TR_REC_PY_RETURN); /* 100 ns: not written */
  put(1300, s, TR_REC_BEGIN);
  put(1310, s, TR_REC_END); /* a span: always written */
  put(2000, f, TR_REC_C_CALL);
  put(3000, f, TR_REC_C_RETURN); /* exactly the minimum: written */
  put(4000, g, TR_REC_PY_RETURN);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev,
                   X("api", "s", "1.300", "0.010") X("c", "f", "2.000", "1.000")
                       X("python", "g", "1.000", "3.000"));
  ck_assert_uint_eq(st.filtered, 1);
  free(ev);
}
END_TEST

START_TEST(test_proc_thread_name_and_escaping) {
  uint32_t tn = intern("worker \"1\"");
  uint32_t bad = intern("bad\xff\n");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, tn, TR_REC_THREAD_NAME);
  put(2000, bad, TR_REC_INSTANT);
  put(2001, bad, TR_REC_INSTANT); /* from the name cache */
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  ck_assert_str_eq(F.proc.threads[0]->name, "worker \"1\"");
  tr_proc_stats st;
  memset(&st, 0, sizeof(st));
  tr_proc_detach(&F.proc, &st, NULL, 0);
  finish(F.out);
  off_t end = lseek(F.fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)end + 1);
  ck_assert_int_eq(pread(F.fd, buf, (size_t)end, 0), end);
  ck_assert_ptr_nonnull(strstr(buf,
                               "{\"ph\":\"M\",\"name\":\"thread_name\","
                               "\"pid\":10,\"tid\":11,\"args\":{\"name\":"
                               "\"worker \\\"1\\\"\",\"dropped\":0}}"));
  ck_assert_ptr_nonnull(strstr(buf,
                               "\"name\":\"bad\\ufffd\\n\",\"pid\":10,"
                               "\"tid\":11,\"ts\":2.001}"));
  free(buf);
}
END_TEST

static Suite *proc_suite(void) {
  Suite *s = suite_create("proc");
  TCase *pairing = tcase_create("pairing");
  tcase_add_checked_fixture(pairing, setup, teardown);
  tcase_add_test(pairing, test_proc_pairs_nested_calls);
  tcase_add_test(pairing, test_proc_mismatch_closes_inner_unfinished);
  tcase_add_test(pairing, test_proc_unmatched_exit_ignored);
  tcase_add_test(pairing, test_proc_open_calls_unfinished_at_detach);
  tcase_add_test(pairing, test_proc_closed_ring_is_finished_and_freed);
  tcase_add_test(pairing, test_proc_arguments);
  tcase_add_test(pairing, test_proc_min_duration);
  suite_add_tcase(s, pairing);
  TCase *errors = tcase_create("errors");
  tcase_add_checked_fixture(errors, setup, teardown);
  tcase_add_test(errors, test_proc_bad_ids_and_late_records);
  tcase_add_test(errors, test_proc_detached_discards);
  tcase_add_test(errors, test_proc_broken_ring_fails);
  tcase_add_test(errors, test_proc_thread_name_and_escaping);
  tcase_add_test(errors, test_proc_malformed_arguments);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(proc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

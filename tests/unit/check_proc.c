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

/* ---- drain edges ----------------------------------------------------------
 */

/* A budget that ends right after an ARGS record (or inside its payload
 * slots) still takes the record the arguments belong to: the call keeps
 * them. */
START_TEST(test_proc_budget_ending_after_args_keeps_them) {
  uint32_t f = intern("f");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  tr_argbuf b;
  tr_argbuf_init(&b);
  tr_argbuf_add_str(&b, "a", 1, "kept", 4, 100);
  uint64_t args_slots = 1 + (b.len + 15) / 16;
  /* Budget `args_slots`: it ends exactly after the ARGS record; budget 1:
   * inside it (a record is consumed whole). */
  uint64_t budgets[2] = {args_slots, 1};
  for (int k = 0; k < 2; k++) {
    uint64_t ts = 1000 + 1000 * (uint64_t)k;
    put_args(ts, &b);
    put(ts, f, TR_REC_PY_CALL);
    put(ts + 100, f, TR_REC_PY_RETURN);
    uint64_t used;
    bool more;
    ck_assert_int_eq(tr_proc_drain_some(&F.proc, budgets[k], &used, &more), 0);
    ck_assert_uint_eq(used, args_slots + 1);
    ck_assert(more);
    ck_assert_int_eq(tr_proc_drain_some(&F.proc, 100, &used, &more), 0);
    ck_assert_uint_eq(used, 1);
    ck_assert(!more);
  }
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_str_eq(ev,
                   "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":10,"
                   "\"tid\":11,\"ts\":1.000,\"dur\":0.100,"
                   "\"args\":{\"a\":\"kept\"}}\n"
                   "{\"ph\":\"X\",\"cat\":\"python\",\"name\":\"f\",\"pid\":10,"
                   "\"tid\":11,\"ts\":2.000,\"dur\":0.100,"
                   "\"args\":{\"a\":\"kept\"}}\n");
  ck_assert_uint_eq(st.malformed, 0);
  free(ev);
}
END_TEST

/* A ring of its own for tests with several threads (1024 slots). */
typedef struct xring {
  void *mem;
  tr_ring_hdr *hdr;
  tr_record *slots;
  uint64_t head;
} xring;

/* `dropped`: what the producer had dropped before registering it. */
static void xring_add(xring *x, uint32_t tid, uint64_t dropped) {
  size_t rsize = TR_SHM_HEADER_SIZE + 1024 * sizeof(tr_record);
  x->mem = aligned_alloc(4096, rsize);
  ck_assert_ptr_nonnull(x->mem);
  memset(x->mem, 0, rsize);
  x->hdr = x->mem;
  x->hdr->magic = TR_RING_MAGIC;
  x->hdr->version = TR_PROTO_VERSION;
  x->hdr->header_size = TR_SHM_HEADER_SIZE;
  x->hdr->capacity = 1024;
  x->hdr->tid = tid;
  x->hdr->dropped = dropped;
  x->slots = (tr_record *)((uint8_t *)x->mem + TR_SHM_HEADER_SIZE);
  x->head = 0;
  tr_ringview v;
  ck_assert_int_eq(tr_ringview_attach(&v, x->mem, rsize, 1024), 0);
  ck_assert_int_eq(tr_proc_add_thread(&F.proc, &v, "x", 1), 0);
}

static void xring_put(xring *x, uint64_t ts, uint32_t id, uint16_t kind) {
  tr_record *r = &x->slots[x->head & 1023];
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = 0;
  x->head++;
  atomic_store(&x->hdr->head, x->head);
}

static bool xring_empty(const xring *x) {
  return atomic_load(&x->hdr->tail) == x->head;
}

/* One thread's ring always holds more than a turn's budget; each other
 * ring that is empty gets a record before every turn.  Whatever the
 * order the rings are kept in, a record waits at most as many turns as
 * there are threads. */
START_TEST(test_proc_every_ring_drained_within_n_turns) {
  enum { kOthers = 4, kThreads = kOthers + 1, kTurns = 8 * kThreads };
  const uint64_t budget = 64;
  uint32_t e = intern("e");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  xring x[kOthers];
  int since[kOthers];
  for (int i = 0; i < kOthers; i++) {
    xring_add(&x[i], 12 + (uint32_t)i, 0);
    since[i] = -1;
  }
  uint64_t ts = 1000;
  for (int turn = 0; turn < kTurns; turn++) {
    /* The busy thread: more than the budget, always. */
    while (F.head - atomic_load(&F.ring_hdr->tail) < 2 * budget)
      put(ts++, e, TR_REC_INSTANT);
    for (int i = 0; i < kOthers; i++) {
      if (since[i] < 0) {
        xring_put(&x[i], ts++, e, TR_REC_INSTANT);
        since[i] = turn;
      }
    }
    uint64_t used;
    bool more;
    ck_assert_int_eq(tr_proc_drain_some(&F.proc, budget, &used, &more), 0);
    ck_assert(more);
    for (int i = 0; i < kOthers; i++) {
      if (xring_empty(&x[i])) {
        since[i] = -1;
      } else {
        ck_assert_msg(turn - since[i] + 1 < kThreads,
                      "thread %d waited %d turns (of %d threads) so far", i,
                      turn - since[i] + 1, kThreads);
      }
    }
  }
  tr_proc_stats st;
  free(events(&st));
  tr_proc_fini(&F.proc);
  tr_proc_init(&F.proc, 10, 1000, 1000); /* teardown's fini is a no-op */
  for (int i = 0; i < kOthers; i++) free(x[i].mem);
}
END_TEST

/* Sums the counts of the LOST events in a trace's lines. */
static uint64_t lost_in(const char *ev) {
  uint64_t n = 0;
  const char *key = "\"args\":{\"count\":";
  for (const char *p = strstr(ev, key); p != NULL; p = strstr(p + 1, key))
    n += strtoull(p + strlen(key), NULL, 10);
  return n;
}

/* The LOST events in the trace add up to the dropped count: the
 * producer's own markers, plus one for the drops no marker told of when
 * the thread's recording ends (its ring closed, or the process left). */
START_TEST(test_proc_lost_events_add_up_to_dropped) {
  uint32_t f = intern("f");
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  xring x;
  xring_add(&x, 12, 0);
  /* Thread 11 leaves with the process: 3 drops marked, 4 more not. */
  put(1000, f, TR_REC_PY_CALL);
  atomic_store(&F.ring_hdr->dropped, 3);
  put(1500, 3, TR_REC_LOST);
  atomic_store(&F.ring_hdr->dropped, 7);
  put(2000, f, TR_REC_PY_RETURN);
  /* Thread 12's ring closes: 2 drops marked, 5 more not. */
  atomic_store(&x.hdr->dropped, 2);
  xring_put(&x, 1200, 2, TR_REC_LOST);
  atomic_store(&x.hdr->dropped, 7);
  xring_put(&x, 1300, f, TR_REC_INSTANT);
  atomic_store(&x.hdr->closed, 1);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  ck_assert_uint_eq(F.proc.nthreads, 1);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_uint_eq(st.dropped, 14);
  ck_assert_uint_eq(lost_in(ev), st.dropped);
  ck_assert_ptr_nonnull(strstr(ev,
                               "\"tid\":11,\"ts\":2.000,"
                               "\"args\":{\"count\":4}}"));
  ck_assert_ptr_nonnull(strstr(ev,
                               "\"tid\":12,\"ts\":1.300,"
                               "\"args\":{\"count\":5}}"));
  free(ev);
  free(x.mem);
}
END_TEST

/* The producer's `dropped` counter only grows: a value below one the
 * daemon already counted is a lie and counts nothing (it must not wrap
 * around into an enormous count), and going back up to it does not count
 * the same drops again. */
START_TEST(test_proc_dropped_going_backwards_not_trusted) {
  uint32_t f = intern("f");
  tr_proc_stats st;
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, f, TR_REC_PY_CALL);
  put(2000, f, TR_REC_PY_RETURN);
  atomic_store(&F.ring_hdr->dropped, 5);
  ck_assert_int_eq(tr_proc_drain(&F.proc), 0);
  memset(&st, 0, sizeof(st));
  tr_proc_detach(&F.proc, &st, NULL, 0);
  ck_assert_uint_eq(st.dropped, 5);
  /* The next output: the counter goes backwards. */
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  atomic_store(&F.ring_hdr->dropped, 2);
  ck_assert_uint_eq(tr_proc_dropped_now(&F.proc), 0);
  memset(&st, 0, sizeof(st));
  tr_proc_detach(&F.proc, &st, NULL, 0);
  ck_assert_uint_eq(st.dropped, 0);
  /* And up again: only what passes the highest value counted is new. */
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  atomic_store(&F.ring_hdr->dropped, 7);
  ck_assert_uint_eq(tr_proc_dropped_now(&F.proc), 2);
  memset(&st, 0, sizeof(st));
  tr_proc_detach(&F.proc, &st, NULL, 0);
  ck_assert_uint_eq(st.dropped, 2);
}
END_TEST

/* The producer is enabled at the join and the worker attaches it a little
 * later: what it dropped in between (in a ring registered before or after
 * the join) belongs to the session and is counted. */
START_TEST(test_proc_drops_before_the_attach_count) {
  static int session_token; /* p->session only needs to be non-NULL */
  uint32_t f = intern("f");
  F.proc.session = (struct tr_session *)&session_token;
  atomic_store(&F.ring_hdr->dropped, 4); /* ring from before the join */
  xring x;
  xring_add(&x, 12, 3); /* and one registered since, after 3 drops */
  ck_assert_int_eq(tr_proc_attach(&F.proc, F.out, 0, NULL, NULL, 0, NULL, 0),
                   0);
  put(1000, f, TR_REC_PY_CALL);
  put(2000, f, TR_REC_PY_RETURN);
  ck_assert_uint_eq(tr_proc_dropped_now(&F.proc), 7);
  tr_proc_stats st;
  char *ev = events(&st);
  ck_assert_uint_eq(st.dropped, 7);
  ck_assert_uint_eq(lost_in(ev), 7);
  free(ev);
  F.proc.session = NULL;
  tr_proc_fini(&F.proc);
  tr_proc_init(&F.proc, 10, 1000, 1000);
  free(x.mem);
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
  tcase_add_test(errors, test_proc_dropped_going_backwards_not_trusted);
  suite_add_tcase(s, errors);
  TCase *drain = tcase_create("drain");
  tcase_add_checked_fixture(drain, setup, teardown);
  tcase_add_test(drain, test_proc_budget_ending_after_args_keeps_them);
  tcase_add_test(drain, test_proc_every_ring_drained_within_n_turns);
  tcase_add_test(drain, test_proc_lost_events_add_up_to_dropped);
  tcase_add_test(drain, test_proc_drops_before_the_attach_count);
  suite_add_tcase(s, drain);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(proc_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

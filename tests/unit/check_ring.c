/* check_ring.c: unit tests of the ring consumer (daemon/ringread.c) against
 * the real producer (libclient/src/producer.h + producer.c): wraparound,
 * full rings, hostile positions and records, a producer thread racing the
 * consumer, and string-arena lookups. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "daemon/ringread.h"
#include "libclient/src/options.h"
#include "libclient/src/producer.h"
#include "proto/traced_proto.h"

#define RACE_RECORDS 5000000u

/* ---- fixtures
 * ---------------------------------------------------------------- */

typedef struct ring_fixture {
  void *mem;
  size_t size;
  tr_ring_hdr *hdr;
  tr_ringview view;
  tr_producer prod;
  _Atomic uint64_t state;
} ring_fixture;

static void ring_setup(ring_fixture *f, uint32_t slots) {
  memset(f, 0, sizeof(*f));
  f->size = TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record);
  f->mem = aligned_alloc(4096, f->size);
  ck_assert_ptr_nonnull(f->mem);
  memset(f->mem, 0, f->size);
  f->hdr = f->mem;
  f->hdr->magic = TR_RING_MAGIC;
  f->hdr->version = TR_PROTO_VERSION;
  f->hdr->header_size = TR_SHM_HEADER_SIZE;
  f->hdr->capacity = slots;
  f->hdr->tid = 4242;
  ck_assert_int_eq(tr_ringview_attach(&f->view, f->mem, f->size, slots), 0);

  /* A producer built by hand over the same memory: enabled, with limit 0
   * so the first record goes through tr_producer_room(). */
  atomic_init(&f->state, TR_STATE_ENABLED);
  tr_producer *p = &f->prod;
  p->state = &f->state;
  p->last_state = TR_STATE_ENABLED;
  p->slots = (tr_record *)((uint8_t *)f->mem + TR_SHM_HEADER_SIZE);
  p->hdr = f->hdr;
  p->head = 0;
  p->limit = 0;
  p->mask = slots - 1;
  p->capacity = slots;
  p->tid = 4242;
  p->pid = getpid();
  p->map_size = f->size;
  /* What client.c fills at open, at its defaults; no `client`: the
   * doorbell does nothing (the test drains by itself). */
  p->max_extra = TR_RECORD_MAX_EXTRA_V1;
}

static void ring_teardown(ring_fixture *f) {
  tr_ringview_unmap(&f->view);
  free(f->prod.stack);
  free(f->mem);
}

/* Publishes a record by hand (no producer), for hostile layouts. */
static void raw_put(ring_fixture *f, uint64_t pos, uint64_t ts, uint32_t id,
                    uint16_t kind, uint16_t extra) {
  tr_record *slots = (tr_record *)((uint8_t *)f->mem + TR_SHM_HEADER_SIZE);
  tr_record *r = &slots[pos & (f->hdr->capacity - 1)];
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = extra;
}

static void raw_publish(ring_fixture *f, uint64_t head) {
  atomic_store_explicit(&f->hdr->head, head, memory_order_release);
}

/* A record of kind COUNTER with one extra slot carrying `v`. */
static bool put_counter(tr_producer *p, uint64_t ts, uint32_t id, double v) {
  tr_record *r = tr_producer_claim(p, 1);
  if (r == NULL) return false;
  r->ts = ts;
  r->id = id;
  r->kind = TR_REC_COUNTER;
  r->extra = 1;
  tr_record *x = &p->slots[(p->head + 1) & p->mask];
  memset(x, 0, sizeof(*x));
  memcpy(x, &v, sizeof(v));
  tr_producer_publish(p, 1);
  return true;
}

/* Collects what a drain delivers. */
typedef struct seen {
  uint64_t n;
  uint64_t next;     /* next expected id */
  uint64_t gaps;     /* ids skipped (dropped by the producer) */
  uint64_t lost;     /* sum of LOST records */
  uint64_t counters; /* COUNTER records whose value matched their id */
  bool bad;          /* out of order, duplicate, or a wrong value */
  uint64_t bad_id;
} seen;

static void on_rec(void *ctx, const tr_record *r, const tr_record *extra) {
  seen *s = ctx;
  if (r->kind == TR_REC_LOST) {
    s->lost += r->id;
    return;
  }
  if (r->id < s->next) {
    if (!s->bad) s->bad_id = r->id;
    s->bad = true;
  }
  s->gaps += r->id - s->next;
  s->next = (uint64_t)r->id + 1;
  s->n++;
  if (r->kind == TR_REC_COUNTER) {
    double v;
    memcpy(&v, &extra[0], sizeof(v));
    if (r->extra == 1 && v == (double)r->id)
      s->counters++;
    else
      s->bad = true;
  }
}

/* ---- core ------------------------------------------------------------------
 */

/* A drain with a budget consumes whole records (a COUNTER's extra slot is
 * never split from it), reports what is left, and the next drain goes on
 * where it stopped: nothing is lost or repeated. */
START_TEST(test_ring_drain_budget) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  seen s = {0};
  uint32_t id = 0;
  uint64_t slots = 0;
  for (; id < 300; id++) {
    if (id % 3 == 0) {
      ck_assert(put_counter(&f.prod, id + 1, id, (double)id));
      slots += 2;
    } else {
      ck_assert(tr_producer_put(&f.prod, id + 1, id, TR_REC_PY_CALL));
      slots += 1;
    }
  }
  uint64_t total = 0;
  int calls = 0;
  bool more = true;
  while (more) {
    int64_t n = tr_ringview_drain_max(&f.view, 0, on_rec, &s, NULL, 7, &more);
    ck_assert_int_ge(n, 7 <= (int64_t)(slots - total) ? 7 : 1);
    ck_assert_int_le(n, 8); /* a record may end one slot past the budget */
    total += (uint64_t)n;
    ck_assert_uint_eq(atomic_load(&f.hdr->tail), total);
    ck_assert(more == (total < slots));
    calls++;
  }
  ck_assert_uint_eq(total, slots);
  ck_assert(!s.bad);
  ck_assert_uint_eq(s.n, 300);
  ck_assert_uint_eq(s.counters, 100);
  ck_assert_int_ge(calls, (int)(slots / 8));
  /* Empty: nothing consumed, nothing left. */
  ck_assert_int_eq(
      tr_ringview_drain_max(&f.view, 0, on_rec, &s, NULL, 7, &more), 0);
  ck_assert(!more);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_wraparound) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  seen s = {0};
  uint32_t id = 0;
  uint64_t counters = 0;
  tr_drain_stats st = {0};
  for (int round = 0; round < 40; round++) {
    /* 600 slots a round, so positions cross the end of the ring often. */
    for (int i = 0; i < 500; i++, id++) {
      if (id % 5 == 0) {
        ck_assert(put_counter(&f.prod, id + 1, id, (double)id));
        counters++;
      } else {
        ck_assert(tr_producer_put(&f.prod, id + 1, id, TR_REC_PY_CALL));
      }
    }
    ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, &st), 0);
    ck_assert_uint_eq(atomic_load(&f.hdr->tail), f.prod.head);
  }
  ck_assert(!s.bad);
  ck_assert_uint_eq(s.n, id);
  ck_assert_uint_eq(s.gaps, 0);
  ck_assert_uint_eq(s.counters, counters);
  ck_assert_uint_eq(st.records, id);
  ck_assert_uint_eq(st.malformed, 0);
  ck_assert_uint_eq(atomic_load(&f.hdr->dropped), 0);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_extra_wraps_at_end) {
  /* A record in the last slot whose payload slot is data[0]. */
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  seen s = {0};
  uint32_t id = 0;
  while ((f.prod.head & f.prod.mask) != f.prod.mask) {
    ck_assert(tr_producer_put(&f.prod, 1, id++, TR_REC_INSTANT));
    if (f.prod.head % 256 == 0)
      ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  }
  ck_assert(put_counter(&f.prod, 1, id, (double)id));
  id++;
  ck_assert_uint_eq(f.prod.head & f.prod.mask, 1);
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  ck_assert(!s.bad);
  ck_assert_uint_eq(s.counters, 1);
  ck_assert_uint_eq(s.n, id);
  ring_teardown(&f);
}
END_TEST

/* Sets the full-ring policy for one test and says what it was. */
static void set_policy(bool drop, uint64_t wait_ms, uint64_t stall_ms) {
  atomic_store(&tr_full.drop, drop);
  atomic_store(&tr_full.wait_ns, wait_ms * 1000000u);
  atomic_store(&tr_full.stall_ns, stall_ms * 1000000u);
}

static double ms_since(const struct timespec *t0) {
  struct timespec t1;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
         (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Pushes `pushed` records into a ring nobody consumes; checks that the
 * producer waited once, for about `bound_ms`, then dropped and counted
 * without waiting again, and that the next record after room appears is
 * preceded by a LOST marker with the count. */
static void full_ring_drops(uint64_t bound_ms) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  const uint32_t pushed = 3000;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint32_t written = 0;
  for (uint32_t i = 0; i < pushed; i++)
    written += tr_producer_put(&f.prod, i + 1, i, TR_REC_INSTANT) ? 1 : 0;
  double ms = ms_since(&t0);
  ck_assert_uint_le(written, TR_RING_MIN_SLOTS);
  ck_assert_uint_ge(written, TR_RING_MIN_SLOTS - 1);
  ck_assert_uint_eq(atomic_load(&f.hdr->dropped), pushed - written);
  ck_assert_uint_eq(f.prod.dropped, pushed - written);
  /* One wait of the bound, not one per dropped event. */
  ck_assert_msg(ms >= (double)bound_ms, "waited only %.1f ms", ms);
  ck_assert_msg(ms < (double)bound_ms + 1000, "full ring stalled %.1f ms", ms);
  ck_assert_uint_eq(atomic_load(&f.hdr->waiting), 0);

  seen s = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  ck_assert_uint_eq(s.n, written);
  ck_assert(!s.bad);
  /* After room appears, the next record is preceded by a LOST marker. */
  ck_assert(tr_producer_put(&f.prod, pushed + 1, pushed, TR_REC_INSTANT));
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  ck_assert_uint_eq(s.lost, pushed - written);
  ck_assert_uint_eq(s.n, written + 1);
  ck_assert_uint_eq(s.gaps, pushed - written);
  ring_teardown(&f);
}

/* --on-full drop: at most --full-wait-ms, whatever the consumer does. */
START_TEST(test_ring_full_drop_mode_drops_and_counts) {
  set_policy(true, 20, 100000);
  full_ring_drops(20);
  set_policy(false, TR_FULL_WAIT_MS_DEFAULT, TR_STALL_DEFAULT_MS);
}
END_TEST

/* The default mode with a consumer that never comes: the stall bound. */
START_TEST(test_ring_full_stalled_consumer_drops_after_bound) {
  set_policy(false, 0, 150);
  full_ring_drops(150);
  set_policy(false, TR_FULL_WAIT_MS_DEFAULT, TR_STALL_DEFAULT_MS);
}
END_TEST

typedef struct slow_consumer {
  ring_fixture *f;
  seen s;
  _Atomic int stop;
  bool beat_only; /* keep the heartbeat fresh, consume nothing */
  _Atomic uint64_t beat;
} slow_consumer;

static void *slow_consume(void *arg) {
  slow_consumer *c = arg;
  while (!atomic_load(&c->stop)) {
    struct timespec ts = {0, 40 * 1000 * 1000};
    nanosleep(&ts, NULL);
    if (c->beat_only)
      atomic_fetch_add(&c->beat, 1);
    else
      ck_assert_int_eq(tr_ringview_drain(&c->f->view, 0, on_rec, &c->s, NULL),
                       0);
  }
  return NULL;
}

/* The default mode: a consumer slower than the stall bound between two
 * drains... but making progress each time: nothing is dropped. */
START_TEST(test_ring_full_waits_while_consumer_progresses) {
  set_policy(false, 0, 200);
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  slow_consumer c = {.f = &f};
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, slow_consume, &c), 0);
  const uint32_t pushed = 4 * TR_RING_MIN_SLOTS;
  for (uint32_t i = 0; i < pushed; i++)
    ck_assert(tr_producer_put(&f.prod, i + 1, i, TR_REC_INSTANT));
  atomic_store(&c.stop, 1);
  pthread_join(th, NULL);
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &c.s, NULL), 0);
  ck_assert_uint_eq(c.s.n, pushed);
  ck_assert_uint_eq(f.prod.dropped, 0);
  ring_teardown(&f);
  set_policy(false, TR_FULL_WAIT_MS_DEFAULT, TR_STALL_DEFAULT_MS);
}
END_TEST

typedef struct late_drainer {
  ring_fixture *f;
  seen s;
  _Atomic int stop;
} late_drainer;

/* Drains nothing for 350 ms, then every 5 ms until told to stop. */
static void *late_drain(void *arg) {
  late_drainer *d = arg;
  struct timespec first = {0, 350 * 1000 * 1000}, next = {0, 5 * 1000 * 1000};
  nanosleep(&first, NULL);
  while (!atomic_load(&d->stop)) {
    ck_assert_int_eq(tr_ringview_drain(&d->f->view, 0, on_rec, &d->s, NULL), 0);
    nanosleep(&next, NULL);
  }
  return NULL;
}

/* The default mode: a daemon busy elsewhere (its heartbeat changes, this
 * ring's tail does not) is waited for past the stall bound: the producer
 * fills the ring, then waits 350 ms (3.5 bounds) on the heartbeat alone
 * until the consumer comes, and drops nothing. */
START_TEST(test_ring_full_waits_while_heartbeat_changes) {
  set_policy(false, 0, 100);
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  slow_consumer beat = {.f = &f, .beat_only = true};
  late_drainer late = {.f = &f};
  f.prod.beat = &beat.beat;
  pthread_t bt, lt;
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq(pthread_create(&bt, NULL, slow_consume, &beat), 0);
  ck_assert_int_eq(pthread_create(&lt, NULL, late_drain, &late), 0);
  const uint32_t pushed = 2 * TR_RING_MIN_SLOTS;
  for (uint32_t i = 0; i < pushed; i++)
    ck_assert(tr_producer_put(&f.prod, i + 1, i, TR_REC_INSTANT));
  double ms = ms_since(&t0);
  atomic_store(&late.stop, 1);
  atomic_store(&beat.stop, 1);
  pthread_join(lt, NULL);
  pthread_join(bt, NULL);
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &late.s, NULL), 0);
  ck_assert_msg(ms >= 300, "the ring never filled: %.1f ms", ms);
  ck_assert_uint_eq(f.prod.dropped, 0);
  ck_assert_uint_eq(late.s.n, pushed);
  ring_teardown(&f);
  set_policy(false, TR_FULL_WAIT_MS_DEFAULT, TR_STALL_DEFAULT_MS);
}
END_TEST

/* ---- race ------------------------------------------------------------------
 */

typedef struct race {
  ring_fixture f;
  _Atomic int done;
  uint64_t emitted;
} race;

static void *race_producer(void *arg) {
  race *r = arg;
  tr_producer *p = &r->f.prod;
  for (uint32_t i = 0; i < RACE_RECORDS; i++) {
    if ((i & 15) == 7)
      put_counter(p, (uint64_t)i + 1, i, (double)i);
    else
      tr_producer_put(p, (uint64_t)i + 1, i, TR_REC_PY_CALL);
  }
  r->emitted = RACE_RECORDS;
  atomic_store_explicit(&r->done, 1, memory_order_release);
  return NULL;
}

START_TEST(test_ring_race_producer_consumer) {
  race *r = calloc(1, sizeof(*r));
  ck_assert_ptr_nonnull(r);
  ring_setup(&r->f, 1u << 14);
  pthread_t th;
  ck_assert_int_eq(pthread_create(&th, NULL, race_producer, r), 0);
  seen s = {0};
  tr_drain_stats st = {0};
  for (;;) {
    int done = atomic_load_explicit(&r->done, memory_order_acquire);
    ck_assert_int_eq(tr_ringview_drain(&r->f.view, 0, on_rec, &s, &st), 0);
    if (done) {
      /* One more pass after the producer finished: everything it
       * published before `done` is visible now. */
      ck_assert_int_eq(tr_ringview_drain(&r->f.view, 0, on_rec, &s, &st), 0);
      break;
    }
  }
  pthread_join(th, NULL);
  uint64_t dropped = atomic_load(&r->f.hdr->dropped);
  if (getenv("CHECK_RING_VERBOSE"))
    fprintf(stderr, "race: %llu seen, %llu dropped, %llu counters\n",
            (unsigned long long)s.n, (unsigned long long)dropped,
            (unsigned long long)s.counters);
  ck_assert_msg(!s.bad, "record %llu out of order",
                (unsigned long long)s.bad_id);
  /* Every record seen exactly once, in order; the rest counted dropped. */
  ck_assert_uint_eq(s.n + dropped, r->emitted);
  ck_assert_uint_eq(s.gaps + (RACE_RECORDS - s.next), dropped);
  ck_assert_uint_le(s.lost, dropped);
  ck_assert_uint_eq(st.malformed, 0);
  ck_assert_uint_eq(atomic_load(&r->f.hdr->tail), r->f.prod.head);
  ring_teardown(&r->f);
  free(r);
}
END_TEST

/* ---- hostile producers ------------------------------------------------------
 */

START_TEST(test_ring_head_beyond_capacity) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  raw_publish(&f, TR_RING_MIN_SLOTS + 1);
  seen s = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), -EPROTO);
  ck_assert_uint_eq(s.n, 0);
  ck_assert_uint_eq(atomic_load(&f.hdr->tail), 0);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_head_behind_tail) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  for (uint32_t i = 0; i < 10; i++) raw_put(&f, i, 1, i, TR_REC_INSTANT, 0);
  raw_publish(&f, 10);
  seen s = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  ck_assert_uint_eq(s.n, 10);
  raw_publish(&f, 5); /* head going backwards */
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), -EPROTO);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_tail_not_trusted) {
  /* The daemon keeps its own tail: scribbling on the shared one changes
   * nothing it reads. */
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  for (uint32_t i = 0; i < 4; i++) raw_put(&f, i, 1, i, TR_REC_INSTANT, 0);
  raw_publish(&f, 4);
  atomic_store(&f.hdr->tail, 1000000);
  seen s = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, NULL), 0);
  ck_assert_uint_eq(s.n, 4);
  ck_assert_uint_eq(atomic_load(&f.hdr->tail), 4);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_extra_too_large) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  raw_put(&f, 0, 1, 0, TR_REC_INSTANT, 0);
  raw_put(&f, 1, 1, 1, TR_REC_COUNTER, TR_RECORD_MAX_EXTRA + 1);
  for (uint32_t i = 2; i < 20; i++) raw_put(&f, i, 1, i, TR_REC_INSTANT, 0);
  raw_publish(&f, 20);
  seen s = {0};
  tr_drain_stats st = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, &st), 0);
  /* The first record is delivered; the rest of the batch is skipped to
   * resynchronise at head. */
  ck_assert_uint_eq(s.n, 1);
  ck_assert_uint_eq(st.malformed, 1);
  ck_assert_uint_eq(atomic_load(&f.hdr->tail), 20);
  /* Later records are read normally. */
  raw_put(&f, 20, 1, 20, TR_REC_INSTANT, 0);
  raw_publish(&f, 21);
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, &st), 0);
  ck_assert_uint_eq(s.n, 2);
  ring_teardown(&f);
}
END_TEST

/* Counts the resident pages of [addr, addr + len) (page-aligned). */
static size_t resident_pages(void *addr, size_t len) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE), n = len / page, r = 0;
  unsigned char *vec = malloc(n);
  ck_assert_ptr_nonnull(vec);
  ck_assert_int_eq(mincore(addr, len, vec), 0);
  for (size_t i = 0; i < n; i++) r += vec[i] & 1;
  free(vec);
  return r;
}

/* A producer that publishes records in pages it never wrote (shared
 * memory nobody touched) is refused before the daemon reads them: reading
 * would allocate those pages in the daemon.  Pages it did write drain as
 * usual, including where a batch wraps around the end of the ring. */
START_TEST(test_ring_pages_never_written_are_not_read) {
  const uint32_t slots = 16384; /* 256 KiB of slots */
  size_t size = TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record);
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(mem, MAP_FAILED);
  tr_ring_hdr *h = mem;
  h->magic = TR_RING_MAGIC;
  h->version = TR_PROTO_VERSION;
  h->header_size = TR_SHM_HEADER_SIZE;
  h->capacity = slots;
  h->tid = 4242;
  tr_record *data = (tr_record *)((uint8_t *)mem + TR_SHM_HEADER_SIZE);
  size_t data_len = (size_t)slots * sizeof(tr_record);
  tr_ringview v;
  ck_assert_int_eq(tr_ringview_attach(&v, mem, size, slots), 0);
  seen s = {0};
  tr_drain_stats st = {0};

  /* The whole ring claimed, nothing written. */
  atomic_store(&h->head, slots);
  ck_assert_int_eq(tr_ringview_drain(&v, 0, on_rec, &s, &st), -ENODATA);
  ck_assert_uint_eq(st.malformed, 1);
  ck_assert_uint_eq(s.n, 0);
  ck_assert_uint_eq(atomic_load(&h->tail), 0);
  ck_assert_uint_eq(resident_pages(data, data_len), 0);

  /* Written records (the first half) drain. */
  uint32_t half = slots / 2;
  for (uint32_t i = 0; i < half; i++) {
    data[i].ts = 1 + i;
    data[i].id = i;
    data[i].kind = TR_REC_INSTANT;
    data[i].extra = 0;
  }
  atomic_store(&h->head, half);
  ck_assert_int_eq(tr_ringview_drain(&v, 0, on_rec, &s, &st), 0);
  ck_assert_uint_eq(s.n, half);
  ck_assert(!s.bad);
  ck_assert_uint_eq(atomic_load(&h->tail), half);
  size_t written = resident_pages(data, data_len);

  /* A batch that wraps: [half, slots) never written, [0, half) written. */
  atomic_store(&h->head, half + slots);
  ck_assert_int_eq(tr_ringview_drain(&v, 0, on_rec, &s, &st), -ENODATA);
  ck_assert_uint_eq(st.malformed, 2);
  ck_assert_uint_eq(s.n, half);
  ck_assert_uint_eq(resident_pages(data, data_len), written);
  tr_ringview_unmap(&v);
  munmap(mem, size);
}
END_TEST

/* Collects the payload of ARGS records. */
typedef struct args_seen {
  int n;
  uint32_t len;
  uint8_t data[TR_ARGS_MAX_BYTES];
  uint16_t next_kind;
} args_seen;

static void on_args_rec(void *ctx, const tr_record *r, const tr_record *extra) {
  args_seen *s = ctx;
  if (r->kind == TR_REC_ARGS) {
    s->len = r->id;
    memcpy(s->data, extra, (size_t)r->extra * sizeof(tr_record));
  } else if (s->n == 1) {
    s->next_kind = r->kind;
  }
  s->n++;
}

START_TEST(test_ring_long_record_wraps) {
  /* A record with TR_RECORD_MAX_EXTRA payload slots, starting 10 slots
   * before the end of the ring: its payload arrives whole and in order. */
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  uint64_t start = TR_RING_MIN_SLOTS - 10;
  atomic_store(&f.hdr->tail, start);
  f.view.tail = start;
  tr_record *slots = (tr_record *)((uint8_t *)f.mem + TR_SHM_HEADER_SIZE);
  raw_put(&f, start, 5, TR_ARGS_MAX_BYTES, TR_REC_ARGS, TR_RECORD_MAX_EXTRA);
  for (uint32_t i = 0; i < TR_RECORD_MAX_EXTRA; i++) {
    uint8_t *s = (uint8_t *)&slots[(start + 1 + i) & (TR_RING_MIN_SLOTS - 1)];
    for (int k = 0; k < 16; k++) s[k] = (uint8_t)(i * 16 + (uint32_t)k);
  }
  uint64_t next = start + 1 + TR_RECORD_MAX_EXTRA;
  raw_put(&f, next, 5, 7, TR_REC_INSTANT, 0);
  raw_publish(&f, next + 1);
  static args_seen s;
  memset(&s, 0, sizeof(s));
  tr_drain_stats st = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_args_rec, &s, &st), 0);
  ck_assert_int_eq(s.n, 2);
  ck_assert_uint_eq(st.malformed, 0);
  ck_assert_uint_eq(s.len, TR_ARGS_MAX_BYTES);
  for (uint32_t b = 0; b < TR_ARGS_MAX_BYTES; b++)
    ck_assert_uint_eq(s.data[b], (uint8_t)b);
  ck_assert_uint_eq(s.next_kind, TR_REC_INSTANT);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_extra_beyond_head) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  raw_put(&f, 0, 1, 0, TR_REC_COUNTER, 2); /* claims 2 payload slots */
  raw_put(&f, 1, 0, 0, 0, 0);
  raw_publish(&f, 2); /* but only one follows */
  seen s = {0};
  tr_drain_stats st = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, on_rec, &s, &st), 0);
  ck_assert_uint_eq(s.n, 0);
  ck_assert_uint_eq(st.malformed, 1);
  ck_assert_uint_eq(atomic_load(&f.hdr->tail), 2);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_late_records_discarded) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  raw_put(&f, 0, 50, 0, TR_REC_INSTANT, 0);
  raw_put(&f, 1, 99, 1, TR_REC_COUNTER, 1); /* late, with a payload slot */
  raw_put(&f, 2, 0, 0, 0, 0);
  raw_put(&f, 3, 100, 3, TR_REC_INSTANT, 0);
  raw_put(&f, 4, 200, 4, TR_REC_INSTANT, 0);
  raw_publish(&f, 5);
  seen s = {0};
  s.next = 3;
  tr_drain_stats st = {0};
  ck_assert_int_eq(tr_ringview_drain(&f.view, 100, on_rec, &s, &st), 0);
  ck_assert_uint_eq(st.late, 2);
  ck_assert_uint_eq(st.records, 2);
  ck_assert_uint_eq(s.n, 2);
  ck_assert(!s.bad);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_bell_cleared_and_closed) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  atomic_store(&f.hdr->bell, 1);
  ck_assert(!tr_ringview_closed(&f.view));
  ck_assert_int_eq(tr_ringview_drain(&f.view, 0, NULL, NULL, NULL), 0);
  ck_assert_uint_eq(atomic_load(&f.hdr->bell), 0);
  atomic_store(&f.hdr->closed, 1);
  atomic_store(&f.hdr->dropped, 77);
  ck_assert(tr_ringview_closed(&f.view));
  ck_assert_uint_eq(tr_ringview_dropped(&f.view), 77);
  ring_teardown(&f);
}
END_TEST

START_TEST(test_ring_header_validation) {
  ring_fixture f;
  ring_setup(&f, TR_RING_MIN_SLOTS);
  tr_ringview v;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 2048), -EINVAL);
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size - 16, 1024), -EINVAL);
  f.hdr->capacity = 2048;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1024), -EINVAL);
  f.hdr->capacity = 1024;
  f.hdr->tid = 0;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1024), -EINVAL);
  f.hdr->tid = 1;
  f.hdr->version = 2;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1024), -EINVAL);
  f.hdr->version = TR_PROTO_VERSION;
  f.hdr->magic = TR_ARENA_MAGIC;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1024), -EINVAL);
  f.hdr->magic = TR_RING_MAGIC;
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1024), 0);
  ck_assert_int_eq(tr_ringview_attach(&v, f.mem, f.size, 1000), -EINVAL);
  ring_teardown(&f);
}
END_TEST

static int make_memfd(size_t size, unsigned seals) {
  int fd = memfd_create("check_ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(ftruncate(fd, (off_t)size), 0);
  if (seals) ck_assert_int_eq(fcntl(fd, F_ADD_SEALS, seals), 0);
  return fd;
}

static void write_ring_header(int fd, uint32_t slots) {
  tr_ring_hdr h;
  memset(&h, 0, sizeof(h));
  h.magic = TR_RING_MAGIC;
  h.version = TR_PROTO_VERSION;
  h.header_size = TR_SHM_HEADER_SIZE;
  h.capacity = slots;
  h.tid = 7;
  ck_assert_int_eq(pwrite(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
}

START_TEST(test_ring_map_descriptor_checks) {
  const uint32_t slots = 1024;
  size_t size = TR_SHM_HEADER_SIZE + slots * sizeof(tr_record);
  unsigned seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  tr_ringview v;

  int fd = make_memfd(size, 0);
  write_ring_header(fd, slots);
  ck_assert_int_eq(tr_ringview_map(&v, fd, slots), -EPERM); /* unsealed */
  close(fd);

  fd = make_memfd(size + 4096, seals);
  write_ring_header(fd, slots);
  ck_assert_int_eq(tr_ringview_map(&v, fd, slots), -EINVAL); /* size */
  close(fd);

  int p[2];
  ck_assert_int_eq(pipe(p), 0);
  ck_assert_int_eq(tr_ringview_map(&v, p[0], slots), -EINVAL); /* not a file */
  close(p[0]);
  close(p[1]);

  fd = make_memfd(size, seals);
  write_ring_header(fd, slots);
  ck_assert_int_eq(tr_ringview_map(&v, fd, slots), 0);
  close(fd); /* the mapping outlives the descriptor */
  ck_assert_uint_eq(v.tid, 7);
  ck_assert_int_eq(tr_ringview_drain(&v, 0, NULL, NULL, NULL), 0);
  tr_ringview_unmap(&v);
}
END_TEST

/* ---- arena -----------------------------------------------------------------
 */

typedef struct arena_fixture {
  void *mem;
  size_t size;
  tr_arena_hdr *hdr;
  uint8_t *data;
  tr_arenaview view;
} arena_fixture;

static uint32_t arena_add(arena_fixture *a, const char *s, uint32_t len) {
  uint32_t off = atomic_load(&a->hdr->committed);
  memcpy(a->data + off, &len, 4);
  memcpy(a->data + off + 4, s, strlen(s));
  uint32_t next = off + ((4 + len + 3) & ~3u);
  atomic_store_explicit(&a->hdr->committed, next, memory_order_release);
  return off;
}

static void arena_setup(arena_fixture *a) {
  memset(a, 0, sizeof(*a));
  a->size = TR_SHM_HEADER_SIZE + TR_ARENA_MIN_SIZE;
  a->mem = aligned_alloc(4096, a->size);
  ck_assert_ptr_nonnull(a->mem);
  memset(a->mem, 0, a->size);
  a->hdr = a->mem;
  a->hdr->magic = TR_ARENA_MAGIC;
  a->hdr->version = TR_PROTO_VERSION;
  a->hdr->header_size = TR_SHM_HEADER_SIZE;
  a->hdr->capacity = TR_ARENA_MIN_SIZE;
  a->data = (uint8_t *)a->mem + TR_SHM_HEADER_SIZE;
  ck_assert_int_eq(
      tr_arena_attach(&a->view, a->mem, a->size, TR_ARENA_MIN_SIZE), 0);
}

START_TEST(test_arena_get_valid_and_invalid_ids) {
  arena_fixture a;
  arena_setup(&a);
  const char *p;
  uint32_t n;
  ck_assert_int_eq(tr_arena_get(&a.view, 0, &p, &n), -EINVAL); /* empty */
  uint32_t unk = arena_add(&a, "<unknown>", 9);
  uint32_t f = arena_add(&a, "f (x.py:1)", 10);
  ck_assert_uint_eq(unk, 0);
  ck_assert_int_eq(tr_arena_get(&a.view, f, &p, &n), 0);
  ck_assert_uint_eq(n, 10);
  ck_assert_int_eq(memcmp(p, "f (x.py:1)", 10), 0);
  ck_assert_int_eq(tr_arena_get(&a.view, 0, &p, &n), 0);
  ck_assert_uint_eq(n, 9);
  ck_assert_int_eq(tr_arena_get(&a.view, f + 2, &p, &n), -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, f + 16, &p, &n), -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, 0xfffffffcu, &p, &n), -EINVAL);
  /* An entry whose length runs past `committed`. */
  uint32_t big = atomic_load(&a.hdr->committed);
  uint32_t len = 1000;
  memcpy(a.data + big, &len, 4);
  atomic_store(&a.hdr->committed, big + 8);
  ck_assert_int_eq(tr_arena_get(&a.view, big, &p, &n), -EINVAL);
  /* Longer than a string may be. */
  len = TR_STRING_MAX_LEN + 1;
  memcpy(a.data + big, &len, 4);
  atomic_store(&a.hdr->committed, big + 4 + len + 3);
  ck_assert_int_eq(tr_arena_get(&a.view, big, &p, &n), -EINVAL);
  tr_arena_unmap(&a.view);
  free(a.mem);
}
END_TEST

START_TEST(test_arena_committed_beyond_capacity_ignored) {
  arena_fixture a;
  arena_setup(&a);
  uint32_t f = arena_add(&a, "ok", 2);
  const char *p;
  uint32_t n;
  ck_assert_int_eq(tr_arena_get(&a.view, f, &p, &n), 0);
  /* A lying `committed` does not open the rest of memory. */
  atomic_store(&a.hdr->committed, 0xfffffff0u);
  ck_assert_int_eq(tr_arena_get(&a.view, TR_ARENA_MIN_SIZE - 4, &p, &n),
                   -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, TR_ARENA_MIN_SIZE + 64, &p, &n),
                   -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, f, &p, &n), 0);
  tr_arena_set_state(&a.view, TR_STATE_ENABLED | (5u << TR_STATE_EPOCH_SHIFT));
  ck_assert_uint_eq(atomic_load(&a.hdr->state), 0x501);
  tr_arena_unmap(&a.view);
  free(a.mem);
}
END_TEST

/* A `committed` that covers pages the producer never wrote is not
 * believed (looking strings up there would allocate those pages in the
 * daemon), and the arena stops growing: strings written before it still
 * resolve. */
START_TEST(test_arena_committed_over_pages_never_written) {
  const uint32_t dsize = 1u << 20;
  size_t size = TR_SHM_HEADER_SIZE + dsize;
  void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(mem, MAP_FAILED);
  arena_fixture a;
  memset(&a, 0, sizeof(a));
  a.mem = mem;
  a.hdr = mem;
  a.hdr->magic = TR_ARENA_MAGIC;
  a.hdr->version = TR_PROTO_VERSION;
  a.hdr->header_size = TR_SHM_HEADER_SIZE;
  a.hdr->capacity = dsize;
  a.data = (uint8_t *)mem + TR_SHM_HEADER_SIZE;
  ck_assert_int_eq(tr_arena_attach(&a.view, mem, size, dsize), 0);
  uint32_t f = arena_add(&a, "f", 1);
  const char *p;
  uint32_t n;
  ck_assert_int_eq(tr_arena_get(&a.view, f, &p, &n), 0);
  size_t before = resident_pages(a.data, dsize);
  atomic_store(&a.hdr->committed, dsize);
  ck_assert_int_eq(tr_arena_get(&a.view, dsize / 2, &p, &n), -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, dsize - 8, &p, &n), -EINVAL);
  ck_assert_uint_eq(resident_pages(a.data, dsize), before);
  /* Written later, it is still not believed: the arena lied once. */
  uint32_t g = dsize / 2;
  uint32_t len = 1;
  memcpy(a.data + g, &len, 4);
  ck_assert_int_eq(tr_arena_get(&a.view, g, &p, &n), -EINVAL);
  ck_assert_int_eq(tr_arena_get(&a.view, f, &p, &n), 0);
  ck_assert_uint_eq(n, 1);
  tr_arena_unmap(&a.view);
  munmap(mem, size);
}
END_TEST

static Suite *ring_suite(void) {
  Suite *s = suite_create("ring");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_ring_wraparound);
  tcase_add_test(core, test_ring_drain_budget);
  tcase_add_test(core, test_ring_extra_wraps_at_end);
  tcase_add_test(core, test_ring_full_drop_mode_drops_and_counts);
  tcase_add_test(core, test_ring_full_stalled_consumer_drops_after_bound);
  tcase_add_test(core, test_ring_full_waits_while_consumer_progresses);
  tcase_add_test(core, test_ring_full_waits_while_heartbeat_changes);
  tcase_add_test(core, test_ring_bell_cleared_and_closed);
  suite_add_tcase(s, core);
  TCase *race = tcase_create("race");
  tcase_set_timeout(race, 120);
  tcase_add_test(race, test_ring_race_producer_consumer);
  suite_add_tcase(s, race);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_ring_head_beyond_capacity);
  tcase_add_test(errors, test_ring_head_behind_tail);
  tcase_add_test(errors, test_ring_tail_not_trusted);
  tcase_add_test(errors, test_ring_extra_too_large);
  tcase_add_test(errors, test_ring_long_record_wraps);
  tcase_add_test(errors, test_ring_extra_beyond_head);
  tcase_add_test(errors, test_ring_late_records_discarded);
  tcase_add_test(errors, test_ring_header_validation);
  tcase_add_test(errors, test_ring_map_descriptor_checks);
  tcase_add_test(errors, test_ring_pages_never_written_are_not_read);
  suite_add_tcase(s, errors);
  TCase *arena = tcase_create("arena");
  tcase_add_test(arena, test_arena_get_valid_and_invalid_ids);
  tcase_add_test(arena, test_arena_committed_beyond_capacity_ignored);
  tcase_add_test(arena, test_arena_committed_over_pages_never_written);
  suite_add_tcase(s, arena);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(ring_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

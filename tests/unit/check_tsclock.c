/* check_tsclock.c: unit tests of the TSC-to-monotonic conversion
 * (daemon/tsclock.c) over a scripted clock: order and nesting survive
 * conversion, a reading always converts to the same value, anchors agree
 * with the clock, hostile readings are harmless. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "daemon/tsclock.h"

/* A fake host: the TSC runs at 2.5 ticks per ns from `base`, plus a
 * sampling jitter of up to +-jitter ns; `now` is the current tick. */
typedef struct fake {
  uint64_t now;
  uint64_t base_ns;
  unsigned jitter;
  uint32_t rng;
  unsigned calls;
} fake;

static uint32_t rnd(uint32_t *s) {
  *s = *s * 1103515245u + 12345u;
  return *s >> 8;
}

static uint64_t true_ns(const fake *f, uint64_t tick) {
  return f->base_ns + tick * 2 / 5;
}

static void fake_sample(void *ctx, uint64_t *tsc, uint64_t *ns) {
  fake *f = ctx;
  /* Sampling takes time; the daemon sleeps 1 ms between the two
   * calibration samples (tr_tsclock_init). */
  f->now += f->calls++ == 1 ? 2500000 : 1000;
  *tsc = f->now;
  int64_t n = (int64_t)true_ns(f, f->now);
  if (f->jitter != 0)
    n += (int64_t)(rnd(&f->rng) % (2 * f->jitter)) - (int64_t)f->jitter;
  *ns = (uint64_t)n;
}

static fake F;
static tr_tsclock C;

static void setup(void) {
  F = (fake){.now = 1000000, .base_ns = 5000000000ull, .jitter = 0, .rng = 42};
  tr_tsclock_init(&C, fake_sample, &F, 0);
}

START_TEST(test_tsclock_exact) {
  /* With a perfect clock the map is the clock itself (floor rounding). */
  for (int i = 0; i < 1000; i++) {
    F.now += 7919 * 25; /* ~80 us of ticks */
    uint64_t t = F.now - 12345;
    uint64_t v = tr_tsclock_ns(&C, t);
    uint64_t want = true_ns(&F, t);
    /* Anchors and the fake clock both round down: 2 ns either way. */
    ck_assert_uint_le(v, want + 2);
    ck_assert_uint_ge(v + 2, want);
  }
}
END_TEST

START_TEST(test_tsclock_monotonic_and_stable) {
  /* Readings from several "threads", converted out of order as a daemon
   * drains rings one after another, with a jittery clock: sorting by tick
   * must sort by value, and converting again must give the same value. */
  F.jitter = 50;
  enum { N = 20000, BATCH = 100 };
  static uint64_t ticks[N], vals[N];
  uint32_t r = 7;
  for (int b = 0; b < N; b += BATCH) {
    /* Events happen, each a little before the daemon looks... */
    for (int i = b; i < b + BATCH; i++) {
      F.now += rnd(&r) % 40000; /* up to 16 us of ticks between events */
      ticks[i] = F.now - rnd(&r) % 30000;
    }
    /* ...which drains them in an order of its own (ring by ring). */
    for (int k = 0; k < BATCH; k++) {
      int i = b + (k * 37) % BATCH;
      vals[i] = tr_tsclock_ns(&C, ticks[i]);
    }
  }
  for (int i = 0; i < N; i++)
    ck_assert_uint_eq(tr_tsclock_ns(&C, ticks[i]), vals[i]);
  for (int i = 0; i < N; i++)
    for (int j = i + 1; j < N && j < i + 64; j++) {
      if (ticks[i] < ticks[j]) ck_assert_uint_le(vals[i], vals[j]);
      if (ticks[i] > ticks[j]) ck_assert_uint_ge(vals[i], vals[j]);
    }
  ck_assert_uint_gt(C.samples, 10);
}
END_TEST

START_TEST(test_tsclock_extrapolated_values_kept) {
  /* A reading just past the last anchor is extrapolated; after a later
   * reading forces new anchors, it still converts to the same value, and
   * so does everything between. */
  F.jitter = 200;
  uint64_t last = C.a[(C.first + C.count - 1) % TR_TSCLOCK_ANCHORS].tsc;
  uint64_t r1 = last + C.gap_ticks / 3, r2 = last + C.gap_ticks / 2;
  uint64_t v1 = tr_tsclock_ns(&C, r1), v2 = tr_tsclock_ns(&C, r2);
  uint64_t n = C.count;
  F.now = last + 10 * C.gap_ticks;
  uint64_t v3 = tr_tsclock_ns(&C, F.now - 5);
  ck_assert_uint_gt(C.count, n);
  ck_assert_uint_eq(tr_tsclock_ns(&C, r1), v1);
  ck_assert_uint_eq(tr_tsclock_ns(&C, r2), v2);
  ck_assert_uint_le(v2, v3);
  ck_assert_uint_le(v1, v2);
}
END_TEST

START_TEST(test_tsclock_agrees_with_clock) {
  /* Over a long run with jitter, no drift: every value stays within a
   * few times the sampling jitter of the true clock (interpolated values
   * within the jitter of the anchors; extrapolated ones, past the last
   * anchor, also carry the last segment's slope error). */
  F.jitter = 40;
  for (int i = 0; i < 100000; i++) {
    F.now += 2500000; /* 1 ms of ticks */
    uint64_t t = F.now - 700;
    uint64_t v = tr_tsclock_ns(&C, t);
    uint64_t want = true_ns(&F, t);
    uint64_t d = v > want ? v - want : want - v;
    ck_assert_uint_le(d, 4 * 40 + 2);
  }
  /* The anchor ring wrapped many times and still converts recent
   * readings in order. */
  ck_assert_uint_eq(C.count, TR_TSCLOCK_ANCHORS);
  ck_assert_uint_le(tr_tsclock_ns(&C, F.now - 900000),
                    tr_tsclock_ns(&C, F.now - 800000));
}
END_TEST

START_TEST(test_tsclock_hostile) {
  /* Garbage readings from a hostile producer: no overflow (UBSan), no
   * crash, values clamped into range, and the clock still works. */
  uint64_t lo = tr_tsclock_ns(&C, 0);
  uint64_t hi = tr_tsclock_ns(&C, UINT64_MAX);
  ck_assert_uint_le(lo, F.base_ns + F.now);
  ck_assert_uint_ge(hi, F.base_ns);
  tr_tsclock_ns(&C, UINT64_MAX - 1);
  tr_tsclock_ns(&C, 1);
  F.now += 1000000;
  uint64_t a = tr_tsclock_ns(&C, F.now - 10);
  uint64_t b = tr_tsclock_ns(&C, F.now - 5);
  ck_assert_uint_le(a, b);
}
END_TEST

START_TEST(test_tsclock_real_hardware) {
  /* The real sampler: values track CLOCK_MONOTONIC (checked loosely:
   * this is a shared, noisy machine) and never go backwards. */
  const char *why;
  if (!tr_tsclock_usable(&why)) return; /* nothing to check here */
  tr_tsclock c;
  tr_tsclock_init(&c, NULL, NULL, 200);
  uint64_t prev = 0;
  for (int i = 0; i < 1000; i++) {
    uint64_t t, n;
    c.sample(NULL, &t, &n);
    uint64_t v = tr_tsclock_ns(&c, t);
    ck_assert_uint_ge(v, prev);
    prev = v;
  }
}
END_TEST

static Suite *tsclock_suite(void) {
  Suite *s = suite_create("tsclock");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, NULL);
  /* A hang guard, not a speed check: the long-run cases do a few million
   * conversions and asserts, which under ASan on a loaded 2-core machine
   * passed Check's default 4 s. */
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, test_tsclock_exact);
  tcase_add_test(tc, test_tsclock_monotonic_and_stable);
  tcase_add_test(tc, test_tsclock_extrapolated_values_kept);
  tcase_add_test(tc, test_tsclock_agrees_with_clock);
  tcase_add_test(tc, test_tsclock_hostile);
  tcase_add_test(tc, test_tsclock_real_hardware);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(tsclock_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

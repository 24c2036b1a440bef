/* check_map.c: unit tests of common/'s hash map, interner and cache
 * (common/map.c, common/intern.c): lookups, growth, colliding keys,
 * removal against a model, keys by hash, and the failure paths. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/intern.h"
#include "common/map.h"

/* The out-of-memory test asks for more than any machine has: under ASan
 * or TSan, that must fail as it does elsewhere rather than abort the
 * test. */
__attribute__((visibility("default"))) const char *__asan_default_options(
    void) {
  return "allocator_may_return_null=1";
}

__attribute__((visibility("default"))) const char *__tsan_default_options(
    void) {
  return "allocator_may_return_null=1";
}

START_TEST(test_map_set_get_insert) {
  tr_map m;
  tr_map_init(&m);
  ck_assert_ptr_null(tr_map_get(&m, 7));
  ck_assert_int_eq(tr_map_set(&m, 7, 70), 0);
  ck_assert_int_eq(tr_map_set(&m, UINT64_MAX, 1), 0);
  ck_assert_uint_eq(*tr_map_get(&m, 7), 70);
  ck_assert_uint_eq(*tr_map_get(&m, UINT64_MAX), 1);
  ck_assert_int_eq(tr_map_set(&m, 7, 71), 0); /* replaces */
  ck_assert_uint_eq(*tr_map_get(&m, 7), 71);
  ck_assert_uint_eq(m.len, 2);
  bool added;
  uint64_t *v = tr_map_insert(&m, 8, &added);
  ck_assert(added);
  ck_assert_uint_eq(*v, 0);
  *v = 80;
  v = tr_map_insert(&m, 8, &added);
  ck_assert(!added);
  ck_assert_uint_eq(*v, 80);
  ck_assert_ptr_null(tr_map_get(&m, 9));
  ck_assert_uint_eq(m.len, 3);
  tr_map_free(&m);
  ck_assert_uint_eq(m.len, 0);
  ck_assert_ptr_null(tr_map_get(&m, 7));
}
END_TEST

/* Key 0 is a key like any other (it lives beside the table). */
START_TEST(test_map_key_zero) {
  tr_map m;
  tr_map_init(&m);
  ck_assert_ptr_null(tr_map_get(&m, 0));
  ck_assert_int_eq(tr_map_set(&m, 0, 5), 0);
  ck_assert_uint_eq(*tr_map_get(&m, 0), 5);
  ck_assert_uint_eq(m.len, 1);
  ck_assert_ptr_null(tr_map_get(&m, 1));
  ck_assert(tr_map_remove(&m, 0));
  ck_assert(!tr_map_remove(&m, 0));
  ck_assert_ptr_null(tr_map_get(&m, 0));
  ck_assert_uint_eq(m.len, 0);
  tr_map_free(&m);
}
END_TEST

START_TEST(test_map_grows) {
  tr_map m;
  tr_map_init(&m);
  const uint64_t n = 100000;
  for (uint64_t i = 0; i < n; i++)
    ck_assert_int_eq(tr_map_set(&m, i * 0x10001u, i), 0);
  ck_assert_uint_eq(m.len, n);
  ck_assert_uint_eq(m.cap & (m.cap - 1), 0); /* a power of two */
  ck_assert_uint_ge(m.cap, 2 * (n - 1));     /* at most half full */
  for (uint64_t i = 0; i < n; i++)
    ck_assert_uint_eq(*tr_map_get(&m, i * 0x10001u), i);
  ck_assert_ptr_null(tr_map_get(&m, 3));
  tr_map_free(&m);
}
END_TEST

/* Keys whose probes start at the same slot of m's table. */
static void colliding(const tr_map *m, uint64_t *keys, size_t want) {
  size_t n = 0;
  for (uint64_t k = 1; n < want; k++)
    if (tr_map_home(m, k) == m->cap - 1) keys[n++] = k;
}

START_TEST(test_map_collisions_and_removal) {
  tr_map m;
  tr_map_init(&m);
  ck_assert_int_eq(tr_map_reserve(&m, 4), 0);
  ck_assert_uint_eq(m.cap, 8);
  uint64_t keys[4];
  colliding(&m, keys, 4); /* at the last slot: the run wraps around */
  for (int i = 0; i < 4; i++) ck_assert_int_eq(tr_map_set(&m, keys[i], i), 0);
  ck_assert_uint_eq(m.cap, 8); /* all four on one probe run */
  ck_assert_uint_eq(m.slots[7].key, keys[0]);
  ck_assert_uint_eq(m.slots[0].key, keys[1]);
  for (int i = 0; i < 4; i++) ck_assert_uint_eq(*tr_map_get(&m, keys[i]), i);
  /* Removing from the middle of the run keeps the later keys reachable. */
  ck_assert(tr_map_remove(&m, keys[1]));
  ck_assert_ptr_null(tr_map_get(&m, keys[1]));
  ck_assert_uint_eq(*tr_map_get(&m, keys[0]), 0);
  ck_assert_uint_eq(*tr_map_get(&m, keys[2]), 2);
  ck_assert_uint_eq(*tr_map_get(&m, keys[3]), 3);
  ck_assert(!tr_map_remove(&m, keys[1]));
  ck_assert_uint_eq(m.len, 3);
  tr_map_free(&m);
}
END_TEST

/* Random sets and removals against a plain array as the model; keys from a
 * small range, so runs wrap around the table's end and collide. */
START_TEST(test_map_model) {
  enum { RANGE = 300 };
  static uint64_t model[RANGE];
  static bool present[RANGE];
  memset(present, 0, sizeof(present));
  tr_map m;
  tr_map_init(&m);
  unsigned x = 12345;
  size_t len = 0;
  for (int step = 0; step < 200000; step++) {
    x = x * 1103515245u + 12345u;
    uint64_t k = (x >> 8) % RANGE;
    if ((x >> 4) % 3 == 0) {
      ck_assert_int_eq(tr_map_remove(&m, k), present[k]);
      if (present[k]) len--;
      present[k] = false;
    } else {
      ck_assert_int_eq(tr_map_set(&m, k, step), 0);
      if (!present[k]) len++;
      present[k] = true;
      model[k] = (uint64_t)step;
    }
    if (step % 1000 == 0)
      for (uint64_t j = 0; j < RANGE; j++) {
        uint64_t *v = tr_map_get(&m, j);
        ck_assert_int_eq(v != NULL, present[j]);
        if (v != NULL) ck_assert_uint_eq(*v, model[j]);
      }
  }
  ck_assert_uint_eq(m.len, len);
  tr_map_free(&m);
}
END_TEST

START_TEST(test_map_next_and_clear) {
  tr_map m;
  tr_map_init(&m);
  size_t it = 0;
  uint64_t k, v;
  ck_assert(!tr_map_next(&m, &it, &k, &v));
  for (uint64_t i = 0; i < 50; i++) ck_assert_int_eq(tr_map_set(&m, i, i), 0);
  uint64_t seen = 0, sum = 0;
  it = 0;
  while (tr_map_next(&m, &it, &k, &v)) {
    ck_assert_uint_eq(k, v);
    seen++;
    sum += k;
  }
  ck_assert_uint_eq(seen, 50);
  ck_assert_uint_eq(sum, 49 * 50 / 2);
  size_t cap = m.cap;
  tr_map_clear(&m);
  ck_assert_uint_eq(m.len, 0);
  ck_assert_uint_eq(m.cap, cap); /* the memory is kept */
  ck_assert_ptr_null(tr_map_get(&m, 0));
  ck_assert_ptr_null(tr_map_get(&m, 5));
  it = 0;
  ck_assert(!tr_map_next(&m, &it, &k, &v));
  tr_map_free(&m);
}
END_TEST

/* Keyed by hash: records told apart by the caller's eq, a zero hash. */
typedef struct rec {
  int64_t a, b;
} rec;

static const rec g_recs[3] = {{1, 2}, {2, 1}, {-5, 7}};

static bool rec_eq(const void *ctx, uint64_t value) {
  const rec *const *want = ctx;
  return g_recs[value].a == (*want)->a && g_recs[value].b == (*want)->b;
}

START_TEST(test_map_by_hash) {
  tr_map m;
  tr_map_init(&m);
  /* Every record under one hash (0, even): eq picks the right one. */
  for (uint64_t i = 0; i < 3; i++) ck_assert_int_eq(tr_map_add(&m, 0, i), 0);
  for (uint64_t i = 0; i < 3; i++) {
    const rec *want = &g_recs[i];
    uint64_t *v = tr_map_find(&m, 0, rec_eq, &want);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(*v, i);
  }
  rec other = {9, 9};
  const rec *want = &other;
  ck_assert_ptr_null(tr_map_find(&m, 0, rec_eq, &want));
  ck_assert_ptr_null(tr_map_find(&m, 42, rec_eq, &want));
  ck_assert_uint_ne(tr_map_hash_pair(1, 2), tr_map_hash_pair(2, 1));
  ck_assert_uint_ne(tr_map_hash_bytes("ab", 2), tr_map_hash_bytes("ba", 2));
  tr_map_free(&m);
}
END_TEST

START_TEST(test_map_out_of_memory) {
  tr_map m;
  tr_map_init(&m);
  ck_assert_int_eq(tr_map_set(&m, 1, 1), 0);
  size_t cap = m.cap;
  ck_assert_int_eq(tr_map_reserve(&m, SIZE_MAX / 4), -ENOMEM);
  ck_assert_int_eq(tr_map_reserve(&m, SIZE_MAX / 64), -ENOMEM);
  ck_assert_uint_eq(m.cap, cap); /* unchanged */
  ck_assert_uint_eq(*tr_map_get(&m, 1), 1);
  ck_assert_int_eq(tr_map_reserve(&m, 1000), 0);
  ck_assert_uint_ge(m.cap, 2000);
  ck_assert_uint_eq(*tr_map_get(&m, 1), 1);
  tr_map_free(&m);
}
END_TEST

/* ---- the interner ------------------------------------------------------ */

START_TEST(test_intern_core) {
  tr_intern t;
  tr_intern_init(&t);
  ck_assert_int_eq(tr_intern_find(&t, "f", 1), -1);
  ck_assert_int_eq(tr_intern_add(&t, "f", 1), 0);
  ck_assert_int_eq(tr_intern_add(&t, "g", 1), 1);
  ck_assert_int_eq(tr_intern_add(&t, "", 0), 2);
  ck_assert_int_eq(tr_intern_add(&t, "a\0b", 3), 3);
  ck_assert_int_eq(tr_intern_add(&t, "a", 1), 4); /* not "a\0b" */
  ck_assert_int_eq(tr_intern_add(&t, "f", 1), 0); /* stored once */
  ck_assert_int_eq(tr_intern_find(&t, "a\0b", 3), 3);
  ck_assert_int_eq(tr_intern_find(&t, "", 0), 2);
  ck_assert_uint_eq(tr_intern_count(&t), 5);
  size_t n;
  const char *s = tr_intern_str(&t, 3, &n);
  ck_assert_uint_eq(n, 3);
  ck_assert_int_eq(memcmp(s, "a\0b", 3), 0);
  tr_intern_str(&t, 2, &n);
  ck_assert_uint_eq(n, 0);
  tr_intern_clear(&t);
  ck_assert_uint_eq(tr_intern_count(&t), 0);
  ck_assert_int_eq(tr_intern_find(&t, "f", 1), -1);
  ck_assert_int_eq(tr_intern_add(&t, "g", 1), 0);
  tr_intern_free(&t);
}
END_TEST

START_TEST(test_intern_grows) {
  tr_intern t;
  tr_intern_init(&t);
  char buf[64];
  for (int i = 0; i < 50000; i++) {
    int k = snprintf(buf, sizeof(buf), "function_%d (file.py:%d)", i, i % 97);
    ck_assert_int_eq(tr_intern_add(&t, buf, (size_t)k), i);
  }
  for (int i = 0; i < 50000; i += 7) {
    int k = snprintf(buf, sizeof(buf), "function_%d (file.py:%d)", i, i % 97);
    ck_assert_int_eq(tr_intern_find(&t, buf, (size_t)k), i);
    size_t n;
    const char *s = tr_intern_str(&t, (uint32_t)i, &n);
    ck_assert_uint_eq(n, (size_t)k);
    ck_assert_int_eq(memcmp(s, buf, n), 0);
  }
  tr_intern_free(&t);
}
END_TEST

/* ---- the cache --------------------------------------------------------- */

START_TEST(test_cache_direct_mapped) {
  tr_cache c;
  ck_assert_int_eq(tr_cache_init(&c, 16, 2), 0);
  /* 4-aligned offsets 0, 4, ..., 60 fill the 16 slots one each. */
  static int values[16];
  for (uint64_t k = 0; k < 64; k += 4) {
    tr_cache_slot *s = tr_cache_slot_of(&c, k);
    ck_assert_ptr_null(s->value);
    s->value = &values[k / 4];
    s->key = k;
  }
  for (uint64_t k = 0; k < 64; k += 4)
    ck_assert_uint_eq(tr_cache_slot_of(&c, k)->key, k);
  /* The 17th evicts the first: same slot, another key. */
  tr_cache_slot *s = tr_cache_slot_of(&c, 64);
  ck_assert_ptr_eq(s, tr_cache_slot_of(&c, 0));
  ck_assert_uint_eq(s->key, 0);
  tr_cache_free(&c);
  ck_assert_ptr_null(c.slots);
}
END_TEST

static Suite *map_suite(void) {
  Suite *s = suite_create("map");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_map_set_get_insert);
  tcase_add_test(core, test_map_key_zero);
  tcase_add_test(core, test_map_grows);
  tcase_add_test(core, test_map_collisions_and_removal);
  tcase_add_test(core, test_map_model);
  tcase_add_test(core, test_map_next_and_clear);
  tcase_add_test(core, test_map_by_hash);
  suite_add_tcase(s, core);
  TCase *intern = tcase_create("intern");
  tcase_add_test(intern, test_intern_core);
  tcase_add_test(intern, test_intern_grows);
  suite_add_tcase(s, intern);
  TCase *cache = tcase_create("cache");
  tcase_add_test(cache, test_cache_direct_mapped);
  suite_add_tcase(s, cache);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_map_out_of_memory);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(map_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

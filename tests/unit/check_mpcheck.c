/* check_mpcheck.c: unit tests of the msgpack bounds check run on every
 * payload before msgpack-c sees it (daemon/mpcheck.c). */
#include <check.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/mpcheck.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

static void setup(void) {
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
}

static void teardown(void) { msgpack_sbuffer_destroy(&sb); }

/* A map of 12 pairs using most encodings msgpack-c produces. */
static void pack_everything(void) {
  msgpack_pack_map(&pk, 12);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "magic", 5);
  msgpack_pack_str(&pk, 6);
  msgpack_pack_str_body(&pk, "traced", 6);
  msgpack_pack_uint8(&pk, 200);
  msgpack_pack_uint16(&pk, 60000);
  msgpack_pack_uint32(&pk, 4000000000u);
  msgpack_pack_uint64(&pk, UINT64_MAX);
  msgpack_pack_int8(&pk, -100);
  msgpack_pack_int16(&pk, -30000);
  msgpack_pack_int32(&pk, -2000000000);
  msgpack_pack_int64(&pk, INT64_MIN);
  msgpack_pack_float(&pk, 1.5f);
  msgpack_pack_double(&pk, 2.5);
  msgpack_pack_nil(&pk);
  msgpack_pack_true(&pk);
  msgpack_pack_false(&pk);
  char big[300];
  memset(big, 'x', sizeof(big));
  msgpack_pack_str(&pk, sizeof(big)); /* str16 */
  msgpack_pack_str_body(&pk, big, sizeof(big));
  msgpack_pack_bin(&pk, 3);
  msgpack_pack_bin_body(&pk, "abc", 3);
  msgpack_pack_array(&pk, 20); /* array16 */
  for (int i = 0; i < 20; i++) msgpack_pack_int(&pk, i);
  msgpack_pack_ext(&pk, 4, 1);
  msgpack_pack_ext_body(&pk, "abcd", 4);
  msgpack_pack_ext(&pk, 5, 2);
  msgpack_pack_ext_body(&pk, "abcde", 5);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str(&pk, 1);
  msgpack_pack_str_body(&pk, "k", 1);
  msgpack_pack_array(&pk, 1);
  msgpack_pack_array(&pk, 0);
  msgpack_pack_str(&pk, 0);
  msgpack_pack_int(&pk, -1); /* negative fixint */
  msgpack_pack_int(&pk, 127);
}

START_TEST(test_mpcheck_accepts_well_formed) {
  pack_everything();
  const uint8_t *p = (const uint8_t *)sb.data;
  ck_assert_int_eq(tr_mpcheck_size(p, sb.size), (long)sb.size);
  /* Trailing bytes are not part of the object. */
  msgpack_pack_nil(&pk);
  ck_assert_int_eq(tr_mpcheck_size((const uint8_t *)sb.data, sb.size),
                   (long)sb.size - 1);
}
END_TEST

START_TEST(test_mpcheck_rejects_every_truncation) {
  pack_everything();
  const uint8_t *p = (const uint8_t *)sb.data;
  for (size_t n = 0; n < sb.size; n++)
    ck_assert_int_eq(tr_mpcheck_size(p, n), -1);
}
END_TEST

START_TEST(test_mpcheck_rejects_huge_counts) {
  const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
  const uint8_t map32[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0x01, 0x01};
  const uint8_t map16[] = {0xde, 0x00, 0x02, 0x01, 0x01, 0x01};
  const uint8_t str32[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
  const uint8_t bin16[] = {0xc5, 0x01, 0x00, 'a'};
  const uint8_t ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'};
  ck_assert_int_eq(tr_mpcheck_size(arr32, sizeof(arr32)), -1);
  ck_assert_int_eq(tr_mpcheck_size(map32, sizeof(map32)), -1);
  ck_assert_int_eq(tr_mpcheck_size(map16, sizeof(map16)), -1);
  ck_assert_int_eq(tr_mpcheck_size(str32, sizeof(str32)), -1);
  ck_assert_int_eq(tr_mpcheck_size(bin16, sizeof(bin16)), -1);
  ck_assert_int_eq(tr_mpcheck_size(ext32, sizeof(ext32)), -1);
}
END_TEST

START_TEST(test_mpcheck_rejects_reserved_and_deep) {
  const uint8_t reserved[] = {0xc1};
  ck_assert_int_eq(tr_mpcheck_size(reserved, 1), -1);
  const uint8_t in_map[] = {0x81, 0xa1, 'k', 0xc1};
  ck_assert_int_eq(tr_mpcheck_size(in_map, sizeof(in_map)), -1);
  uint8_t deep[64];
  memset(deep, 0x91, sizeof(deep)); /* [[[[...]]]] */
  deep[sizeof(deep) - 1] = 0x90;
  ck_assert_int_eq(tr_mpcheck_size(deep, sizeof(deep)), -1);
  /* Nesting up to the limit is fine. */
  uint8_t ok[TR_MPCHECK_MAX_DEPTH + 1];
  memset(ok, 0x91, sizeof(ok));
  ok[sizeof(ok) - 1] = 0x90;
  ck_assert_int_eq(tr_mpcheck_size(ok, sizeof(ok)), (long)sizeof(ok));
}
END_TEST

static Suite *mpcheck_suite(void) {
  Suite *s = suite_create("mpcheck");
  TCase *core = tcase_create("core");
  tcase_add_checked_fixture(core, setup, teardown);
  tcase_add_test(core, test_mpcheck_accepts_well_formed);
  suite_add_tcase(s, core);
  TCase *errors = tcase_create("errors");
  tcase_add_checked_fixture(errors, setup, teardown);
  tcase_add_test(errors, test_mpcheck_rejects_every_truncation);
  tcase_add_test(errors, test_mpcheck_rejects_huge_counts);
  tcase_add_test(errors, test_mpcheck_rejects_reserved_and_deep);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(mpcheck_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

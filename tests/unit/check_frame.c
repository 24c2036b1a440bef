/* check_frame.c: unit tests of the frame codec (proto/frame.c). */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "proto/traced_proto.h"

START_TEST(test_frame_roundtrip) {
  uint8_t buf[8 + 5];
  tr_frame_hdr_encode(buf, TR_MSG_RING_ADD, 5);
  memcpy(buf + 8, "hello", 5);
  tr_frame_hdr h;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), 13);
  ck_assert_uint_eq(h.len, 5);
  ck_assert_uint_eq(h.type, TR_MSG_RING_ADD);
  ck_assert_uint_eq(h.flags, 0);
}
END_TEST

START_TEST(test_frame_little_endian) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, 0x0102, 0x01020304);
  const uint8_t want[8] = {4, 3, 2, 1, 2, 1, 0, 0};
  ck_assert_mem_eq(buf, want, 8);
}
END_TEST

START_TEST(test_frame_empty_payload) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, TR_MSG_DOORBELL, 0);
  tr_frame_hdr h;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), 8);
  ck_assert_uint_eq(h.type, TR_MSG_DOORBELL);
}
END_TEST

START_TEST(test_frame_truncated_header) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, 0);
  tr_frame_hdr h;
  for (size_t n = 0; n < 8; n++)
    ck_assert_int_eq(tr_frame_parse(buf, n, &h), 0);
}
END_TEST

START_TEST(test_frame_truncated_payload) {
  uint8_t buf[8 + 100];
  memset(buf, 0xab, sizeof(buf));
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, 100);
  tr_frame_hdr h;
  for (size_t n = 8; n < sizeof(buf); n++)
    ck_assert_int_eq(tr_frame_parse(buf, n, &h), 0);
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), 108);
}
END_TEST

START_TEST(test_frame_two_frames) {
  uint8_t buf[8 + 3 + 8];
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, 3);
  memcpy(buf + 8, "abc", 3);
  tr_frame_hdr_encode(buf + 11, TR_MSG_DOORBELL, 0);
  tr_frame_hdr h;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), 11);
  ck_assert_uint_eq(h.type, TR_MSG_HELLO);
  ck_assert_int_eq(tr_frame_parse(buf + 11, 8, &h), 8);
  ck_assert_uint_eq(h.type, TR_MSG_DOORBELL);
}
END_TEST

START_TEST(test_frame_max_payload_accepted) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, TR_FRAME_MAX_PAYLOAD);
  tr_frame_hdr h;
  /* Header fine, payload still missing. */
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), 0);
  ck_assert_uint_eq(h.len, TR_FRAME_MAX_PAYLOAD);
}
END_TEST

START_TEST(test_frame_oversized) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, TR_FRAME_MAX_PAYLOAD + 1);
  tr_frame_hdr h;
  /* Refused from the header alone, before any payload arrives. */
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), -EMSGSIZE);
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, 0xffffffffu);
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), -EMSGSIZE);
}
END_TEST

START_TEST(test_frame_type_zero) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, 0, 0);
  tr_frame_hdr h;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), -EPROTO);
}
END_TEST

START_TEST(test_frame_bad_flags) {
  uint8_t buf[8];
  tr_frame_hdr_encode(buf, TR_MSG_HELLO, 0);
  buf[6] = 1;
  tr_frame_hdr h;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), -EPROTO);
  buf[6] = 0;
  buf[7] = 0x80;
  ck_assert_int_eq(tr_frame_parse(buf, sizeof(buf), &h), -EPROTO);
}
END_TEST

START_TEST(test_frame_names) {
  ck_assert_str_eq(tr_msg_name(TR_MSG_HELLO), "HELLO");
  ck_assert_str_eq(tr_msg_name(TR_MSG_SESSION_SUMMARY), "SESSION_SUMMARY");
  ck_assert_str_eq(tr_msg_name(999), "?");
}
END_TEST

static Suite *frame_suite(void) {
  Suite *s = suite_create("frame");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_frame_roundtrip);
  tcase_add_test(core, test_frame_little_endian);
  tcase_add_test(core, test_frame_empty_payload);
  tcase_add_test(core, test_frame_two_frames);
  suite_add_tcase(s, core);
  TCase *limits = tcase_create("limits");
  tcase_add_test(limits, test_frame_truncated_header);
  tcase_add_test(limits, test_frame_truncated_payload);
  tcase_add_test(limits, test_frame_max_payload_accepted);
  tcase_add_test(limits, test_frame_oversized);
  suite_add_tcase(s, limits);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_frame_type_zero);
  tcase_add_test(errors, test_frame_bad_flags);
  tcase_add_test(errors, test_frame_names);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(frame_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

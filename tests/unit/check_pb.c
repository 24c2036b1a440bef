/* check_pb.c: unit tests of the protocol-buffers encoder (output/pb.c),
 * checked byte for byte against the wire format's published examples and
 * hand-encoded messages. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "output/pb.h"

#define ck_assert_bytes(pb, lit)                                      \
  do {                                                                \
    static const uint8_t want_[] = lit;                               \
    ck_assert_uint_eq((pb)->len, sizeof(want_) - 1);                  \
    ck_assert_int_eq(memcmp((pb)->buf, want_, sizeof(want_) - 1), 0); \
  } while (0)

START_TEST(test_pb_varint) {
  uint8_t buf[64];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  /* The encoding guide's example: field 1 = 150 is 08 96 01. */
  tr_pb_uint(&pb, 1, 150);
  ck_assert_bytes(&pb, "\x08\x96\x01");

  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_uint(&pb, 58, 3); /* a two-byte tag: (58 << 3) | 0 = 464 */
  ck_assert_bytes(&pb, "\xd0\x03\x03");

  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_uint(&pb, 2, UINT64_MAX);
  ck_assert_bytes(&pb, "\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");

  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_int(&pb, 4, -1); /* int64 -1: ten bytes, not zigzag */
  ck_assert_bytes(&pb, "\x20\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01");

  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_bool(&pb, 2, true);
  tr_pb_uint(&pb, 3, 0);
  ck_assert_bytes(&pb, "\x10\x01\x18\x00");

  ck_assert_uint_eq(tr_pb_varint_size(0), 1);
  ck_assert_uint_eq(tr_pb_varint_size(127), 1);
  ck_assert_uint_eq(tr_pb_varint_size(128), 2);
  ck_assert_uint_eq(tr_pb_varint_size(UINT64_MAX), 10);
}
END_TEST

START_TEST(test_pb_double) {
  uint8_t buf[32];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_double(&pb, 44, 1.5); /* tag (44 << 3) | 1 = 353 = e1 02 */
  ck_assert_bytes(&pb, "\xe1\x02\x00\x00\x00\x00\x00\x00\xf8\x3f");
  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_double(&pb, 5, NAN);
  ck_assert_uint_eq(pb.len, 9);
  double back;
  memcpy(&back, buf + 1, 8);
  ck_assert(isnan(back));
}
END_TEST

START_TEST(test_pb_bytes_and_nesting) {
  uint8_t buf[512];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  /* The guide's example: message { string b = 2 } with "testing". */
  tr_pb_bytes(&pb, 2, "testing", 7);
  ck_assert_bytes(&pb, "\x12\x07testing");

  /* The guide's nested example: field 3 holding {1: 150}. */
  tr_pb_init(&pb, buf, sizeof(buf));
  size_t m = tr_pb_begin(&pb, 3);
  tr_pb_uint(&pb, 1, 150);
  tr_pb_end(&pb, m);
  ck_assert_bytes(&pb, "\x1a\x03\x08\x96\x01");

  /* Two levels, the inner one empty. */
  tr_pb_init(&pb, buf, sizeof(buf));
  size_t outer = tr_pb_begin(&pb, 1);
  size_t inner = tr_pb_begin(&pb, 8);
  tr_pb_end(&pb, inner);
  tr_pb_uint(&pb, 2, 1);
  tr_pb_end(&pb, outer);
  ck_assert_bytes(&pb, "\x0a\x04\x42\x00\x10\x01");
}
END_TEST

START_TEST(test_pb_long_nested_body_moves) {
  /* A body of 200 bytes needs a two-byte length: the encoder shifts it. */
  uint8_t buf[512];
  char payload[197];
  memset(payload, 'x', sizeof(payload));
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_uint(&pb, 9, 1);
  size_t m = tr_pb_begin(&pb, 1);
  tr_pb_bytes(&pb, 2, payload, sizeof(payload)); /* 1 + 2 + 197 = 200 */
  tr_pb_end(&pb, m);
  ck_assert(!pb.overflow);
  ck_assert_uint_eq(pb.len, 2 + 1 + 2 + 200);
  ck_assert_int_eq(buf[2], 0x0a);
  ck_assert_int_eq(buf[3], 0xc8); /* 200 = c8 01 */
  ck_assert_int_eq(buf[4], 0x01);
  ck_assert_int_eq(buf[5], 0x12);
  ck_assert_int_eq(buf[6], 0xc5); /* 197 = c5 01 */
  ck_assert_int_eq(buf[7], 0x01);
  ck_assert_int_eq(buf[8], 'x');
  ck_assert_int_eq(buf[pb.len - 1], 'x');
}
END_TEST

START_TEST(test_pb_utf8_replaces_invalid) {
  uint8_t buf[64];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_utf8(&pb, 2, "a\xc3\xa9", 3); /* valid: copied */
  ck_assert_bytes(&pb,
                  "\x12\x03"
                  "a\xc3\xa9");
  tr_pb_init(&pb, buf, sizeof(buf));
  /* A stray continuation byte and a truncated 3-byte sequence. */
  tr_pb_utf8(&pb, 2, "\x80z\xe2\x82", 4);
  ck_assert_bytes(&pb, "\x12\x07\xef\xbf\xbdz\xef\xbf\xbd");
}
END_TEST

START_TEST(test_pb_overflow_is_sticky) {
  uint8_t buf[8];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  tr_pb_bytes(&pb, 1, "0123456789", 10);
  ck_assert(pb.overflow);
  ck_assert_uint_eq(pb.len, 0);
  tr_pb_uint(&pb, 1, 1); /* nothing more is written */
  ck_assert_uint_eq(pb.len, 0);

  /* A nested body that outgrows the buffer only when its length needs a
   * second byte. */
  uint8_t small[131];
  char payload[126];
  memset(payload, 'y', sizeof(payload));
  tr_pb_init(&pb, small, sizeof(small));
  size_t m = tr_pb_begin(&pb, 1);
  tr_pb_bytes(&pb, 2, payload, 125); /* body 127: a 1-byte length */
  tr_pb_end(&pb, m);
  ck_assert(!pb.overflow);
  ck_assert_uint_eq(pb.len, 129);
  tr_pb_init(&pb, small, 130);
  m = tr_pb_begin(&pb, 1);
  tr_pb_bytes(&pb, 2, payload, 126); /* body 128 fills the buffer ... */
  ck_assert(!pb.overflow);
  ck_assert_uint_eq(pb.len, 130);
  tr_pb_end(&pb, m); /* ... and its length needs a second byte */
  ck_assert(pb.overflow);
}
END_TEST

static Suite *pb_suite(void) {
  Suite *s = suite_create("pb");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_pb_varint);
  tcase_add_test(core, test_pb_double);
  tcase_add_test(core, test_pb_bytes_and_nesting);
  tcase_add_test(core, test_pb_long_nested_body_moves);
  tcase_add_test(core, test_pb_utf8_replaces_invalid);
  suite_add_tcase(s, core);
  TCase *limits = tcase_create("limits");
  tcase_add_test(limits, test_pb_overflow_is_sticky);
  suite_add_tcase(s, limits);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pb_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}

/* check_msg.c: unit tests of the control messages' codec (proto/msg.c):
 * round trips, the exact bytes each message has always had on the wire,
 * and the daemon-side refusals of what a hostile peer may send. */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/mp.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"

static msgpack_sbuffer sb, want;
static msgpack_packer pk, wpk;
static msgpack_unpacked up;

static void setup(void) {
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_sbuffer_init(&want);
  msgpack_packer_init(&wpk, &want, msgpack_sbuffer_write);
  msgpack_unpacked_init(&up);
}

static void teardown(void) {
  msgpack_sbuffer_destroy(&sb);
  msgpack_sbuffer_destroy(&want);
  msgpack_unpacked_destroy(&up);
}

/* The map packed into sb so far, unpacked. */
static const msgpack_object *unpacked(void) {
  size_t off = 0;
  ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  ck_assert_uint_eq(off, sb.size);
  return &up.data;
}

/* sb holds exactly the bytes packed into want. */
static void assert_same_bytes(void) {
  ck_assert_uint_eq(sb.size, want.size);
  ck_assert_mem_eq(sb.data, want.data, sb.size);
}

static bool str_eq(tr_msg_str s, const char *lit) {
  return s.ptr != NULL && s.len == strlen(lit) &&
         memcmp(s.ptr, lit, s.len) == 0;
}

/* The argv of `prog -x`, as /proc/self/cmdline holds it. */
static const char ARGV[] = "/usr/bin/prog\0-x";

static tr_msg_hello a_hello(bool producer) {
  tr_msg_hello h = {.producer = producer,
                    .pid = 4242,
                    .ppid = 1,
                    .argv = ARGV,
                    .argv_len = sizeof(ARGV),
                    .name = tr_msg_cstr("prog"),
                    .now_ns = 123456789012345ull,
                    .arena_size = producer ? TR_ARENA_DEFAULT_SIZE : 0,
                    .tsc = producer};
  return h;
}

/* ---- round trips ------------------------------------------------------- */

START_TEST(test_msg_hello_roundtrip) {
  for (int producer = 0; producer <= 1; producer++) {
    tr_msg_hello h = a_hello(producer), out;
    sb.size = 0;
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    tr_msg_hello_pack(&pk, &h);
    tr_msg_err err;
    ck_assert_int_eq(tr_msg_hello_unpack(unpacked(), &out, &err), 0);
    ck_assert(out.producer == (bool)producer);
    ck_assert_uint_eq(out.pid, 4242);
    ck_assert(out.has_ppid);
    ck_assert_uint_eq(out.ppid, 1);
    ck_assert(str_eq(out.argv0, "/usr/bin/prog"));
    ck_assert(str_eq(out.name, "prog"));
    ck_assert_uint_eq(out.now_ns, 123456789012345ull);
    ck_assert_uint_eq(out.arena_size, producer ? TR_ARENA_DEFAULT_SIZE : 0);
    ck_assert(out.tsc == (bool)producer);
  }
}
END_TEST

START_TEST(test_msg_welcome_roundtrip) {
  tr_msg_welcome w = {TR_PROTO_VERSION, 77, true, TR_RECORD_MAX_EXTRA}, out;
  tr_msg_welcome_pack(&pk, &w);
  ck_assert_int_eq(tr_msg_welcome_unpack(unpacked(), &out, NULL), 0);
  ck_assert_uint_eq(out.version, TR_PROTO_VERSION);
  ck_assert_uint_eq(out.daemon_pid, 77);
  ck_assert(out.tsc);
  ck_assert_uint_eq(out.max_extra, TR_RECORD_MAX_EXTRA);
}
END_TEST

START_TEST(test_msg_session_create_roundtrip) {
  tr_msg_session_create c = {tr_msg_cstr("/tmp/t.pftrace"),
                             tr_msg_cstr(TR_FORMAT_NAME_PERFETTO), 5000, 0},
                        out;
  tr_msg_session_create_pack(&pk, &c);
  ck_assert_int_eq(tr_msg_session_create_unpack(unpacked(), &out, NULL), 0);
  ck_assert(str_eq(out.path, "/tmp/t.pftrace"));
  ck_assert(str_eq(out.format, TR_FORMAT_NAME_PERFETTO));
  ck_assert_uint_eq(out.min_duration_ns, 5000);
}
END_TEST

START_TEST(test_msg_session_created_roundtrip) {
  tr_msg_session_created c = {"00112233445566778899aabbccddeeff", 9}, out;
  tr_msg_session_created_pack(&pk, &c);
  ck_assert_int_eq(tr_msg_session_created_unpack(unpacked(), &out, NULL), 0);
  ck_assert_str_eq(out.token, c.token);
  ck_assert_uint_eq(out.epoch, 9);
}
END_TEST

START_TEST(test_msg_session_join_roundtrip) {
  tr_msg_session_join j = {tr_msg_cstr("abc")}, out;
  tr_msg_session_join_pack(&pk, &j);
  ck_assert_int_eq(tr_msg_session_join_unpack(unpacked(), &out, NULL), 0);
  ck_assert(str_eq(out.token, "abc"));
}
END_TEST

START_TEST(test_msg_session_joined_roundtrip) {
  tr_msg_session_joined j = {true, 12}, out;
  tr_msg_session_joined_pack(&pk, &j);
  ck_assert_int_eq(tr_msg_session_joined_unpack(unpacked(), &out, NULL), 0);
  ck_assert(out.active);
  ck_assert_uint_eq(out.epoch, 12);
}
END_TEST

START_TEST(test_msg_ring_add_roundtrip) {
  tr_msg_ring_add r = {31337, 65536, tr_msg_cstr("MainThread")}, out;
  tr_msg_ring_add_pack(&pk, &r);
  ck_assert_int_eq(tr_msg_ring_add_unpack(unpacked(), &out, NULL), 0);
  ck_assert_uint_eq(out.tid, 31337);
  ck_assert_uint_eq(out.slots, 65536);
  ck_assert(str_eq(out.name, "MainThread"));
}
END_TEST

START_TEST(test_msg_session_summary_roundtrip) {
  tr_msg_session_summary s = {.processes = 1,
                              .threads = 2,
                              .events = 3,
                              .dropped = 4,
                              .late = 5,
                              .malformed = 6,
                              .unmatched = 7,
                              .filtered = 8,
                              .bytes = UINT64_MAX,
                              .path = tr_msg_cstr("/x/y.json")},
                         out;
  tr_msg_session_summary_pack(&pk, &s);
  ck_assert_int_eq(tr_msg_session_summary_unpack(unpacked(), &out, NULL), 0);
  ck_assert(str_eq(out.path, "/x/y.json"));
  out.path = s.path;
  ck_assert_mem_eq(&out, &s, sizeof(s));
}
END_TEST

START_TEST(test_msg_summary_unjoined_roundtrip) {
  tr_msg_child kids[2] = {
      {.pid = 41,
       .path = tr_msg_cstr("/usr/bin/python3"),
       .argv = "python3\0-S\0x.py",
       .argv_len = 16},
      {.pid = 42, .path = tr_msg_cstr("python3"), .argv = "", .argv_len = 0},
  };
  tr_msg_session_summary s = {.path = tr_msg_cstr("/t.json"),
                              .unjoined = kids,
                              .nunjoined = 2,
                              .unjoined_omitted = 5},
                         out;
  tr_msg_session_summary_pack(&pk, &s);
  ck_assert_int_eq(tr_msg_session_summary_unpack(unpacked(), &out, NULL), 0);
  ck_assert_uint_eq(out.nunjoined, 2);
  ck_assert_uint_eq(out.unjoined_omitted, 5);
  tr_msg_child c;
  ck_assert_int_eq(tr_msg_child_unpack(&out.unjoined_list[0], &c, NULL), 0);
  ck_assert_uint_eq(c.pid, 41);
  ck_assert(str_eq(c.path, "/usr/bin/python3"));
  ck_assert_uint_eq(c.argc, 3);
  ck_assert(str_eq(tr_msg_child_arg(&c, 1), "-S"));
  ck_assert(str_eq(tr_msg_child_arg(&c, 2), "x.py"));
  ck_assert(!c.failed);
  ck_assert_int_eq(tr_msg_child_unpack(&out.unjoined_list[1], &c, NULL), 0);
  ck_assert_uint_eq(c.pid, 42);
  ck_assert_uint_eq(c.argc, 0);
}
END_TEST

START_TEST(test_msg_process_info_roundtrip) {
  tr_msg_process_info p = {.has_ppid = true,
                           .ppid = 99,
                           .name = tr_msg_cstr("ForkPoolWorker-3")},
                      out;
  tr_msg_process_info_pack(&pk, &p);
  ck_assert_int_eq(tr_msg_process_info_unpack(unpacked(), &out, NULL), 0);
  ck_assert(out.has_ppid);
  ck_assert_uint_eq(out.ppid, 99);
  ck_assert(str_eq(out.name, "ForkPoolWorker-3"));
  ck_assert(!out.has_child);
}
END_TEST

START_TEST(test_msg_process_info_child_roundtrip) {
  tr_msg_process_info p = {.has_child = true,
                           .child = {.pid = 7,
                                     .path = tr_msg_cstr("/bin/python3"),
                                     .argv = "python3\0-c\0pass",
                                     .argv_len = 16,
                                     .failed = true}},
                      out;
  tr_msg_process_info_pack(&pk, &p);
  ck_assert_int_eq(tr_msg_process_info_unpack(unpacked(), &out, NULL), 0);
  ck_assert(!out.has_ppid && out.name.ptr == NULL && out.has_child);
  ck_assert_uint_eq(out.child.pid, 7);
  ck_assert(str_eq(out.child.path, "/bin/python3"));
  ck_assert_uint_eq(out.child.argc, 3);
  ck_assert(str_eq(tr_msg_child_arg(&out.child, 2), "pass"));
  ck_assert(out.child.failed);
}
END_TEST

START_TEST(test_msg_status_reply_roundtrip) {
  tr_msg_status_reply r = {.version = tr_msg_cstr("1.2.3"),
                           .protocol = 1,
                           .daemon_pid = 10,
                           .daemon_uid = 1000,
                           .uptime_ns = 5,
                           .socket = tr_msg_cstr("/run/t.sock"),
                           .mode = tr_msg_cstr(TR_MODE_SYSTEM),
                           .connections = 3,
                           .sessions_total = 4,
                           .record_rate_per_uid = 100,
                           .viewer_uid = 0,
                           .sessions_omitted = 2,
                           .nsessions = 2},
                      out;
  tr_msg_status_reply_pack(&pk, &r);
  for (uint64_t i = 0; i < 2; i++) {
    tr_msg_status_session s = {
        i, 1000, 2, 1, 3, 4, 5, 6, 7, 8 + i, tr_msg_cstr(i ? "/b" : "/a")};
    tr_msg_status_session_pack(&pk, &s);
  }
  ck_assert_int_eq(tr_msg_status_reply_unpack(unpacked(), &out, NULL), 0);
  ck_assert(str_eq(out.version, "1.2.3"));
  ck_assert(str_eq(out.socket, "/run/t.sock"));
  ck_assert(str_eq(out.mode, TR_MODE_SYSTEM));
  ck_assert_uint_eq(out.daemon_uid, 1000);
  ck_assert_uint_eq(out.record_rate_per_uid, 100);
  ck_assert_uint_eq(out.sessions_omitted, 2);
  ck_assert_uint_eq(out.nsessions, 2);
  for (uint32_t i = 0; i < 2; i++) {
    tr_msg_status_session s;
    ck_assert_int_eq(tr_msg_status_session_unpack(&out.sessions[i], &s, NULL),
                     0);
    ck_assert_uint_eq(s.id, i);
    ck_assert_uint_eq(s.owner, 1000);
    ck_assert_uint_eq(s.age_ns, 8 + i);
    ck_assert(str_eq(s.path, i ? "/b" : "/a"));
  }
}
END_TEST

START_TEST(test_msg_error_roundtrip) {
  tr_msg_error e = {EACCES, tr_msg_cstr("the session belongs to another user")},
               out;
  tr_msg_error_pack(&pk, &e);
  ck_assert_int_eq(tr_msg_error_unpack(unpacked(), &out, NULL), 0);
  ck_assert_int_eq(out.code, EACCES);
  ck_assert(str_eq(out.message, "the session belongs to another user"));
}
END_TEST

START_TEST(test_msg_stopping_roundtrip) {
  tr_msg_stopping s = {4321, 3}, out;
  tr_msg_stopping_pack(&pk, &s);
  ck_assert_int_eq(tr_msg_stopping_unpack(unpacked(), &out, NULL), 0);
  ck_assert_uint_eq(out.daemon_pid, 4321);
  ck_assert_uint_eq(out.sessions, 3);
}
END_TEST

/* ---- the wire: the bytes version-1 peers have always sent ---------------
 * Each expectation is the map as the code before the codec packed it, key
 * by key, so a change of order, key or integer width fails here. */

START_TEST(test_msg_wire_hello) {
  for (int producer = 0; producer <= 1; producer++) {
    sb.size = want.size = 0;
    tr_msg_hello h = a_hello(producer);
    tr_msg_hello_pack(&pk, &h);
    msgpack_pack_map(&wpk, producer ? 11 : 9);
    tr_mp_kv_str(&wpk, "magic", "traced");
    tr_mp_kv_u64(&wpk, "version", 1);
    tr_mp_kv_str(&wpk, "role", producer ? "producer" : "control");
    tr_mp_kv_u64(&wpk, "pid", 4242);
    tr_mp_kv_u64(&wpk, "ppid", 1);
    tr_mp_str(&wpk, "argv");
    msgpack_pack_array(&wpk, 2);
    tr_mp_str(&wpk, "/usr/bin/prog");
    tr_mp_str(&wpk, "-x");
    tr_mp_kv_str(&wpk, "name", "prog");
    tr_mp_kv_str(&wpk, "clock", "monotonic");
    tr_mp_kv_u64(&wpk, "now_ns", 123456789012345ull);
    if (producer) {
      tr_mp_kv_u64(&wpk, "arena_size", TR_ARENA_DEFAULT_SIZE);
      tr_mp_kv_bool(&wpk, "tsc", true);
    }
    assert_same_bytes();
  }
}
END_TEST

START_TEST(test_msg_wire_hello_argv_cut) {
  /* /proc/self/cmdline read short: the last, unterminated string is not
   * sent. */
  tr_msg_hello h = a_hello(false);
  h.argv_len = sizeof(ARGV) - 2;
  tr_msg_hello_pack(&pk, &h);
  tr_msg_err err;
  tr_msg_hello out;
  ck_assert_int_eq(tr_msg_hello_unpack(unpacked(), &out, &err), 0);
  const msgpack_object *argv = tr_mp_get(&up.data, "argv");
  ck_assert_ptr_nonnull(argv);
  ck_assert_uint_eq(argv->via.array.size, 1);
}
END_TEST

START_TEST(test_msg_wire_daemon_replies) {
  tr_msg_welcome_pack(&pk, &(tr_msg_welcome){1, 4000, false, 256});
  msgpack_pack_map(&wpk, 4);
  tr_mp_kv_u64(&wpk, "version", 1);
  tr_mp_kv_u64(&wpk, "daemon_pid", 4000);
  tr_mp_kv_str(&wpk, "clock", "monotonic");
  tr_mp_kv_u64(&wpk, "max_extra", 256);

  tr_msg_session_created c = {"00112233445566778899aabbccddeeff", 300};
  tr_msg_session_created_pack(&pk, &c);
  msgpack_pack_map(&wpk, 2);
  tr_mp_kv_str(&wpk, "token", c.token);
  tr_mp_kv_u64(&wpk, "epoch", 300);

  tr_msg_session_joined_pack(&pk, &(tr_msg_session_joined){false, 0});
  msgpack_pack_map(&wpk, 2);
  tr_mp_kv_bool(&wpk, "active", false);
  tr_mp_kv_u64(&wpk, "epoch", 0);

  tr_msg_session_summary s = {.processes = 1,
                              .threads = 2,
                              .events = 70000,
                              .dropped = 4,
                              .late = 5,
                              .malformed = 6,
                              .unmatched = 7,
                              .filtered = 8,
                              .bytes = 1u << 31,
                              .path = tr_msg_cstr("/p")};
  tr_msg_session_summary_pack(&pk, &s);
  msgpack_pack_map(&wpk, 10);
  tr_mp_kv_u64(&wpk, "processes", 1);
  tr_mp_kv_u64(&wpk, "threads", 2);
  tr_mp_kv_u64(&wpk, "events", 70000);
  tr_mp_kv_u64(&wpk, "dropped", 4);
  tr_mp_kv_u64(&wpk, "late", 5);
  tr_mp_kv_u64(&wpk, "malformed", 6);
  tr_mp_kv_u64(&wpk, "unmatched", 7);
  tr_mp_kv_u64(&wpk, "filtered", 8);
  tr_mp_kv_u64(&wpk, "bytes", 1u << 31);
  tr_mp_kv_str(&wpk, "path", "/p");

  tr_msg_error_pack(&pk, &(tr_msg_error){EPROTO, tr_msg_cstr("bad")});
  msgpack_pack_map(&wpk, 2);
  tr_mp_kv_i64(&wpk, "code", EPROTO);
  tr_mp_kv_str(&wpk, "message", "bad");

  tr_msg_stopping_pack(&pk, &(tr_msg_stopping){4000, 2});
  msgpack_pack_map(&wpk, 2);
  tr_mp_kv_u64(&wpk, "daemon_pid", 4000);
  tr_mp_kv_u64(&wpk, "sessions", 2);
  assert_same_bytes();
}
END_TEST

START_TEST(test_msg_wire_status_reply) {
  tr_msg_status_reply r = {.version = tr_msg_cstr("0.1.0"),
                           .protocol = 1,
                           .daemon_pid = 2,
                           .daemon_uid = 3,
                           .uptime_ns = 4,
                           .socket = tr_msg_cstr("/s"),
                           .mode = tr_msg_cstr("private"),
                           .connections = 5,
                           .sessions_total = 6,
                           .record_rate_per_uid = 0,
                           .viewer_uid = 7,
                           .sessions_omitted = 8,
                           .nsessions = 1};
  tr_msg_status_reply_pack(&pk, &r);
  tr_msg_status_session s = {
      9, 10, 11, 12, 13, 14, 15, 16, 17, 18, tr_msg_cstr("/o")};
  tr_msg_status_session_pack(&pk, &s);
  msgpack_pack_map(&wpk, 13);
  tr_mp_kv_str(&wpk, "version", "0.1.0");
  tr_mp_kv_u64(&wpk, "protocol", 1);
  tr_mp_kv_u64(&wpk, "daemon_pid", 2);
  tr_mp_kv_u64(&wpk, "daemon_uid", 3);
  tr_mp_kv_u64(&wpk, "uptime_ns", 4);
  tr_mp_kv_str(&wpk, "socket", "/s");
  tr_mp_kv_str(&wpk, "mode", "private");
  tr_mp_kv_u64(&wpk, "connections", 5);
  tr_mp_kv_u64(&wpk, "sessions_total", 6);
  tr_mp_kv_u64(&wpk, "record_rate_per_uid", 0);
  tr_mp_kv_u64(&wpk, "viewer_uid", 7);
  tr_mp_kv_u64(&wpk, "sessions_omitted", 8);
  tr_mp_str(&wpk, "sessions");
  msgpack_pack_array(&wpk, 1);
  msgpack_pack_map(&wpk, 11);
  tr_mp_kv_u64(&wpk, "id", 9);
  tr_mp_kv_u64(&wpk, "owner", 10);
  tr_mp_kv_u64(&wpk, "processes", 11);
  tr_mp_kv_u64(&wpk, "members", 12);
  tr_mp_kv_u64(&wpk, "threads", 13);
  tr_mp_kv_u64(&wpk, "events", 14);
  tr_mp_kv_u64(&wpk, "events_per_s", 15);
  tr_mp_kv_u64(&wpk, "dropped", 16);
  tr_mp_kv_u64(&wpk, "bytes", 17);
  tr_mp_kv_u64(&wpk, "age_ns", 18);
  tr_mp_kv_str(&wpk, "path", "/o");
  assert_same_bytes();
}
END_TEST

START_TEST(test_msg_wire_client_requests) {
  for (uint64_t min = 0; min <= 1000; min += 1000) {
    tr_msg_session_create c = {tr_msg_cstr("/t.json.gz"),
                               tr_msg_cstr("json.gz"), min, 0};
    tr_msg_session_create_pack(&pk, &c);
    msgpack_pack_map(&wpk, min > 0 ? 3 : 2);
    tr_mp_kv_str(&wpk, "path", "/t.json.gz");
    tr_mp_kv_str(&wpk, "format", "json.gz");
    if (min > 0) tr_mp_kv_u64(&wpk, "min_duration_ns", min);
  }
  tr_msg_session_join_pack(&pk, &(tr_msg_session_join){tr_msg_cstr("t0k")});
  msgpack_pack_map(&wpk, 1);
  tr_mp_kv_str(&wpk, "token", "t0k");

  tr_msg_ring_add_pack(&pk,
                       &(tr_msg_ring_add){70000, 1024, tr_msg_cstr("worker")});
  msgpack_pack_map(&wpk, 3);
  tr_mp_kv_u64(&wpk, "tid", 70000);
  tr_mp_kv_u64(&wpk, "slots", 1024);
  tr_mp_kv_str(&wpk, "name", "worker");

  tr_msg_process_info_pack(&pk,
                           &(tr_msg_process_info){.name = tr_msg_cstr("w")});
  msgpack_pack_map(&wpk, 1);
  tr_mp_kv_str(&wpk, "name", "w");

  tr_msg_empty_pack(&pk);
  msgpack_pack_map(&wpk, 0);
  assert_same_bytes();
}
END_TEST

/* ---- refusals ---------------------------------------------------------- */

/* A HELLO map with the given keys replaced: each override is a key and a
 * packer of its value; a NULL packer leaves the key out. */
typedef void (*valfn)(msgpack_packer *);
static void v_str_traced(msgpack_packer *p) { tr_mp_str(p, "traced"); }
static void v_one(msgpack_packer *p) { msgpack_pack_uint64(p, 1); }
static void v_control(msgpack_packer *p) { tr_mp_str(p, "control"); }
static void v_producer(msgpack_packer *p) { tr_mp_str(p, "producer"); }
static void v_pid(msgpack_packer *p) { msgpack_pack_uint64(p, 100); }
static void v_mono(msgpack_packer *p) { tr_mp_str(p, "monotonic"); }
static void v_str_one(msgpack_packer *p) { tr_mp_str(p, "1"); }
static void v_two(msgpack_packer *p) { msgpack_pack_uint64(p, 2); }
static void v_zero(msgpack_packer *p) { msgpack_pack_uint64(p, 0); }
static void v_neg(msgpack_packer *p) { msgpack_pack_int64(p, -5); }
static void v_big(msgpack_packer *p) { msgpack_pack_uint64(p, 1ull << 40); }
static void v_nil(msgpack_packer *p) { msgpack_pack_nil(p); }
static void v_trace(msgpack_packer *p) { tr_mp_str(p, "trace"); }
static void v_realtime(msgpack_packer *p) { tr_mp_str(p, "realtime"); }
static void v_long(msgpack_packer *p) {
  char s[1000];
  memset(s, 'r', sizeof(s));
  msgpack_pack_str(p, sizeof(s));
  msgpack_pack_str_body(p, s, sizeof(s));
}
static void v_bin(msgpack_packer *p) {
  msgpack_pack_bin(p, 6);
  msgpack_pack_bin_body(p, "traced", 6);
}

static int hello_with(const char *key, valfn val, bool producer,
                      tr_msg_err *err) {
  const char *keys[] = {"magic", "version", "role", "pid", "clock"};
  valfn vals[] = {v_str_traced, v_one, producer ? v_producer : v_control, v_pid,
                  v_mono};
  uint32_t n = 0;
  for (int i = 0; i < 5; i++)
    if (key == NULL || strcmp(keys[i], key) != 0 || val != NULL) n++;
  msgpack_pack_map(&pk, n);
  for (int i = 0; i < 5; i++) {
    valfn v = vals[i];
    if (key != NULL && strcmp(keys[i], key) == 0) {
      if (val == NULL) continue;
      v = val;
    }
    tr_mp_str(&pk, keys[i]);
    v(&pk);
  }
  tr_msg_hello out;
  memset(err, 0, sizeof(*err));
  return tr_msg_hello_unpack(unpacked(), &out, err);
}

START_TEST(test_msg_hello_refusals) {
  static const struct {
    const char *key;
    valfn val;
    const char *why;
  } cases[] = {
      {"magic", NULL, "HELLO: missing or wrong magic"},
      {"magic", v_trace, "HELLO: missing or wrong magic"},
      {"magic", v_bin, "HELLO: missing or wrong magic"},
      {"version", NULL, "HELLO: missing version"},
      {"version", v_str_one, "HELLO: missing version"},
      {"version", v_neg, "HELLO: missing version"},
      {"version", v_two, "HELLO: protocol version 2, this daemon speaks 1"},
      {"role", NULL, "HELLO: missing role"},
      {"role", v_one, "HELLO: missing role"},
      {"role", v_trace, "HELLO: unknown role 'trace'"},
      {"pid", NULL, "HELLO: missing or invalid pid"},
      {"pid", v_zero, "HELLO: missing or invalid pid"},
      {"pid", v_neg, "HELLO: missing or invalid pid"},
      {"pid", v_big, "HELLO: missing or invalid pid"},
      {"pid", v_str_one, "HELLO: missing or invalid pid"},
      {"clock", v_realtime, "HELLO: clock 'realtime' is not supported"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    sb.size = 0;
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    tr_msg_err err;
    ck_assert_int_eq(hello_with(cases[i].key, cases[i].val, false, &err),
                     -EPROTO);
    ck_assert_str_eq(err.text, cases[i].why);
  }
}
END_TEST

START_TEST(test_msg_hello_accepts) {
  tr_msg_err err;
  /* A clock that is not a string says nothing; no clock at all is fine. */
  ck_assert_int_eq(hello_with("clock", v_nil, false, &err), 0);
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(hello_with("clock", NULL, false, &err), 0);
}
END_TEST

START_TEST(test_msg_hello_order) {
  /* The first failed check is the one reported: version before role. */
  msgpack_pack_map(&pk, 2);
  tr_mp_kv_str(&pk, "magic", "traced");
  tr_mp_kv_u64(&pk, "version", 2);
  tr_msg_hello out;
  tr_msg_err err;
  ck_assert_int_eq(tr_msg_hello_unpack(unpacked(), &out, &err), -EPROTO);
  ck_assert_str_eq(err.text, "HELLO: protocol version 2, this daemon speaks 1");
}
END_TEST

START_TEST(test_msg_hello_producer_needs_arena_size) {
  tr_msg_err err;
  ck_assert_int_eq(hello_with(NULL, NULL, true, &err), -EPROTO);
  ck_assert_str_eq(err.text, "HELLO: producer without arena_size");
}
END_TEST

START_TEST(test_msg_hello_empty_payload) {
  /* An empty payload reaches the handler as no map at all. */
  tr_msg_hello out;
  tr_msg_err err;
  ck_assert_int_eq(tr_msg_hello_unpack(NULL, &out, &err), -EPROTO);
  ck_assert_str_eq(err.text, "HELLO: missing or wrong magic");
  msgpack_pack_array(&pk, 1);
  tr_mp_str(&pk, "magic");
  ck_assert_int_eq(tr_msg_hello_unpack(unpacked(), &out, &err), -EPROTO);
}
END_TEST

START_TEST(test_msg_oversized_strings) {
  /* A refusal quotes at most 32 bytes of what the peer sent. */
  tr_msg_err err;
  ck_assert_int_eq(hello_with("role", v_long, false, &err), -EPROTO);
  ck_assert_str_eq(err.text,
                   "HELLO: unknown role 'rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr'");
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  ck_assert_int_eq(hello_with("clock", v_long, false, &err), -EPROTO);
  ck_assert_uint_eq(strlen(err.text), strlen("HELLO: clock '' is not "
                                             "supported") +
                                          32);
  /* A token that is not TR_TOKEN_HEX_LEN characters is refused; a longer
   * one is cut to that length, as clients always did. */
  const char *tokens[] = {"", "0011", "00112233445566778899aabbccddeef"};
  for (size_t i = 0; i < 3; i++) {
    sb.size = 0;
    msgpack_unpacked_destroy(&up);
    msgpack_unpacked_init(&up);
    msgpack_pack_map(&pk, 1);
    tr_mp_kv_str(&pk, "token", tokens[i]);
    tr_msg_session_created c;
    ck_assert_int_eq(tr_msg_session_created_unpack(unpacked(), &c, &err),
                     -EPROTO);
  }
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  msgpack_pack_map(&pk, 1);
  tr_mp_kv_str(&pk, "token", "00112233445566778899aabbccddeeff-and-more");
  tr_msg_session_created c;
  ck_assert_int_eq(tr_msg_session_created_unpack(unpacked(), &c, &err), 0);
  ck_assert_str_eq(c.token, "00112233445566778899aabbccddeeff");
  /* Copies out of a message are cut to the buffer. */
  char buf[8];
  ck_assert_int_eq(tr_msg_strcpy(buf, sizeof(buf), tr_msg_cstr("0123456789")),
                   0);
  ck_assert_str_eq(buf, "0123456");
  strcpy(buf, "?");
  tr_msg_str absent = {NULL, 0};
  ck_assert_int_eq(tr_msg_strcpy(buf, sizeof(buf), absent), -ENOENT);
  ck_assert_str_eq(buf, "?");
}
END_TEST

START_TEST(test_msg_session_create_refusals) {
  tr_msg_session_create c;
  tr_msg_err err;
  msgpack_pack_map(&pk, 2);
  tr_mp_kv_str(&pk, "path", "x");
  tr_mp_kv_u64(&pk, "format", 3);
  ck_assert_int_eq(tr_msg_session_create_unpack(unpacked(), &c, &err), -EINVAL);
  ck_assert_str_eq(err.text, "SESSION_CREATE: format is not a string");
  /* No format (an older client), no path: JSON to a nameless output. */
  ck_assert_int_eq(tr_msg_session_create_unpack(NULL, &c, &err), 0);
  ck_assert_ptr_null(c.format.ptr);
  ck_assert(str_eq(c.path, ""));
  ck_assert_uint_eq(c.min_duration_ns, 0);
}
END_TEST

START_TEST(test_msg_session_join_refusals) {
  tr_msg_session_join j;
  tr_msg_err err;
  ck_assert_int_eq(tr_msg_session_join_unpack(NULL, &j, &err), -EPROTO);
  ck_assert_str_eq(err.text, "SESSION_JOIN without a token");
  msgpack_pack_map(&pk, 1);
  tr_mp_kv_u64(&pk, "token", 1234);
  ck_assert_int_eq(tr_msg_session_join_unpack(unpacked(), &j, &err), -EPROTO);
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  msgpack_pack_map(&pk, 1);
  tr_mp_str(&pk, "token");
  msgpack_pack_bin(&pk, 32);
  msgpack_pack_bin_body(&pk, "00000000000000000000000000000000", 32);
  ck_assert_int_eq(tr_msg_session_join_unpack(unpacked(), &j, &err), -EPROTO);
}
END_TEST

START_TEST(test_msg_ring_add_refusals) {
  tr_msg_ring_add r;
  tr_msg_err err;
  msgpack_pack_map(&pk, 1);
  tr_mp_kv_u64(&pk, "slots", 1024);
  ck_assert_int_eq(tr_msg_ring_add_unpack(unpacked(), &r, &err), -EPROTO);
  ck_assert_str_eq(err.text, "RING_ADD without tid or slots");
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  msgpack_pack_map(&pk, 3);
  tr_mp_kv_u64(&pk, "tid", 1);
  tr_mp_kv_i64(&pk, "slots", -1024);
  tr_mp_kv_u64(&pk, "name", 7);
  ck_assert_int_eq(tr_msg_ring_add_unpack(unpacked(), &r, &err), -EPROTO);
  /* A name that is not a string is no name. */
  sb.size = 0;
  msgpack_unpacked_destroy(&up);
  msgpack_unpacked_init(&up);
  msgpack_pack_map(&pk, 3);
  tr_mp_kv_u64(&pk, "tid", 1);
  tr_mp_kv_u64(&pk, "slots", 1024);
  tr_mp_kv_u64(&pk, "name", 7);
  ck_assert_int_eq(tr_msg_ring_add_unpack(unpacked(), &r, &err), 0);
  ck_assert(str_eq(r.name, ""));
}
END_TEST

START_TEST(test_msg_process_info_bounds) {
  /* A ppid beyond pid_t is ignored, not refused; an unknown key too. */
  msgpack_pack_map(&pk, 3);
  tr_mp_kv_u64(&pk, "ppid", 1ull << 32);
  tr_mp_kv_u64(&pk, "name", 5);
  tr_mp_kv_str(&pk, "future_key", "x");
  tr_msg_process_info p;
  ck_assert_int_eq(tr_msg_process_info_unpack(unpacked(), &p, NULL), 0);
  ck_assert(!p.has_ppid);
  ck_assert_ptr_null(p.name.ptr);
}
END_TEST

START_TEST(test_msg_client_defaults) {
  /* What clients read from a daemon that leaves keys out. */
  tr_msg_welcome w;
  ck_assert_int_eq(tr_msg_welcome_unpack(NULL, &w, NULL), 0);
  ck_assert_uint_eq(w.max_extra, TR_RECORD_MAX_EXTRA_V1);
  ck_assert(!w.tsc);
  tr_msg_error e;
  ck_assert_int_eq(tr_msg_error_unpack(NULL, &e, NULL), 0);
  ck_assert_int_eq(e.code, EPROTO);
  ck_assert_ptr_null(e.message.ptr);
  tr_msg_session_summary s;
  ck_assert_int_eq(tr_msg_session_summary_unpack(NULL, &s, NULL), 0);
  ck_assert_uint_eq(s.events + s.dropped + s.bytes + s.filtered, 0);
  ck_assert_ptr_null(s.path.ptr);
  tr_msg_status_reply r;
  ck_assert_int_eq(tr_msg_status_reply_unpack(NULL, &r, NULL), 0);
  ck_assert_uint_eq(r.nsessions, 0);
  ck_assert_ptr_null(r.sessions);
  tr_msg_session_created c;
  ck_assert_int_eq(tr_msg_session_created_unpack(NULL, &c, NULL), -EPROTO);
}
END_TEST

static Suite *msg_suite(void) {
  Suite *s = suite_create("msg");
  TCase *core = tcase_create("core");
  tcase_add_checked_fixture(core, setup, teardown);
  tcase_add_test(core, test_msg_hello_roundtrip);
  tcase_add_test(core, test_msg_welcome_roundtrip);
  tcase_add_test(core, test_msg_session_create_roundtrip);
  tcase_add_test(core, test_msg_session_created_roundtrip);
  tcase_add_test(core, test_msg_session_join_roundtrip);
  tcase_add_test(core, test_msg_session_joined_roundtrip);
  tcase_add_test(core, test_msg_ring_add_roundtrip);
  tcase_add_test(core, test_msg_session_summary_roundtrip);
  tcase_add_test(core, test_msg_summary_unjoined_roundtrip);
  tcase_add_test(core, test_msg_process_info_roundtrip);
  tcase_add_test(core, test_msg_process_info_child_roundtrip);
  tcase_add_test(core, test_msg_status_reply_roundtrip);
  tcase_add_test(core, test_msg_error_roundtrip);
  tcase_add_test(core, test_msg_stopping_roundtrip);
  suite_add_tcase(s, core);
  TCase *wire = tcase_create("wire");
  tcase_add_checked_fixture(wire, setup, teardown);
  tcase_add_test(wire, test_msg_wire_hello);
  tcase_add_test(wire, test_msg_wire_hello_argv_cut);
  tcase_add_test(wire, test_msg_wire_daemon_replies);
  tcase_add_test(wire, test_msg_wire_status_reply);
  tcase_add_test(wire, test_msg_wire_client_requests);
  suite_add_tcase(s, wire);
  TCase *errors = tcase_create("errors");
  tcase_add_checked_fixture(errors, setup, teardown);
  tcase_add_test(errors, test_msg_hello_refusals);
  tcase_add_test(errors, test_msg_hello_accepts);
  tcase_add_test(errors, test_msg_hello_order);
  tcase_add_test(errors, test_msg_hello_producer_needs_arena_size);
  tcase_add_test(errors, test_msg_hello_empty_payload);
  tcase_add_test(errors, test_msg_session_create_refusals);
  tcase_add_test(errors, test_msg_session_join_refusals);
  tcase_add_test(errors, test_msg_ring_add_refusals);
  tcase_add_test(errors, test_msg_process_info_bounds);
  tcase_add_test(errors, test_msg_client_defaults);
  suite_add_tcase(s, errors);
  TCase *limits = tcase_create("limits");
  tcase_add_checked_fixture(limits, setup, teardown);
  tcase_add_test(limits, test_msg_oversized_strings);
  suite_add_tcase(s, limits);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(msg_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

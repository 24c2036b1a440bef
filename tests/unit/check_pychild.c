/* check_pychild.c: unit tests of the Python children a session remembers
 * (daemon/pychild.c), the `child` map that announces them (proto/msg.c)
 * and the lines that name those that never joined (libclient/src/conn.c). */
#include <check.h>
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/pychild.h"
#include "libclient/src/conn.h"
#include "proto/msg.h"

/* One announced child, packed as a client packs it and unpacked as the
 * daemon unpacks it. */
typedef struct wire {
  msgpack_sbuffer sb;
  msgpack_unpacked up;
  tr_msg_child c;
} wire;

static void wire_make(wire *w, uint32_t pid, const char *path,
                      const char *const *argv, size_t argc, bool failed) {
  tr_conn_child_buf buf;
  tr_msg_child out;
  tr_conn_child_make(&out, &buf, pid, path, argv, argc, failed);
  msgpack_sbuffer_init(&w->sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
  tr_msg_child_pack(&pk, &out);
  msgpack_unpacked_init(&w->up);
  size_t off = 0;
  ck_assert_int_eq(msgpack_unpack_next(&w->up, w->sb.data, w->sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  tr_msg_err err;
  ck_assert_int_eq(tr_msg_child_unpack(&w->up.data, &w->c, &err), 0);
}

static void wire_free(wire *w) {
  msgpack_unpacked_destroy(&w->up);
  msgpack_sbuffer_destroy(&w->sb);
}

#define ARGV(...)                     \
  (const char *const[]){__VA_ARGS__}, \
      sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* Whether `path argv...` is taken for Python, and as which interpreter
 * ("" when not). */
static const char *classify(const char *path, const char *const *argv,
                            size_t argc) {
  static char interp[256];
  wire w;
  wire_make(&w, 42, path, argv, argc, false);
  tr_msg_str s;
  bool py = tr_pychild_is_python(&w.c, &s, NULL);
  interp[0] = '\0';
  if (py) tr_msg_strcpy(interp, sizeof(interp), s);
  wire_free(&w);
  return interp;
}

START_TEST(test_pychild_python_names) {
  ck_assert_str_eq(classify("python", ARGV("python")), "python");
  ck_assert_str_eq(classify("/usr/bin/python3", ARGV("python3", "x.py")),
                   "/usr/bin/python3");
  ck_assert_str_eq(classify("/opt/py/bin/python3.12", ARGV("python3.12")),
                   "/opt/py/bin/python3.12");
  ck_assert_str_eq(classify("/home/u/.venv/bin/python", ARGV("python")),
                   "/home/u/.venv/bin/python");
  ck_assert_str_eq(classify("pythonw", ARGV("pythonw")), "pythonw");
  ck_assert_str_eq(classify("python3.13t", ARGV("python3.13t")), "python3.13t");
  ck_assert_str_eq(classify("/usr/bin/pypy3", ARGV("pypy3")), "/usr/bin/pypy3");
  ck_assert_str_eq(classify("C:/Py/python.exe", ARGV("python.exe")),
                   "C:/Py/python.exe");
  /* Not interpreters. */
  ck_assert_str_eq(classify("/usr/bin/python3-config", ARGV("x")), "");
  ck_assert_str_eq(classify("/usr/bin/python3.12-dbg-config", ARGV("x")), "");
  ck_assert_str_eq(classify("/usr/bin/pythonista", ARGV("x")), "");
  ck_assert_str_eq(classify("/bin/ls", ARGV("ls", "python3")), "");
  ck_assert_str_eq(classify("/usr/lib/python3/x", ARGV("x")), "");
}
END_TEST

START_TEST(test_pychild_env_and_shell) {
  ck_assert_str_eq(classify("/usr/bin/env", ARGV("env", "python3", "x.py")),
                   "python3");
  ck_assert_str_eq(classify("/usr/bin/env", ARGV("env", "-i", "-u", "HOME",
                                                 "A=1", "python3.12", "x.py")),
                   "python3.12");
  ck_assert_str_eq(classify("/usr/bin/env", ARGV("env", "ls", "python3")), "");
  /* A shell execs a lone simple command: the interpreter keeps the pid. */
  ck_assert_str_eq(classify("/bin/sh", ARGV("/bin/sh", "-c", "python3 x.py")),
                   "python3");
  ck_assert_str_eq(
      classify("/bin/sh", ARGV("/bin/sh", "-c", "  A=1 exec python3 x.py")),
      "python3");
  ck_assert_str_eq(
      classify("/bin/bash", ARGV("bash", "-c", "python3 -c 'print(1); 2'")),
      "python3");
  /* More than one command, or an expansion: the shell forks, so the
   * announced pid is not the interpreter's. */
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "python3 a; ls")), "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "cd d && python3 x")),
                   "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "python3 x | cat")),
                   "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "python3 \"$X\"")), "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "python3 'x")), "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "-c", "ls")), "");
  ck_assert_str_eq(classify("/bin/sh", ARGV("sh", "x.sh", "python3")), "");
}
END_TEST

/* Announces `path argv` as pid by `announcer` into l. */
static int announce(tr_pychildren *l, uint32_t pid, uint32_t announcer,
                    bool joined_already, const char *path, bool failed) {
  wire w;
  wire_make(&w, pid, path, ARGV(path, "-c", "pass"), failed);
  tr_pychild_seen seen = {joined_already, false};
  int rc = tr_pychildren_announce(l, &w.c, announcer, seen);
  wire_free(&w);
  return rc;
}

static uint32_t unjoined_pids(const tr_pychildren *l, uint32_t *pids,
                              uint32_t max, uint64_t *omitted) {
  tr_msg_child out[16];
  ck_assert_uint_le(max, 16);
  uint32_t n = tr_pychildren_unjoined(l, out, max, omitted);
  for (uint32_t i = 0; i < n; i++) pids[i] = (uint32_t)out[i].pid;
  return n;
}

START_TEST(test_pychild_joins) {
  tr_pychildren l;
  tr_pychildren_init(&l);
  uint32_t pids[16];
  uint64_t omitted;
  ck_assert_int_eq(announce(&l, 10, 5, false, "/bin/ls", false), 0);
  ck_assert_uint_eq(l.n, 0); /* not Python: not remembered */
  ck_assert_int_eq(announce(&l, 10, 5, false, "/usr/bin/python3", false), 0);
  ck_assert_int_eq(announce(&l, 11, 5, true, "/usr/bin/python3", false), 0);
  ck_assert_int_eq(announce(&l, 12, 5, false, "python3", false), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 2);
  ck_assert_uint_eq(pids[0], 10);
  ck_assert_uint_eq(pids[1], 12);
  ck_assert_uint_eq(omitted, 0);
  /* A join after the announcement. */
  tr_pychildren_joined(&l, 12, 1);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 1);
  ck_assert_uint_eq(pids[0], 10);
  /* The strings handed out are the announced ones. */
  tr_msg_child out[1];
  ck_assert_uint_eq(tr_pychildren_unjoined(&l, out, 1, &omitted), 1);
  ck_assert_uint_eq(out[0].path.len, strlen("/usr/bin/python3"));
  ck_assert_mem_eq(out[0].argv, "/usr/bin/python3\0-c\0pass\0",
                   out[0].argv_len);
  tr_pychildren_free(&l);
}
END_TEST

START_TEST(test_pychild_exec) {
  tr_pychildren l;
  tr_pychildren_init(&l);
  uint32_t pids[16];
  uint64_t omitted;
  /* pid 7 joined and now execs Python: joined before does not count. */
  ck_assert_int_eq(announce(&l, 7, 7, true, "/usr/bin/python3", false), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 1);
  tr_pychildren_joined(&l, 7, 1);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 0);
  /* It execs again, and that exec fails: nothing to name. */
  ck_assert_int_eq(announce(&l, 7, 7, true, "/usr/bin/python3", false), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 1);
  ck_assert_int_eq(announce(&l, 7, 7, true, "/usr/bin/python3", true), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 0);
  /* The same child announced twice (Popen and posix_spawn) is one. */
  ck_assert_int_eq(announce(&l, 9, 7, false, "/usr/bin/python3", false), 0);
  ck_assert_int_eq(announce(&l, 9, 7, false, "python3", false), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 1);
  tr_pychildren_free(&l);
}
END_TEST

START_TEST(test_pychild_shell) {
  tr_pychildren l;
  tr_pychildren_init(&l);
  uint32_t pids[16];
  uint64_t omitted;
  wire w;
  wire_make(&w, 20, "/bin/sh", ARGV("/bin/sh", "-c", "python3 x.py"), false);
  tr_pychild_seen none = {false, false};
  ck_assert_int_eq(tr_pychildren_announce(&l, &w.c, 1, none), 0);
  /* A shell that forks it: the interpreter's parent is the shell. */
  tr_pychildren_joined(&l, 21, 20);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 0);
  /* It joined before the announcement arrived. */
  tr_pychild_seen child = {false, true};
  wire_free(&w);
  wire_make(&w, 22, "/bin/sh", ARGV("/bin/sh", "-c", "python3 x.py"), false);
  ck_assert_int_eq(tr_pychildren_announce(&l, &w.c, 1, child), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 0);
  /* Not for a child started without a shell: its own pid must join. */
  wire_free(&w);
  wire_make(&w, 23, "/usr/bin/python3", ARGV("python3", "x.py"), false);
  ck_assert_int_eq(tr_pychildren_announce(&l, &w.c, 1, child), 0);
  tr_pychildren_joined(&l, 24, 23);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 1);
  ck_assert_uint_eq(pids[0], 23);
  wire_free(&w);
  tr_pychildren_free(&l);
}
END_TEST

START_TEST(test_pychild_limits) {
  tr_pychildren l;
  tr_pychildren_init(&l);
  uint32_t pids[16];
  uint64_t omitted;
  for (uint32_t pid = 100; pid < 112; pid++)
    ck_assert_int_eq(announce(&l, pid, 1, false, "python3", false), 0);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 8);
  ck_assert_uint_eq(pids[0], 100);
  ck_assert_uint_eq(pids[7], 107);
  ck_assert_uint_eq(omitted, 4);
  tr_pychildren_free(&l);

  /* Full: the joined make room; with none joined, a child is not
   * remembered and counted. */
  tr_pychildren_init(&l);
  for (uint32_t pid = 1000; pid < 1000 + TR_PYCHILD_MAX; pid++)
    ck_assert_int_eq(announce(&l, pid, 1, false, "python3", false), 0);
  ck_assert_int_eq(announce(&l, 5, 1, false, "python3", false), -ENOMEM);
  ck_assert_uint_eq(l.unchecked, 1);
  tr_pychildren_joined(&l, 1003, 1);
  ck_assert_int_eq(announce(&l, 6, 1, false, "python3", false), 0);
  ck_assert_uint_eq(l.n, TR_PYCHILD_MAX);
  ck_assert_uint_eq(unjoined_pids(&l, pids, 8, &omitted), 8);
  ck_assert_uint_eq(pids[3], 1004); /* order kept */
  ck_assert_uint_eq(omitted, TR_PYCHILD_MAX - 8);
  tr_pychildren_free(&l);
}
END_TEST

/* PROCESS_INFO with a `child` value built by `pack`, unpacked. */
static int process_info(void (*pack)(msgpack_packer *), char *why) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 1);
  msgpack_pack_str(&pk, 5);
  msgpack_pack_str_body(&pk, "child", 5);
  pack(&pk);
  msgpack_unpacked up;
  msgpack_unpacked_init(&up);
  size_t off = 0;
  ck_assert_int_eq(msgpack_unpack_next(&up, sb.data, sb.size, &off),
                   MSGPACK_UNPACK_SUCCESS);
  tr_msg_process_info pi;
  tr_msg_err err = {""};
  int rc = tr_msg_process_info_unpack(&up.data, &pi, &err);
  strcpy(why, err.text);
  msgpack_unpacked_destroy(&up);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

static void kstr(msgpack_packer *pk, const char *s) {
  msgpack_pack_str(pk, strlen(s));
  msgpack_pack_str_body(pk, s, strlen(s));
}

static void pack_no_pid(msgpack_packer *pk) {
  msgpack_pack_map(pk, 2);
  kstr(pk, "path");
  kstr(pk, "python3");
  kstr(pk, "argv");
  msgpack_pack_array(pk, 0);
}

static void pack_long_path(msgpack_packer *pk) {
  static char path[TR_CHILD_PATH_MAX + 2];
  memset(path, 'p', sizeof(path) - 1);
  msgpack_pack_map(pk, 3);
  kstr(pk, "pid");
  msgpack_pack_uint32(pk, 3);
  kstr(pk, "path");
  kstr(pk, path);
  kstr(pk, "argv");
  msgpack_pack_array(pk, 0);
}

static void pack_argv_number(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  kstr(pk, "pid");
  msgpack_pack_uint32(pk, 3);
  kstr(pk, "path");
  kstr(pk, "python3");
  kstr(pk, "argv");
  msgpack_pack_array(pk, 1);
  msgpack_pack_int(pk, 1);
}

static void pack_many_args(msgpack_packer *pk) {
  msgpack_pack_map(pk, 3);
  kstr(pk, "pid");
  msgpack_pack_uint32(pk, 3);
  kstr(pk, "path");
  kstr(pk, "python3");
  kstr(pk, "argv");
  msgpack_pack_array(pk, TR_CHILD_ARGC_MAX + 1);
  for (uint32_t i = 0; i <= TR_CHILD_ARGC_MAX; i++) kstr(pk, "a");
}

static void pack_not_map(msgpack_packer *pk) { msgpack_pack_int(pk, 7); }

START_TEST(test_pychild_refuses_bad_child) {
  char why[160];
  ck_assert_int_eq(process_info(pack_no_pid, why), -EPROTO);
  ck_assert_str_eq(why, "PROCESS_INFO: child without a valid pid");
  ck_assert_int_eq(process_info(pack_long_path, why), -EPROTO);
  ck_assert_str_eq(why, "PROCESS_INFO: child path longer than 1024 bytes");
  ck_assert_int_eq(process_info(pack_argv_number, why), -EPROTO);
  ck_assert_str_eq(why, "PROCESS_INFO: child argv holds a non-string");
  ck_assert_int_eq(process_info(pack_many_args, why), -EPROTO);
  ck_assert_str_eq(why, "PROCESS_INFO: child argv has more than 64 arguments");
  ck_assert_int_eq(process_info(pack_not_map, why), -EPROTO);
  ck_assert_str_eq(why, "PROCESS_INFO: child is not a map");
}
END_TEST

START_TEST(test_pychild_client_cuts_to_bounds) {
  static char big[TR_CHILD_ARGV_MAX];
  memset(big, 'a', sizeof(big) - 1);
  const char *argv[TR_CHILD_ARGC_MAX + 10];
  for (size_t i = 0; i < TR_CHILD_ARGC_MAX + 10; i++) argv[i] = "x";
  argv[2] = big;
  wire w;
  /* The big argument does not fit: argv ends before it. */
  wire_make(&w, 3, "python3", argv, TR_CHILD_ARGC_MAX + 10, false);
  ck_assert_uint_eq(w.c.argc, 2);
  wire_free(&w);
  argv[2] = "x";
  wire_make(&w, 3, "python3", argv, TR_CHILD_ARGC_MAX + 10, false);
  ck_assert_uint_eq(w.c.argc, TR_CHILD_ARGC_MAX);
  wire_free(&w);
}
END_TEST

static void summary_child(tr_summary_extra *x, uint32_t pid, const char *path,
                          const char *argv, size_t argv_len, uint32_t argc) {
  tr_summary_child *c = &x->unjoined[x->nunjoined++];
  c->pid = pid;
  snprintf(c->path, sizeof(c->path), "%s", path);
  memcpy(c->argv, argv, argv_len);
  c->argc = argc;
}

START_TEST(test_pychild_lines) {
  static tr_summary_extra x;
  memset(&x, 0, sizeof(x));
  char line[1536];
  ck_assert(!tr_summary_unjoined_text(&x, 0, line, sizeof(line)));
  summary_child(&x, 41, "/usr/bin/python3", "python3\0job.py\0-v", 18, 3);
  summary_child(&x, 42, "/v/bin/python", "/v/bin/python\0-S\0-c\0pass", 25, 4);
  const char long_args[] =
      "python3\0-c\0import os; print(os.getpid()) # and a comment that goes "
      "on for a long while after that";
  summary_child(&x, 43, "python3", long_args, sizeof(long_args), 3);
  summary_child(&x, 44, "python3", "/bin/sh\0-c\0python3 x.py", 24, 3);
  x.unjoined_omitted = 3;
  ck_assert(tr_summary_unjoined_text(&x, 0, line, sizeof(line)));
  ck_assert_str_eq(line,
                   "pid 41 never joined the session: /usr/bin/python3 (job.py "
                   "-v) ran without traced; install traced in that "
                   "interpreter: /usr/bin/python3 -m pip install traced");
  ck_assert(tr_summary_unjoined_text(&x, 1, line, sizeof(line)));
  ck_assert_str_eq(line,
                   "pid 42 never joined the session: /v/bin/python (-S -c "
                   "pass) ran without traced: -S leaves out site-packages, "
                   "where traced starts from; run it without -S to trace it");
  ck_assert(tr_summary_unjoined_text(&x, 2, line, sizeof(line)));
  ck_assert_str_eq(line,
                   "pid 43 never joined the session: python3 (-c import os; "
                   "print(os.getpid()) # and a comment that goes on for a "
                   "long...) ran without traced; install traced in that "
                   "interpreter: python3 -m pip install traced");
  ck_assert(tr_summary_unjoined_text(&x, 3, line, sizeof(line)));
  ck_assert_str_eq(line,
                   "pid 44 never joined the session: python3 (/bin/sh -c "
                   "python3 x.py) ran without traced; install traced in that "
                   "interpreter: python3 -m pip install traced");
  ck_assert(tr_summary_unjoined_text(&x, 4, line, sizeof(line)));
  ck_assert_str_eq(line,
                   "3 more Python processes never joined the session (not "
                   "listed)");
  ck_assert(!tr_summary_unjoined_text(&x, 5, line, sizeof(line)));
  ck_assert_str_eq(line, "");
}
END_TEST

static Suite *pychild_suite(void) {
  Suite *s = suite_create("pychild");
  TCase *core = tcase_create("core");
  tcase_add_test(core, test_pychild_python_names);
  tcase_add_test(core, test_pychild_env_and_shell);
  tcase_add_test(core, test_pychild_joins);
  tcase_add_test(core, test_pychild_exec);
  tcase_add_test(core, test_pychild_shell);
  tcase_add_test(core, test_pychild_lines);
  suite_add_tcase(s, core);
  TCase *limits = tcase_create("limits");
  tcase_add_test(limits, test_pychild_limits);
  tcase_add_test(limits, test_pychild_client_cuts_to_bounds);
  suite_add_tcase(s, limits);
  TCase *errors = tcase_create("errors");
  tcase_add_test(errors, test_pychild_refuses_bad_child);
  suite_add_tcase(s, errors);
  return s;
}

int main(void) {
  SRunner *sr = srunner_create(pychild_suite());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

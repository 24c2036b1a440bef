/* msg.c: the control messages' codec: each message's map packed from and
 * unpacked into its struct. */
#include "msg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mp.h"

tr_msg_str tr_msg_cstr(const char *s) {
  tr_msg_str r = {s, s != NULL ? strlen(s) : 0};
  return r;
}

int tr_msg_strcpy(char *buf, size_t size, tr_msg_str s) {
  if (s.ptr == NULL) return -ENOENT;
  if (size == 0) return -EINVAL;
  size_t n = s.len < size ? s.len : size - 1;
  memcpy(buf, s.ptr, n);
  buf[n] = '\0';
  return 0;
}

/* Returns -code after writing the reason, so a refusal is one statement. */
static int refuse(tr_msg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(tr_msg_err *err, int code, const char *fmt, ...) {
  if (err != NULL) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->text, sizeof(err->text), fmt, ap);
    va_end(ap);
  }
  return -code;
}

/* A string value, or an absent one when the key is missing or holds
 * another type. */
static tr_msg_str get_str(const msgpack_object *map, const char *key) {
  tr_msg_str s = {NULL, 0};
  if (tr_mp_get_str(map, key, &s.ptr, &s.len) < 0) s.ptr = NULL;
  return s;
}

/* An unsigned value, or 0 when the key is missing or holds another type. */
static uint64_t get_u64(const msgpack_object *map, const char *key) {
  uint64_t v;
  return tr_mp_get_u64(map, key, &v) == 0 ? v : 0;
}

static bool str_is(tr_msg_str s, const char *lit) {
  size_t n = strlen(lit);
  return s.ptr != NULL && s.len == n && memcmp(s.ptr, lit, n) == 0;
}

static void kv_str(msgpack_packer *pk, const char *key, tr_msg_str s) {
  tr_mp_kv_strn(pk, key, s.ptr != NULL ? s.ptr : "", s.len);
}

/* A peer's string quoted in a refusal: at most 32 bytes of it. */
#define QUOTED(s) (int)((s).len > 32 ? 32 : (s).len), (s).ptr

/* ---- HELLO ------------------------------------------------------------- */

static void pack_argv(msgpack_packer *pk, const char *buf, size_t len) {
  uint32_t count = 0;
  for (size_t i = 0; i < len; i++)
    if (buf[i] == '\0') count++;
  msgpack_pack_array(pk, count);
  size_t start = 0;
  for (size_t i = 0; i < len && count > 0; i++) {
    if (buf[i] != '\0') continue;
    msgpack_pack_str(pk, i - start);
    msgpack_pack_str_body(pk, buf + start, i - start);
    start = i + 1;
    count--;
  }
}

void tr_msg_hello_pack(msgpack_packer *pk, const tr_msg_hello *m) {
  bool tsc = m->producer && m->tsc;
  msgpack_pack_map(pk, (m->producer ? 10 : 9) + (tsc ? 1 : 0));
  tr_mp_kv_str(pk, TR_KEY_MAGIC, TR_PROTO_MAGIC);
  tr_mp_kv_u64(pk, TR_KEY_VERSION, TR_PROTO_VERSION);
  tr_mp_kv_str(pk, TR_KEY_ROLE,
               m->producer ? TR_ROLE_PRODUCER : TR_ROLE_CONTROL);
  tr_mp_kv_u64(pk, TR_KEY_PID, m->pid);
  tr_mp_kv_u64(pk, TR_KEY_PPID, m->ppid);
  tr_mp_str(pk, TR_KEY_ARGV);
  pack_argv(pk, m->argv, m->argv_len);
  kv_str(pk, TR_KEY_NAME, m->name);
  tr_mp_kv_str(pk, TR_KEY_CLOCK, TR_CLOCK_MONOTONIC);
  tr_mp_kv_u64(pk, TR_KEY_NOW_NS, m->now_ns);
  if (m->producer) tr_mp_kv_u64(pk, TR_KEY_ARENA_SIZE, m->arena_size);
  if (tsc) tr_mp_kv_bool(pk, TR_KEY_TSC, true);
}

int tr_msg_hello_unpack(const msgpack_object *map, tr_msg_hello *out,
                        tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  uint64_t version, u;
  if (!str_is(get_str(map, TR_KEY_MAGIC), TR_PROTO_MAGIC))
    return refuse(err, EPROTO, "HELLO: missing or wrong magic");
  if (tr_mp_get_u64(map, TR_KEY_VERSION, &version) < 0)
    return refuse(err, EPROTO, "HELLO: missing version");
  if (version != TR_PROTO_VERSION)
    return refuse(err, EPROTO,
                  "HELLO: protocol version %llu, this daemon speaks %u",
                  (unsigned long long)version, TR_PROTO_VERSION);
  tr_msg_str role = get_str(map, TR_KEY_ROLE);
  if (role.ptr == NULL) return refuse(err, EPROTO, "HELLO: missing role");
  if (str_is(role, TR_ROLE_PRODUCER))
    out->producer = true;
  else if (!str_is(role, TR_ROLE_CONTROL))
    return refuse(err, EPROTO, "HELLO: unknown role '%.*s'", QUOTED(role));
  if (tr_mp_get_u64(map, TR_KEY_PID, &out->pid) < 0 || out->pid == 0 ||
      out->pid > INT32_MAX)
    return refuse(err, EPROTO, "HELLO: missing or invalid pid");
  /* Not a string: nothing said, so the clock is the default one. */
  tr_msg_str clock = get_str(map, TR_KEY_CLOCK);
  if (clock.ptr != NULL && !str_is(clock, TR_CLOCK_MONOTONIC))
    return refuse(err, EPROTO, "HELLO: clock '%.*s' is not supported",
                  QUOTED(clock));
  bool b;
  out->tsc = tr_mp_get_bool(map, TR_KEY_TSC, &b) == 0 && b;
  if (tr_mp_get_u64(map, TR_KEY_PPID, &u) == 0 && u <= INT32_MAX) {
    out->ppid = u;
    out->has_ppid = true;
  }
  if (out->producer &&
      tr_mp_get_u64(map, TR_KEY_ARENA_SIZE, &out->arena_size) < 0)
    return refuse(err, EPROTO, "HELLO: producer without arena_size");
  out->name = get_str(map, TR_KEY_NAME);
  const msgpack_object *argv = tr_mp_get(map, TR_KEY_ARGV);
  if (argv != NULL && argv->type == MSGPACK_OBJECT_ARRAY &&
      argv->via.array.size > 0 &&
      argv->via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
      argv->via.array.ptr[0].via.str.size > 0) {
    out->argv0.ptr = argv->via.array.ptr[0].via.str.ptr;
    out->argv0.len = argv->via.array.ptr[0].via.str.size;
  }
  out->now_ns = get_u64(map, TR_KEY_NOW_NS);
  return 0;
}

/* ---- WELCOME ----------------------------------------------------------- */

void tr_msg_welcome_pack(msgpack_packer *pk, const tr_msg_welcome *m) {
  msgpack_pack_map(pk, 4);
  tr_mp_kv_u64(pk, TR_KEY_VERSION, m->version);
  tr_mp_kv_u64(pk, TR_KEY_DAEMON_PID, m->daemon_pid);
  tr_mp_kv_str(pk, TR_KEY_CLOCK, m->tsc ? TR_CLOCK_TSC : TR_CLOCK_MONOTONIC);
  tr_mp_kv_u64(pk, TR_KEY_MAX_EXTRA, m->max_extra);
}

int tr_msg_welcome_unpack(const msgpack_object *map, tr_msg_welcome *out,
                          tr_msg_err *err) {
  (void)err;
  memset(out, 0, sizeof(*out));
  out->version = get_u64(map, TR_KEY_VERSION);
  out->daemon_pid = get_u64(map, TR_KEY_DAEMON_PID);
  out->tsc = str_is(get_str(map, TR_KEY_CLOCK), TR_CLOCK_TSC);
  if (tr_mp_get_u64(map, TR_KEY_MAX_EXTRA, &out->max_extra) < 0)
    out->max_extra = TR_RECORD_MAX_EXTRA_V1;
  return 0;
}

/* ---- SESSION_CREATE ---------------------------------------------------- */

void tr_msg_session_create_pack(msgpack_packer *pk,
                                const tr_msg_session_create *m) {
  msgpack_pack_map(pk, 1 + (m->format.ptr != NULL ? 1 : 0) +
                           (m->min_duration_ns > 0 ? 1 : 0) +
                           (m->max_size > 0 ? 1 : 0));
  kv_str(pk, TR_KEY_PATH, m->path);
  if (m->format.ptr != NULL) kv_str(pk, TR_KEY_FORMAT, m->format);
  if (m->min_duration_ns > 0)
    tr_mp_kv_u64(pk, TR_KEY_MIN_DURATION_NS, m->min_duration_ns);
  if (m->max_size > 0) tr_mp_kv_u64(pk, TR_KEY_MAX_SIZE, m->max_size);
}

int tr_msg_session_create_unpack(const msgpack_object *map,
                                 tr_msg_session_create *out, tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  int rc =
      tr_mp_get_str(map, TR_KEY_FORMAT, &out->format.ptr, &out->format.len);
  if (rc == -EINVAL)
    return refuse(err, EINVAL, "SESSION_CREATE: format is not a string");
  if (rc < 0) out->format.ptr = NULL;
  out->path = get_str(map, TR_KEY_PATH);
  if (out->path.ptr == NULL) out->path = tr_msg_cstr("");
  out->min_duration_ns = get_u64(map, TR_KEY_MIN_DURATION_NS);
  out->max_size = get_u64(map, TR_KEY_MAX_SIZE);
  return 0;
}

/* ---- SESSION_CREATED --------------------------------------------------- */

void tr_msg_session_created_pack(msgpack_packer *pk,
                                 const tr_msg_session_created *m) {
  msgpack_pack_map(pk, 2);
  tr_mp_kv_str(pk, TR_KEY_TOKEN, m->token);
  tr_mp_kv_u64(pk, TR_KEY_EPOCH, m->epoch);
}

int tr_msg_session_created_unpack(const msgpack_object *map,
                                  tr_msg_session_created *out,
                                  tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  if (tr_mp_get_strcpy(map, TR_KEY_TOKEN, out->token, sizeof(out->token)) < 0 ||
      strlen(out->token) != TR_TOKEN_HEX_LEN)
    return refuse(err, EPROTO, "SESSION_CREATED: missing or malformed token");
  out->epoch = get_u64(map, TR_KEY_EPOCH);
  return 0;
}

/* ---- SESSION_JOIN ------------------------------------------------------ */

void tr_msg_session_join_pack(msgpack_packer *pk,
                              const tr_msg_session_join *m) {
  msgpack_pack_map(pk, 1);
  kv_str(pk, TR_KEY_TOKEN, m->token);
}

int tr_msg_session_join_unpack(const msgpack_object *map,
                               tr_msg_session_join *out, tr_msg_err *err) {
  out->token = get_str(map, TR_KEY_TOKEN);
  if (out->token.ptr == NULL)
    return refuse(err, EPROTO, "SESSION_JOIN without a token");
  return 0;
}

/* ---- SESSION_JOINED ---------------------------------------------------- */

void tr_msg_session_joined_pack(msgpack_packer *pk,
                                const tr_msg_session_joined *m) {
  msgpack_pack_map(pk, 2);
  tr_mp_kv_bool(pk, TR_KEY_ACTIVE, m->active);
  tr_mp_kv_u64(pk, TR_KEY_EPOCH, m->epoch);
}

int tr_msg_session_joined_unpack(const msgpack_object *map,
                                 tr_msg_session_joined *out, tr_msg_err *err) {
  (void)err;
  bool b;
  out->active = tr_mp_get_bool(map, TR_KEY_ACTIVE, &b) == 0 && b;
  out->epoch = get_u64(map, TR_KEY_EPOCH);
  return 0;
}

/* ---- RING_ADD ---------------------------------------------------------- */

void tr_msg_ring_add_pack(msgpack_packer *pk, const tr_msg_ring_add *m) {
  msgpack_pack_map(pk, 3);
  tr_mp_kv_u64(pk, TR_KEY_TID, m->tid);
  tr_mp_kv_u64(pk, TR_KEY_SLOTS, m->slots);
  kv_str(pk, TR_KEY_NAME, m->name);
}

int tr_msg_ring_add_unpack(const msgpack_object *map, tr_msg_ring_add *out,
                           tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  if (tr_mp_get_u64(map, TR_KEY_TID, &out->tid) < 0 ||
      tr_mp_get_u64(map, TR_KEY_SLOTS, &out->slots) < 0)
    return refuse(err, EPROTO, "RING_ADD without tid or slots");
  out->name = get_str(map, TR_KEY_NAME);
  if (out->name.ptr == NULL) out->name = tr_msg_cstr("");
  return 0;
}

/* ---- a started process ------------------------------------------------- */

void tr_msg_child_pack(msgpack_packer *pk, const tr_msg_child *m) {
  msgpack_pack_map(pk, 3 + (m->failed ? 1 : 0));
  tr_mp_kv_u64(pk, TR_KEY_PID, m->pid);
  kv_str(pk, TR_KEY_PATH, m->path);
  tr_mp_str(pk, TR_KEY_ARGV);
  pack_argv(pk, m->argv, m->argv_len);
  if (m->failed) tr_mp_kv_bool(pk, TR_KEY_FAILED, true);
}

int tr_msg_child_unpack(const msgpack_object *map, tr_msg_child *out,
                        tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
    return refuse(err, EPROTO, "child is not a map");
  if (tr_mp_get_u64(map, TR_KEY_PID, &out->pid) < 0 || out->pid == 0 ||
      out->pid > INT32_MAX)
    return refuse(err, EPROTO, "child without a valid pid");
  out->path = get_str(map, TR_KEY_PATH);
  if (out->path.ptr == NULL)
    return refuse(err, EPROTO, "child without a path string");
  if (out->path.len > TR_CHILD_PATH_MAX)
    return refuse(err, EPROTO, "child path longer than %u bytes",
                  TR_CHILD_PATH_MAX);
  const msgpack_object *argv = tr_mp_get(map, TR_KEY_ARGV);
  if (argv == NULL || argv->type != MSGPACK_OBJECT_ARRAY)
    return refuse(err, EPROTO, "child without an argv array");
  if (argv->via.array.size > TR_CHILD_ARGC_MAX)
    return refuse(err, EPROTO, "child argv has more than %u arguments",
                  TR_CHILD_ARGC_MAX);
  size_t bytes = 0;
  for (uint32_t i = 0; i < argv->via.array.size; i++) {
    const msgpack_object *a = &argv->via.array.ptr[i];
    if (a->type != MSGPACK_OBJECT_STR)
      return refuse(err, EPROTO, "child argv holds a non-string");
    bytes += a->via.str.size + 1;
  }
  if (bytes > TR_CHILD_ARGV_MAX)
    return refuse(err, EPROTO, "child argv longer than %u bytes",
                  TR_CHILD_ARGV_MAX);
  out->args = argv->via.array.ptr;
  out->argc = argv->via.array.size;
  bool b;
  out->failed = tr_mp_get_bool(map, TR_KEY_FAILED, &b) == 0 && b;
  return 0;
}

tr_msg_str tr_msg_child_arg(const tr_msg_child *c, uint32_t i) {
  tr_msg_str s = {c->args[i].via.str.ptr, c->args[i].via.str.size};
  return s;
}

/* ---- SESSION_SUMMARY --------------------------------------------------- */

void tr_msg_session_summary_pack(msgpack_packer *pk,
                                 const tr_msg_session_summary *m) {
  msgpack_pack_map(
      pk, 10 + (m->max_size > 0 ? 1 : 0) + (m->write_error > 0 ? 1 : 0) +
              (m->unclosed > 0 ? 1 : 0) + (m->cut_dropped > 0 ? 1 : 0) +
              (m->nunjoined > 0 ? 1 : 0) + (m->unjoined_omitted > 0 ? 1 : 0));
  tr_mp_kv_u64(pk, TR_KEY_PROCESSES, m->processes);
  tr_mp_kv_u64(pk, TR_KEY_THREADS, m->threads);
  tr_mp_kv_u64(pk, TR_KEY_EVENTS, m->events);
  tr_mp_kv_u64(pk, TR_KEY_DROPPED, m->dropped);
  tr_mp_kv_u64(pk, TR_KEY_LATE, m->late);
  tr_mp_kv_u64(pk, TR_KEY_MALFORMED, m->malformed);
  tr_mp_kv_u64(pk, TR_KEY_UNMATCHED, m->unmatched);
  tr_mp_kv_u64(pk, TR_KEY_FILTERED, m->filtered);
  tr_mp_kv_u64(pk, TR_KEY_BYTES, m->bytes);
  kv_str(pk, TR_KEY_PATH, m->path);
  if (m->max_size > 0) tr_mp_kv_u64(pk, TR_KEY_MAX_SIZE, m->max_size);
  if (m->write_error > 0) tr_mp_kv_u64(pk, TR_KEY_WRITE_ERROR, m->write_error);
  if (m->unclosed > 0) tr_mp_kv_u64(pk, TR_KEY_UNCLOSED, m->unclosed);
  if (m->cut_dropped > 0) tr_mp_kv_u64(pk, TR_KEY_CUT_DROPPED, m->cut_dropped);
  if (m->nunjoined > 0) {
    tr_mp_str(pk, TR_KEY_UNJOINED);
    msgpack_pack_array(pk, (size_t)m->nunjoined);
    for (uint64_t i = 0; i < m->nunjoined; i++)
      tr_msg_child_pack(pk, &m->unjoined[i]);
  }
  if (m->unjoined_omitted > 0)
    tr_mp_kv_u64(pk, TR_KEY_UNJOINED_OMITTED, m->unjoined_omitted);
}

int tr_msg_session_summary_unpack(const msgpack_object *map,
                                  tr_msg_session_summary *out,
                                  tr_msg_err *err) {
  (void)err;
  out->processes = get_u64(map, TR_KEY_PROCESSES);
  out->threads = get_u64(map, TR_KEY_THREADS);
  out->events = get_u64(map, TR_KEY_EVENTS);
  out->dropped = get_u64(map, TR_KEY_DROPPED);
  out->late = get_u64(map, TR_KEY_LATE);
  out->malformed = get_u64(map, TR_KEY_MALFORMED);
  out->unmatched = get_u64(map, TR_KEY_UNMATCHED);
  out->filtered = get_u64(map, TR_KEY_FILTERED);
  out->bytes = get_u64(map, TR_KEY_BYTES);
  out->path = get_str(map, TR_KEY_PATH);
  out->max_size = get_u64(map, TR_KEY_MAX_SIZE);
  out->write_error = get_u64(map, TR_KEY_WRITE_ERROR);
  out->unclosed = get_u64(map, TR_KEY_UNCLOSED);
  out->cut_dropped = get_u64(map, TR_KEY_CUT_DROPPED);
  out->unjoined = NULL;
  out->unjoined_list = NULL;
  out->nunjoined = 0;
  const msgpack_object *u = tr_mp_get(map, TR_KEY_UNJOINED);
  if (u != NULL && u->type == MSGPACK_OBJECT_ARRAY) {
    out->unjoined_list = u->via.array.ptr;
    out->nunjoined = u->via.array.size;
  }
  out->unjoined_omitted = get_u64(map, TR_KEY_UNJOINED_OMITTED);
  return 0;
}

/* ---- PROCESS_INFO ------------------------------------------------------ */

void tr_msg_process_info_pack(msgpack_packer *pk,
                              const tr_msg_process_info *m) {
  msgpack_pack_map(pk, (m->has_ppid ? 1 : 0) + (m->name.ptr != NULL ? 1 : 0) +
                           (m->has_child ? 1 : 0));
  if (m->has_ppid) tr_mp_kv_u64(pk, TR_KEY_PPID, m->ppid);
  if (m->name.ptr != NULL) kv_str(pk, TR_KEY_NAME, m->name);
  if (m->has_child) {
    tr_mp_str(pk, TR_KEY_CHILD);
    tr_msg_child_pack(pk, &m->child);
  }
}

int tr_msg_process_info_unpack(const msgpack_object *map,
                               tr_msg_process_info *out, tr_msg_err *err) {
  memset(out, 0, sizeof(*out));
  uint64_t u;
  if (tr_mp_get_u64(map, TR_KEY_PPID, &u) == 0 && u <= INT32_MAX) {
    out->ppid = u;
    out->has_ppid = true;
  }
  out->name = get_str(map, TR_KEY_NAME);
  const msgpack_object *child = tr_mp_get(map, TR_KEY_CHILD);
  if (child != NULL) {
    tr_msg_err why;
    if (tr_msg_child_unpack(child, &out->child, &why) < 0)
      return refuse(err, EPROTO, "PROCESS_INFO: %s", why.text);
    out->has_child = true;
  }
  return 0;
}

/* ---- STATUS_REPLY ------------------------------------------------------ */

void tr_msg_status_reply_pack(msgpack_packer *pk,
                              const tr_msg_status_reply *m) {
  msgpack_pack_map(pk, 13);
  kv_str(pk, TR_KEY_VERSION, m->version);
  tr_mp_kv_u64(pk, TR_KEY_PROTOCOL, m->protocol);
  tr_mp_kv_u64(pk, TR_KEY_DAEMON_PID, m->daemon_pid);
  tr_mp_kv_u64(pk, TR_KEY_DAEMON_UID, m->daemon_uid);
  tr_mp_kv_u64(pk, TR_KEY_UPTIME_NS, m->uptime_ns);
  kv_str(pk, TR_KEY_SOCKET, m->socket);
  kv_str(pk, TR_KEY_MODE, m->mode);
  tr_mp_kv_u64(pk, TR_KEY_CONNECTIONS, m->connections);
  tr_mp_kv_u64(pk, TR_KEY_SESSIONS_TOTAL, m->sessions_total);
  tr_mp_kv_u64(pk, TR_KEY_RECORD_RATE_PER_UID, m->record_rate_per_uid);
  tr_mp_kv_u64(pk, TR_KEY_VIEWER_UID, m->viewer_uid);
  tr_mp_kv_u64(pk, TR_KEY_SESSIONS_OMITTED, m->sessions_omitted);
  tr_mp_str(pk, TR_KEY_SESSIONS);
  msgpack_pack_array(pk, m->nsessions);
}

int tr_msg_status_reply_unpack(const msgpack_object *map,
                               tr_msg_status_reply *out, tr_msg_err *err) {
  (void)err;
  memset(out, 0, sizeof(*out));
  out->version = get_str(map, TR_KEY_VERSION);
  out->protocol = get_u64(map, TR_KEY_PROTOCOL);
  out->daemon_pid = get_u64(map, TR_KEY_DAEMON_PID);
  out->daemon_uid = get_u64(map, TR_KEY_DAEMON_UID);
  out->uptime_ns = get_u64(map, TR_KEY_UPTIME_NS);
  out->socket = get_str(map, TR_KEY_SOCKET);
  out->mode = get_str(map, TR_KEY_MODE);
  out->connections = get_u64(map, TR_KEY_CONNECTIONS);
  out->sessions_total = get_u64(map, TR_KEY_SESSIONS_TOTAL);
  out->record_rate_per_uid = get_u64(map, TR_KEY_RECORD_RATE_PER_UID);
  out->viewer_uid = get_u64(map, TR_KEY_VIEWER_UID);
  out->sessions_omitted = get_u64(map, TR_KEY_SESSIONS_OMITTED);
  const msgpack_object *list = tr_mp_get(map, TR_KEY_SESSIONS);
  if (list != NULL && list->type == MSGPACK_OBJECT_ARRAY) {
    out->nsessions = list->via.array.size;
    out->sessions = list->via.array.ptr;
  }
  return 0;
}

void tr_msg_status_session_pack(msgpack_packer *pk,
                                const tr_msg_status_session *m) {
  msgpack_pack_map(pk, 11);
  tr_mp_kv_u64(pk, TR_KEY_ID, m->id);
  tr_mp_kv_u64(pk, TR_KEY_OWNER, m->owner);
  tr_mp_kv_u64(pk, TR_KEY_PROCESSES, m->processes);
  tr_mp_kv_u64(pk, TR_KEY_MEMBERS, m->members);
  tr_mp_kv_u64(pk, TR_KEY_THREADS, m->threads);
  tr_mp_kv_u64(pk, TR_KEY_EVENTS, m->events);
  tr_mp_kv_u64(pk, TR_KEY_EVENTS_PER_S, m->events_per_s);
  tr_mp_kv_u64(pk, TR_KEY_DROPPED, m->dropped);
  tr_mp_kv_u64(pk, TR_KEY_BYTES, m->bytes);
  tr_mp_kv_u64(pk, TR_KEY_AGE_NS, m->age_ns);
  kv_str(pk, TR_KEY_PATH, m->path);
}

int tr_msg_status_session_unpack(const msgpack_object *map,
                                 tr_msg_status_session *out, tr_msg_err *err) {
  (void)err;
  out->id = get_u64(map, TR_KEY_ID);
  out->owner = get_u64(map, TR_KEY_OWNER);
  out->processes = get_u64(map, TR_KEY_PROCESSES);
  out->members = get_u64(map, TR_KEY_MEMBERS);
  out->threads = get_u64(map, TR_KEY_THREADS);
  out->events = get_u64(map, TR_KEY_EVENTS);
  out->events_per_s = get_u64(map, TR_KEY_EVENTS_PER_S);
  out->dropped = get_u64(map, TR_KEY_DROPPED);
  out->bytes = get_u64(map, TR_KEY_BYTES);
  out->age_ns = get_u64(map, TR_KEY_AGE_NS);
  out->path = get_str(map, TR_KEY_PATH);
  return 0;
}

/* ---- ERROR ------------------------------------------------------------- */

void tr_msg_error_pack(msgpack_packer *pk, const tr_msg_error *m) {
  msgpack_pack_map(pk, 2);
  tr_mp_kv_i64(pk, TR_KEY_CODE, m->code);
  kv_str(pk, TR_KEY_MESSAGE, m->message);
}

int tr_msg_error_unpack(const msgpack_object *map, tr_msg_error *out,
                        tr_msg_err *err) {
  (void)err;
  if (tr_mp_get_i64(map, TR_KEY_CODE, &out->code) < 0) out->code = EPROTO;
  out->message = get_str(map, TR_KEY_MESSAGE);
  return 0;
}

/* ---- STOPPING ---------------------------------------------------------- */

void tr_msg_stopping_pack(msgpack_packer *pk, const tr_msg_stopping *m) {
  msgpack_pack_map(pk, 2);
  tr_mp_kv_u64(pk, TR_KEY_DAEMON_PID, m->daemon_pid);
  tr_mp_kv_u64(pk, TR_KEY_SESSIONS, m->sessions);
}

int tr_msg_stopping_unpack(const msgpack_object *map, tr_msg_stopping *out,
                           tr_msg_err *err) {
  (void)err;
  out->daemon_pid = get_u64(map, TR_KEY_DAEMON_PID);
  out->sessions = get_u64(map, TR_KEY_SESSIONS);
  return 0;
}

void tr_msg_empty_pack(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }

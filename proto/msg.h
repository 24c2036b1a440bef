/* msg.h: the control messages' codec: one C struct per message map
 * (PROTOCOL.md section 2), one function that packs it and one that unpacks
 * it, and every key of those maps named once.
 *
 * Packing writes the keys in a fixed order, each integer in msgpack's
 * shortest form, so the same struct always gives the same bytes (the bytes
 * every version-1 peer has sent so far).  Unpacking looks keys up by name
 * and ignores unknown ones (PROTOCOL.md section 1).
 *
 * The daemon's unpackers (HELLO, SESSION_CREATE, SESSION_JOIN, RING_ADD,
 * PROCESS_INFO) are its first check of what a possibly hostile peer sent:
 * they refuse a missing required key, a value of the wrong type or out of
 * the protocol's bounds, and say why in words the daemon sends back in
 * ERROR and logs.  Checks that depend on the daemon's configured limits or
 * state (arena and ring sizes, supported formats, sessions) stay with its
 * handlers.  The clients' unpackers accept what they can and read what is
 * missing as 0 (or the documented default), as clients always have. */
#ifndef TRACED_MSG_H
#define TRACED_MSG_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "traced_proto.h"

/* ---- keys -------------------------------------------------------------- */

#define TR_KEY_MAGIC "magic"
#define TR_KEY_VERSION "version"
#define TR_KEY_ROLE "role"
#define TR_KEY_PID "pid"
#define TR_KEY_PPID "ppid"
#define TR_KEY_ARGV "argv"
#define TR_KEY_NAME "name"
#define TR_KEY_CLOCK "clock"
#define TR_KEY_NOW_NS "now_ns"
#define TR_KEY_ARENA_SIZE "arena_size"
#define TR_KEY_TSC "tsc"
#define TR_KEY_DAEMON_PID "daemon_pid"
#define TR_KEY_MAX_EXTRA "max_extra"
#define TR_KEY_PATH "path"
#define TR_KEY_FORMAT "format"
#define TR_KEY_MIN_DURATION_NS "min_duration_ns"
#define TR_KEY_TOKEN "token"
#define TR_KEY_EPOCH "epoch"
#define TR_KEY_ACTIVE "active"
#define TR_KEY_TID "tid"
#define TR_KEY_SLOTS "slots"
#define TR_KEY_PROCESSES "processes"
#define TR_KEY_THREADS "threads"
#define TR_KEY_EVENTS "events"
#define TR_KEY_DROPPED "dropped"
#define TR_KEY_LATE "late"
#define TR_KEY_MALFORMED "malformed"
#define TR_KEY_UNMATCHED "unmatched"
#define TR_KEY_FILTERED "filtered"
#define TR_KEY_BYTES "bytes"
#define TR_KEY_CODE "code"
#define TR_KEY_MAX_SIZE "max_size"
#define TR_KEY_WRITE_ERROR "write_error"
#define TR_KEY_UNCLOSED "unclosed"
#define TR_KEY_CUT_DROPPED "cut_dropped"
#define TR_KEY_MESSAGE "message"
#define TR_KEY_SESSIONS "sessions"
#define TR_KEY_PROTOCOL "protocol"
#define TR_KEY_DAEMON_UID "daemon_uid"
#define TR_KEY_UPTIME_NS "uptime_ns"
#define TR_KEY_SOCKET "socket"
#define TR_KEY_MODE "mode"
#define TR_KEY_CONNECTIONS "connections"
#define TR_KEY_SESSIONS_TOTAL "sessions_total"
#define TR_KEY_RECORD_RATE_PER_UID "record_rate_per_uid"
#define TR_KEY_VIEWER_UID "viewer_uid"
#define TR_KEY_SESSIONS_OMITTED "sessions_omitted"
#define TR_KEY_ID "id"
#define TR_KEY_OWNER "owner"
#define TR_KEY_MEMBERS "members"
#define TR_KEY_EVENTS_PER_S "events_per_s"
#define TR_KEY_AGE_NS "age_ns"
#define TR_KEY_CHILD "child"
#define TR_KEY_FAILED "failed"
#define TR_KEY_UNJOINED "unjoined"
#define TR_KEY_UNJOINED_OMITTED "unjoined_omitted"

/* ---- values ------------------------------------------------------------ */

#define TR_ROLE_PRODUCER "producer" /* HELLO role: records, has an arena */
#define TR_ROLE_CONTROL "control"   /* HELLO role: `traced run`, status */
#define TR_CLOCK_MONOTONIC "monotonic"
#define TR_CLOCK_TSC "tsc"
#define TR_MODE_PRIVATE "private" /* STATUS_REPLY mode */
#define TR_MODE_SYSTEM "system"

/* ---- strings and refusals ---------------------------------------------- */

/* A string value.  Unpacked, it points into the unpacked payload (valid as
 * long as its zone) and is not NUL-terminated.  ptr NULL: the key is
 * absent (or, where a field says so, not a string). */
typedef struct tr_msg_str {
  const char *ptr;
  size_t len;
} tr_msg_str;

/* The tr_msg_str of a C string; NULL gives an absent one. */
tr_msg_str tr_msg_cstr(const char *s);

/* Copies s into buf, NUL-terminated and truncated to fit; returns 0, or
 * -ENOENT for an absent s, leaving buf as it was. */
int tr_msg_strcpy(char *buf, size_t size, tr_msg_str s);

/* Why an unpacker refused a message: the text of the ERROR the daemon
 * answers with (and of its log line). */
typedef struct tr_msg_err {
  char text[160];
} tr_msg_err;

/* Every unpacker takes the payload's map (NULL or a non-map finds no key:
 * an empty payload is an empty map), fills *out, and returns 0 or a
 * negative errno, the code of the refusal, with its reason in *err (which
 * may be NULL). */

/* ---- HELLO (c->d) ------------------------------------------------------ */

typedef struct tr_msg_hello {
  bool producer; /* role: producer, else control */
  uint64_t pid;  /* unpack: 1 .. INT32_MAX, else refused */
  uint64_t ppid; /* always packed */
  bool has_ppid; /* unpack: ppid present and <= INT32_MAX */
  /* Packing: argv as /proc/self/cmdline holds it, NUL-terminated strings
   * back to back, argv_len bytes (a last string without its NUL is left
   * out).  Unpacking leaves these NULL and 0 and fills argv0. */
  const char *argv;
  size_t argv_len;
  tr_msg_str argv0;    /* unpack: argv[0] when it is a non-empty string */
  tr_msg_str name;     /* display name; unpack: not a string reads absent */
  uint64_t now_ns;     /* the client's clock when it sent HELLO */
  uint64_t arena_size; /* producer only; unpack: required */
  bool tsc; /* a producer offers raw TSC timestamps (PROTOCOL.md 3) */
} tr_msg_hello;

/* Also packs magic, version and clock ("monotonic"). */
void tr_msg_hello_pack(msgpack_packer *pk, const tr_msg_hello *m);
/* Refuses (-EPROTO) a wrong or missing magic, a missing or other version,
 * a missing or unknown role, a missing or invalid pid, a clock other than
 * "monotonic", and a producer without arena_size, checked in that order. */
int tr_msg_hello_unpack(const msgpack_object *map, tr_msg_hello *out,
                        tr_msg_err *err);

/* ---- WELCOME (d->c) ---------------------------------------------------- */

typedef struct tr_msg_welcome {
  uint64_t version;
  uint64_t daemon_pid;
  bool tsc; /* clock "tsc": the producer writes raw TSC timestamps */
  /* Payload slots per record the daemon reads; unpack: absent reads as
   * TR_RECORD_MAX_EXTRA_V1 (daemons before the key). */
  uint64_t max_extra;
} tr_msg_welcome;

void tr_msg_welcome_pack(msgpack_packer *pk, const tr_msg_welcome *m);
int tr_msg_welcome_unpack(const msgpack_object *map, tr_msg_welcome *out,
                          tr_msg_err *err);

/* ---- SESSION_CREATE (c->d) --------------------------------------------- */

typedef struct tr_msg_session_create {
  tr_msg_str path;          /* for display only; unpack: absent reads as "" */
  tr_msg_str format;        /* absent (an older client): JSON */
  uint64_t min_duration_ns; /* 0: none, and not packed */
  uint64_t max_size;        /* the trace's size bound, bytes; 0: none, and
                               not packed */
} tr_msg_session_create;

void tr_msg_session_create_pack(msgpack_packer *pk,
                                const tr_msg_session_create *m);
/* Refuses (-EINVAL) a format that is not a string; whether the daemon
 * writes that format is its handler's call. */
int tr_msg_session_create_unpack(const msgpack_object *map,
                                 tr_msg_session_create *out, tr_msg_err *err);

/* ---- SESSION_CREATED (d->c) -------------------------------------------- */

typedef struct tr_msg_session_created {
  char token[TR_TOKEN_HEX_LEN + 1];
  uint64_t epoch;
} tr_msg_session_created;

void tr_msg_session_created_pack(msgpack_packer *pk,
                                 const tr_msg_session_created *m);
/* -EPROTO when the token is missing or not TR_TOKEN_HEX_LEN characters
 * (a longer one is cut to that length). */
int tr_msg_session_created_unpack(const msgpack_object *map,
                                  tr_msg_session_created *out, tr_msg_err *err);

/* ---- SESSION_JOIN (c->d) ----------------------------------------------- */

typedef struct tr_msg_session_join {
  tr_msg_str token; /* any length: the daemon looks it up */
} tr_msg_session_join;

void tr_msg_session_join_pack(msgpack_packer *pk, const tr_msg_session_join *m);
/* -EPROTO without a token string. */
int tr_msg_session_join_unpack(const msgpack_object *map,
                               tr_msg_session_join *out, tr_msg_err *err);

/* ---- SESSION_JOINED (d->c) --------------------------------------------- */

typedef struct tr_msg_session_joined {
  bool active; /* the process records into the session */
  uint64_t epoch;
} tr_msg_session_joined;

void tr_msg_session_joined_pack(msgpack_packer *pk,
                                const tr_msg_session_joined *m);
int tr_msg_session_joined_unpack(const msgpack_object *map,
                                 tr_msg_session_joined *out, tr_msg_err *err);

/* ---- RING_ADD (c->d) --------------------------------------------------- */

typedef struct tr_msg_ring_add {
  uint64_t tid;
  uint64_t slots;
  tr_msg_str name; /* unpack: absent or not a string reads as "" */
} tr_msg_ring_add;

void tr_msg_ring_add_pack(msgpack_packer *pk, const tr_msg_ring_add *m);
/* -EPROTO without tid or slots (unsigned integers); their bounds are the
 * daemon's limits, checked by its handler. */
int tr_msg_ring_add_unpack(const msgpack_object *map, tr_msg_ring_add *out,
                           tr_msg_err *err);

/* ---- a started process (PROCESS_INFO child, SESSION_SUMMARY unjoined) - */

/* A process another one started: `pid` runs `path` with `argv` (an exec
 * keeps the starter's pid).  `failed`: the start announced before it was
 * tried (an exec) failed, so that pid runs no such program. */
typedef struct tr_msg_child {
  uint64_t pid;    /* unpack: 1 .. INT32_MAX, else refused */
  tr_msg_str path; /* unpack: a string of at most TR_CHILD_PATH_MAX bytes */
  /* Packing: argv as NUL-terminated strings back to back, argv_len bytes
   * (as HELLO's); the caller keeps them within TR_CHILD_ARGV_MAX and
   * TR_CHILD_ARGC_MAX.  Unpacking leaves them NULL and 0. */
  const char *argv;
  size_t argv_len;
  /* Unpack: the `argv` array, argc strings (read them with
   * tr_msg_child_arg); refused when it is not an array of strings within
   * the bounds above. */
  const msgpack_object *args;
  uint32_t argc;
  bool failed; /* packed only when set */
} tr_msg_child;

void tr_msg_child_pack(msgpack_packer *pk, const tr_msg_child *m);
int tr_msg_child_unpack(const msgpack_object *map, tr_msg_child *out,
                        tr_msg_err *err);
/* The i-th argument of an unpacked child (i < argc). */
tr_msg_str tr_msg_child_arg(const tr_msg_child *c, uint32_t i);

/* ---- SESSION_SUMMARY (d->c) -------------------------------------------- */

typedef struct tr_msg_session_summary {
  uint64_t processes, threads, events, dropped, late, malformed, unmatched;
  uint64_t filtered; /* calls shorter than the session's minimum duration */
  uint64_t bytes;
  tr_msg_str path;
  /* Why the trace ended short of its events, each 0 and not packed when
   * it did not: the size bound it reached (bytes), the errno of its first
   * failed write, 1 when its ending could not be written either, and the
   * events dropped from then on. */
  uint64_t max_size, write_error, unclosed, cut_dropped;
  /* Python children that never joined the session (packed only when
   * there are some): packing, `unjoined` points at nunjoined of them (at
   * most TR_UNJOINED_MAX); unpacking, `unjoined_list` at the array's
   * elements (read each with tr_msg_child_unpack), NULL when absent. */
  const tr_msg_child *unjoined;
  const msgpack_object *unjoined_list;
  uint64_t nunjoined;
  uint64_t unjoined_omitted; /* more of them, not listed; 0: not packed */
} tr_msg_session_summary;

void tr_msg_session_summary_pack(msgpack_packer *pk,
                                 const tr_msg_session_summary *m);
int tr_msg_session_summary_unpack(const msgpack_object *map,
                                  tr_msg_session_summary *out, tr_msg_err *err);

/* ---- PROCESS_INFO (c->d) ----------------------------------------------- */

typedef struct tr_msg_process_info {
  bool has_ppid; /* packed only when set; unpack: present, <= INT32_MAX */
  uint64_t ppid;
  tr_msg_str name; /* packed only when present; "" names nobody */
  /* A process this one started (or an exec it attempts): packed only
   * when set; unpack: a `child` that is not a valid child map refuses
   * the message. */
  bool has_child;
  tr_msg_child child;
} tr_msg_process_info;

void tr_msg_process_info_pack(msgpack_packer *pk, const tr_msg_process_info *m);
int tr_msg_process_info_unpack(const msgpack_object *map,
                               tr_msg_process_info *out, tr_msg_err *err);

/* ---- STATUS_REPLY (d->c) ----------------------------------------------- */

/* One session as STATUS_REPLY lists it. */
typedef struct tr_msg_status_session {
  uint64_t id; /* the session's epoch */
  uint64_t owner;
  uint64_t processes, members, threads, events, events_per_s, dropped;
  uint64_t bytes, age_ns;
  tr_msg_str path;
} tr_msg_status_session;

typedef struct tr_msg_status_reply {
  tr_msg_str version; /* the daemon's release */
  uint64_t protocol, daemon_pid, daemon_uid, uptime_ns;
  tr_msg_str socket;
  tr_msg_str mode; /* TR_MODE_PRIVATE or TR_MODE_SYSTEM */
  uint64_t connections, sessions_total, record_rate_per_uid, viewer_uid;
  uint64_t sessions_omitted;
  uint32_t nsessions;
  /* Unpack: the nsessions elements of the `sessions` array (read each
   * with tr_msg_status_session_unpack); NULL when it is not an array. */
  const msgpack_object *sessions;
} tr_msg_status_reply;

/* Packs the map up to and including the header of its `sessions` array:
 * the caller then packs nsessions maps with tr_msg_status_session_pack
 * (so it can stop adding sessions when the reply grows too big). */
void tr_msg_status_reply_pack(msgpack_packer *pk, const tr_msg_status_reply *m);
int tr_msg_status_reply_unpack(const msgpack_object *map,
                               tr_msg_status_reply *out, tr_msg_err *err);
void tr_msg_status_session_pack(msgpack_packer *pk,
                                const tr_msg_status_session *m);
int tr_msg_status_session_unpack(const msgpack_object *map,
                                 tr_msg_status_session *out, tr_msg_err *err);

/* ---- ERROR (d->c) ------------------------------------------------------ */

typedef struct tr_msg_error {
  int64_t code; /* an errno value; unpack: absent reads as EPROTO */
  tr_msg_str message;
} tr_msg_error;

void tr_msg_error_pack(msgpack_packer *pk, const tr_msg_error *m);
int tr_msg_error_unpack(const msgpack_object *map, tr_msg_error *out,
                        tr_msg_err *err);

/* ---- STOPPING (d->c) --------------------------------------------------- */

typedef struct tr_msg_stopping {
  uint64_t daemon_pid;
  uint64_t sessions; /* sessions being finalised */
} tr_msg_stopping;

void tr_msg_stopping_pack(msgpack_packer *pk, const tr_msg_stopping *m);
int tr_msg_stopping_unpack(const msgpack_object *map, tr_msg_stopping *out,
                           tr_msg_err *err);

/* ---- SESSION_END, STATUS, STOP (c->d) ----------------------------------
 * These carry an empty map (DOORBELL carries no payload at all). */
void tr_msg_empty_pack(msgpack_packer *pk);

#endif

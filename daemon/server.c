/* server.c: the daemon's server: listening socket, connection table, the
 * protocol's message handlers, session endings and the drain timer. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/version.h"
#include "listen.h"
#include "mpcheck.h"
#include "output/formats.h"
#include "peer.h"
#include "proc.h"
#include "proto/frame.h"
#include "proto/mp.h"
#include "proto/traced_proto.h"
#include "ringread.h"
#include "session.h"
#include "status.h"
#include "tsclock.h"

#define ACCEPTS_PER_WAKEUP 64

typedef struct client {
  tr_peer conn; /* first: conn.poll.data points back here */
  tr_proc proc;
  tr_server *srv;
  struct client *prev;
  struct client *next;
  struct client *reap_next;
  bool queued;          /* on the teardown list */
  bool hello;           /* HELLO accepted */
  uint64_t accepted_ms; /* loop time of accept, for the HELLO timeout */
} client;

struct tr_server {
  uv_loop_t *loop;
  tr_listener lst;
  int reserve_fd; /* spare descriptor, given up to shed a connection on
                     EMFILE instead of spinning on the listening socket */
  uv_poll_t listen_poll;
  uv_timer_t drain_timer; /* runs while there are connections */
  uv_timer_t idle_timer;  /* runs while there are none (--idle-exit) */
  unsigned idle_exit_s;
  tr_limits limits;
  tr_usage *usage; /* one entry per uid with connections */
  client *clients;
  uint32_t nclients;
  client *reap;   /* connections to tear down once the current callback ends */
  client *cursor; /* drained first in the next pass (fairness) */
  uint64_t refill_ms; /* loop time the rate tokens were last refilled */
  uint64_t rates_ms;  /* loop time the sessions' event rates were taken */
  uint64_t beat_ms;   /* loop time of the last heartbeat */
  tr_sessions sessions;
  int depth; /* callbacks in progress: teardown waits until 0 */
  bool reaping;
  bool stopping;
  bool listening;
  bool system;         /* --system: a shared daemon */
  uint64_t started_ns; /* CLOCK_MONOTONIC at start, for the uptime */
  tr_tsclock *tsclock; /* NULL: producers write CLOCK_MONOTONIC ns */
};

static void on_conn_poll(uv_poll_t *h, int status, int events);
static void on_drain_timer(uv_timer_t *t);
static void finish_session(tr_server *s, tr_session *sess, bool reply);
static bool drain_client(tr_server *s, client *cl, uint64_t quantum);

/* ---- logging and errors ------------------------------------------------ */

static const char *who(const client *cl, char buf[TR_LOG_PEER_MAX]) {
  const tr_proc *p = &cl->proc;
  uint64_t epoch = 0;
  if (p->session != NULL)
    epoch = p->session->epoch;
  else if (p->created != NULL)
    epoch = p->created->epoch;
  return tr_log_peer(buf, cl->conn.pid, cl->conn.uid, epoch);
}

static void queue_teardown(client *cl) {
  tr_peer_kill(&cl->conn);
  if (cl->queued) return;
  cl->queued = true;
  cl->reap_next = cl->srv->reap;
  cl->srv->reap = cl;
}

static void send_error(client *cl, int code, const char *msg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  tr_mp_kv_i64(&pk, "code", code);
  tr_mp_kv_str(&pk, "message", msg);
  tr_peer_send(&cl->conn, TR_MSG_ERROR, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

/* Ends a connection for a protocol violation: one log line naming the peer
 * and the reason, an ERROR when the socket still takes it, then teardown
 * (its rings are drained first). */
static void client_fail(client *cl, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void client_fail(client *cl, int code, const char *fmt, ...) {
  if (cl->conn.dead) return;
  char reason[256], pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  tr_log(TR_LOG_WARN, "event=drop %s reason=%s", who(cl, pb),
         tr_log_q(q, reason));
  send_error(cl, code, reason);
  queue_teardown(cl);
}

/* Ends a connection without blame (the peer closed it, the daemon stops). */
static void client_end(client *cl, int level, const char *why) {
  if (cl->conn.dead) return;
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(level, "event=disconnect %s reason=%s", who(cl, pb), tr_log_q(q, why));
  queue_teardown(cl);
}

static void check_failed(client *cl) {
  if (cl->proc.failed && !cl->conn.dead)
    client_fail(cl, EPROTO,
                "the ring of thread %u has impossible head/tail positions",
                cl->proc.failed_tid);
}

/* Sends one reply; a peer that leaves too much unread is dropped. */
static void send_reply(client *cl, uint16_t type, msgpack_sbuffer *sb) {
  int rc = tr_peer_send(&cl->conn, type, sb->data, sb->size);
  if (rc == -ENOBUFS || rc == -ENOMEM)
    client_fail(cl, ENOBUFS, "the client does not read its replies");
  else if (rc < 0)
    client_end(cl, TR_LOG_DEBUG, "connection lost while replying");
}

static void client_read(client *cl) {
  int rc = tr_peer_read(&cl->conn);
  if (rc == 1) {
    client_end(cl, TR_LOG_DEBUG, "disconnected");
  } else if (rc == -ECONNRESET || rc == -EPIPE) {
    client_end(cl, TR_LOG_DEBUG, "connection reset");
  } else if (rc < 0) {
    client_fail(cl, rc == -EMSGSIZE ? EMSGSIZE : EPROTO, "%s", cl->conn.err);
  }
}

/* ---- replies ----------------------------------------------------------------
 */

typedef struct packer {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} packer;

static void packer_init(packer *p, size_t nkeys) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
  msgpack_pack_map(&p->pk, nkeys);
}

static void packer_send(client *cl, packer *p, uint16_t type) {
  send_reply(cl, type, &p->sb);
  msgpack_sbuffer_destroy(&p->sb);
}

static void send_joined(client *cl, bool active, uint64_t epoch) {
  packer p;
  packer_init(&p, 2);
  tr_mp_kv_bool(&p.pk, "active", active);
  tr_mp_kv_u64(&p.pk, "epoch", epoch);
  packer_send(cl, &p, TR_MSG_SESSION_JOINED);
}

/* ---- message handlers ------------------------------------------------------
 */

static const char *basename_of(const char *s, size_t n, size_t *len) {
  const char *b = s;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/') b = s + i + 1;
  *len = n - (size_t)(b - s);
  return b;
}

static void handle_hello(client *cl, const msgpack_object *m) {
  tr_proc *p = &cl->proc;
  const char *str;
  size_t n;
  uint64_t version, pid, u;
  if (cl->hello) {
    client_fail(cl, EPROTO, "second HELLO");
    return;
  }
  if (tr_mp_get_str(m, "magic", &str, &n) < 0 || n != strlen(TR_PROTO_MAGIC) ||
      memcmp(str, TR_PROTO_MAGIC, n) != 0) {
    client_fail(cl, EPROTO, "HELLO: missing or wrong magic");
    return;
  }
  if (tr_mp_get_u64(m, "version", &version) < 0) {
    client_fail(cl, EPROTO, "HELLO: missing version");
    return;
  }
  if (version != TR_PROTO_VERSION) {
    client_fail(cl, EPROTO,
                "HELLO: protocol version %llu, this daemon speaks %u",
                (unsigned long long)version, TR_PROTO_VERSION);
    return;
  }
  if (tr_mp_get_str(m, "role", &str, &n) < 0) {
    client_fail(cl, EPROTO, "HELLO: missing role");
    return;
  }
  if (n == 8 && memcmp(str, "producer", 8) == 0) {
    p->producer = true;
  } else if (!(n == 7 && memcmp(str, "control", 7) == 0)) {
    client_fail(cl, EPROTO, "HELLO: unknown role '%.*s'",
                (int)(n > 32 ? 32 : n), str);
    return;
  }
  if (tr_mp_get_u64(m, "pid", &pid) < 0 || pid == 0 || pid > INT32_MAX) {
    client_fail(cl, EPROTO, "HELLO: missing or invalid pid");
    return;
  }
  if (tr_mp_get_str(m, "clock", &str, &n) == 0 &&
      !(n == 9 && memcmp(str, "monotonic", 9) == 0)) {
    client_fail(cl, EPROTO, "HELLO: clock '%.*s' is not supported",
                (int)(n > 32 ? 32 : n), str);
    return;
  }
  /* A producer that can write raw TSC ticks says so; it does only if the
   * WELCOME tells it to (the daemon then converts them, tsclock.h). */
  bool tsc = false;
  p->tsc = p->producer && cl->srv->tsclock != NULL &&
           tr_mp_get_bool(m, "tsc", &tsc) == 0 && tsc;
  p->pid = (uint32_t)pid;
  if (tr_mp_get_u64(m, "ppid", &u) == 0 && u <= INT32_MAX)
    p->ppid = (uint32_t)u;

  if (p->producer) {
    uint64_t size;
    int fd;
    if (tr_mp_get_u64(m, "arena_size", &size) < 0) {
      client_fail(cl, EPROTO, "HELLO: producer without arena_size");
      return;
    }
    if (tr_peer_take_fds(&cl->conn, &fd, 1) != 1) {
      client_fail(cl, EBADF, "HELLO: producer without the arena descriptor");
      return;
    }
    if (size < TR_ARENA_MIN_SIZE || size > cl->srv->limits.arena_bytes_max) {
      close(fd);
      client_fail(cl, EINVAL, "HELLO: arena_size %llu out of range",
                  (unsigned long long)size);
      return;
    }
    tr_arenaview a;
    int rc = tr_arena_map(&a, fd, (uint32_t)size);
    close(fd);
    if (rc < 0) {
      client_fail(cl, -rc, "HELLO: bad arena descriptor: %s (%s)",
                  rc == -EPERM    ? "not sealed against shrinking"
                  : rc == -EINVAL ? "wrong size or header"
                                  : "cannot map it",
                  strerror(-rc));
      return;
    }
    tr_proc_set_arena(p, &a);
  }

  /* Display name: `name`, else argv[0]'s last component, else the pid. */
  if (tr_mp_get_str(m, "name", &str, &n) == 0 && n > 0) {
    tr_proc_set_name(p, str, n);
  } else {
    const msgpack_object *argv = tr_mp_get(m, "argv");
    if (argv != NULL && argv->type == MSGPACK_OBJECT_ARRAY &&
        argv->via.array.size > 0 &&
        argv->via.array.ptr[0].type == MSGPACK_OBJECT_STR &&
        argv->via.array.ptr[0].via.str.size > 0) {
      const char *b = basename_of(argv->via.array.ptr[0].via.str.ptr,
                                  argv->via.array.ptr[0].via.str.size, &n);
      tr_proc_set_name(p, b, n);
    } else {
      char buf[32];
      int k = snprintf(buf, sizeof(buf), "pid %u", p->pid);
      tr_proc_set_name(p, buf, (size_t)k);
    }
  }
  cl->hello = true;

  packer pk;
  packer_init(&pk, 4);
  tr_mp_kv_u64(&pk.pk, "version", TR_PROTO_VERSION);
  tr_mp_kv_u64(&pk.pk, "daemon_pid", (uint64_t)getpid());
  tr_mp_kv_str(&pk.pk, "clock", p->tsc ? "tsc" : "monotonic");
  /* Producers write records with more payload slots than version 1's
   * first daemons took (4) only when told so (ARGS records). */
  tr_mp_kv_u64(&pk.pk, "max_extra", TR_RECORD_MAX_EXTRA);
  packer_send(cl, &pk, TR_MSG_WELCOME);
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_DEBUG, "event=hello %s role=%s name=%s client_pid=%u clock=%s",
         who(cl, pb), p->producer ? "producer" : "control",
         tr_log_q(q, p->name), p->pid, p->tsc ? "tsc" : "monotonic");
}

static void handle_session_create(client *cl, const msgpack_object *m) {
  tr_server *s = cl->srv;
  tr_proc *p = &cl->proc;
  const char *str = "";
  size_t n = 0;
  int fd;
  if (tr_peer_take_fds(&cl->conn, &fd, 1) != 1) {
    client_fail(cl, EBADF, "SESSION_CREATE without the output descriptor");
    return;
  }
  if (p->created != NULL) {
    close(fd);
    client_fail(cl, EBUSY,
                "SESSION_CREATE while this connection's session is open");
    return;
  }
  /* A client that predates the key writes JSON. */
  tr_format format = TR_FORMAT_JSON;
  int frc = tr_mp_get_str(m, "format", &str, &n);
  if (frc == -EINVAL || (frc == 0 && tr_format_parse(str, n, &format) < 0)) {
    close(fd);
    if (frc == -EINVAL)
      client_fail(cl, EINVAL, "SESSION_CREATE: format is not a string");
    else
      client_fail(cl, EINVAL,
                  "SESSION_CREATE: format '%.*s' is not supported (use "
                  "'" TR_FORMAT_NAME_JSON "', '" TR_FORMAT_NAME_JSON_GZ
                  "' or '" TR_FORMAT_NAME_PERFETTO "')",
                  (int)(n > 32 ? 32 : n), str);
    return;
  }
  if (tr_mp_get_str(m, "path", &str, &n) < 0) {
    str = "";
    n = 0;
  }
  /* Calls shorter than this are not written (docs/options.md). */
  uint64_t min_duration_ns = 0;
  if (tr_mp_get_u64(m, "min_duration_ns", &min_duration_ns) < 0)
    min_duration_ns = 0;
  bool was_idle = p->session == NULL;
  /* A member of another session switches to the one it creates. */
  tr_session_leave(p);
  check_failed(cl);
  if (cl->conn.dead) {
    close(fd);
    return;
  }
  tr_session *sess;
  int rc = tr_session_create(&s->sessions, p, fd, format, str, n,
                             s->limits.sessions_per_uid, &sess);
  if (rc < 0) {
    close(fd);
    client_fail(cl, -rc, "SESSION_CREATE refused: %s",
                rc == -EBADF ? "the output descriptor is not open for writing"
                : rc == -EINVAL ? "the output is not a regular file or device"
                : rc == -EMFILE ? "too many open sessions for this user"
                                : strerror(-rc));
    return;
  }
  sess->min_duration_ns = min_duration_ns;
  if (p->producer) {
    rc = tr_session_join(sess, p);
    check_failed(cl);
    if (rc < 0) {
      client_fail(cl, -rc, "SESSION_CREATE: cannot join: %s", strerror(-rc));
      return;
    }
  }
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_INFO, "event=session_create %s output=%s format=%s",
         who(cl, pb), tr_log_q(q, sess->path), tr_format_name(format));
  /* Idle pool workers of this process (still connected from an earlier
   * session) record into the new one: see docs/sessions.md. */
  if (p->producer && was_idle) {
    for (client *o = s->clients; o != NULL; o = o->next) {
      if (o == cl || o->conn.dead || !o->hello) continue;
      if (!tr_session_may_adopt(sess, &o->proc)) continue;
      if (tr_session_join(sess, &o->proc) == 0)
        tr_log(TR_LOG_INFO, "event=adopt %s creator_pid=%ld", who(o, pb),
               (long)cl->conn.pid);
      check_failed(o);
    }
  }
  if (cl->conn.dead) return;
  packer pk;
  packer_init(&pk, 2);
  tr_mp_kv_str(&pk.pk, "token", sess->token);
  tr_mp_kv_u64(&pk.pk, "epoch", sess->epoch);
  packer_send(cl, &pk, TR_MSG_SESSION_CREATED);
}

static void handle_session_join(client *cl, const msgpack_object *m) {
  tr_server *s = cl->srv;
  tr_proc *p = &cl->proc;
  const char *tok;
  size_t n;
  char pb[TR_LOG_PEER_MAX];
  if (tr_mp_get_str(m, "token", &tok, &n) < 0) {
    client_fail(cl, EPROTO, "SESSION_JOIN without a token");
    return;
  }
  tr_session *sess = tr_session_find(&s->sessions, tok, n);
  if (sess == NULL) {
    /* Not an error: the process waits, idle, for a session to adopt it. */
    send_joined(cl, false, 0);
    return;
  }
  if (sess->owner != cl->conn.uid) {
    tr_log(TR_LOG_WARN,
           "event=refuse %s request=SESSION_JOIN reason=\"the session "
           "belongs to uid %lu\"",
           who(cl, pb), (unsigned long)sess->owner);
    send_error(cl, EACCES, "the session belongs to another user");
    return;
  }
  if (!p->producer) {
    send_joined(cl, true, sess->epoch); /* control: a liveness check */
    return;
  }
  if (p->session == sess) {
    send_joined(cl, true, sess->epoch);
    return;
  }
  if (p->created != NULL) {
    client_fail(cl, EBUSY,
                "SESSION_JOIN from the creator of another open session");
    return;
  }
  tr_session_leave(p);
  int rc = tr_session_join(sess, p);
  check_failed(cl);
  if (rc < 0) {
    client_fail(cl, -rc, "SESSION_JOIN: %s", strerror(-rc));
    return;
  }
  if (cl->conn.dead) return;
  tr_log(TR_LOG_DEBUG, "event=join %s", who(cl, pb));
  send_joined(cl, true, sess->epoch);
}

static void handle_ring_add(client *cl, const msgpack_object *m) {
  tr_proc *p = &cl->proc;
  uint64_t tid, slots;
  const char *name = "";
  size_t n = 0;
  int fd;
  if (!p->producer) {
    client_fail(cl, EPROTO, "RING_ADD on a control connection");
    return;
  }
  if (tr_peer_take_fds(&cl->conn, &fd, 1) != 1) {
    client_fail(cl, EBADF, "RING_ADD without the ring descriptor");
    return;
  }
  if (tr_mp_get_u64(m, "tid", &tid) < 0 ||
      tr_mp_get_u64(m, "slots", &slots) < 0) {
    close(fd);
    client_fail(cl, EPROTO, "RING_ADD without tid or slots");
    return;
  }
  if (tr_mp_get_str(m, "name", &name, &n) < 0) {
    name = "";
    n = 0;
  }
  if (slots > cl->srv->limits.ring_slots_max) {
    close(fd);
    client_fail(cl, EFBIG, "RING_ADD: %llu slots exceeds the limit of %u",
                (unsigned long long)slots, cl->srv->limits.ring_slots_max);
    return;
  }
  if (p->nthreads >= cl->srv->limits.rings_per_proc) {
    close(fd);
    client_fail(cl, EMFILE, "RING_ADD: more than %u rings in one process",
                cl->srv->limits.rings_per_proc);
    return;
  }
  tr_usage *u = p->usage;
  uint64_t bytes = TR_SHM_HEADER_SIZE + slots * sizeof(tr_record);
  if (u->rings >= cl->srv->limits.rings_per_uid ||
      u->ring_bytes + bytes > cl->srv->limits.ring_bytes_per_uid) {
    close(fd);
    client_fail(cl, EMFILE,
                "RING_ADD: this user's rings would exceed the limit (%u "
                "rings, %llu bytes)",
                cl->srv->limits.rings_per_uid,
                (unsigned long long)cl->srv->limits.ring_bytes_per_uid);
    return;
  }
  tr_ringview v;
  int rc =
      slots > UINT32_MAX ? -EINVAL : tr_ringview_map(&v, fd, (uint32_t)slots);
  close(fd);
  if (rc < 0) {
    client_fail(cl, -rc, "RING_ADD: bad ring descriptor (%llu slots): %s (%s)",
                (unsigned long long)slots,
                rc == -EPERM    ? "not sealed against shrinking"
                : rc == -EINVAL ? "wrong size, slot count or header"
                                : "cannot map it",
                strerror(-rc));
    return;
  }
  v.clock = p->tsc ? cl->srv->tsclock : NULL;
  for (uint32_t i = 0; i < p->nthreads; i++) {
    if (p->threads[i]->ring.ino == v.ino && p->threads[i]->ring.dev == v.dev) {
      tr_ringview_unmap(&v);
      client_fail(cl, EEXIST, "RING_ADD: this ring is already registered");
      return;
    }
  }
  if (v.tid != tid) {
    uint32_t htid = v.tid;
    tr_ringview_unmap(&v);
    client_fail(cl, EPROTO, "RING_ADD: header tid %u differs from tid %llu",
                htid, (unsigned long long)tid);
    return;
  }
  rc = tr_proc_add_thread(p, &v, name, n);
  if (rc < 0) {
    client_fail(
        cl, -rc, "RING_ADD: %s",
        rc == -EMFILE ? "too many rings for one process" : strerror(-rc));
    return;
  }
}

static void handle_status(client *cl) {
  tr_server *s = cl->srv;
  uid_t viewer = cl->conn.uid;
  uint32_t conns = 0;
  for (const client *c = s->clients; c != NULL; c = c->next)
    if (viewer == 0 || c->conn.uid == viewer) conns++;
  tr_status_daemon d = {.socket = s->lst.path,
                        .system = s->system,
                        .uptime_ns = tr_monotonic_ns() - s->started_ns,
                        .connections = conns,
                        .record_rate_per_uid = s->limits.record_rate_per_uid};
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  tr_status_pack(&sb, &d, &s->sessions, viewer);
  send_reply(cl, TR_MSG_STATUS_REPLY, &sb);
  msgpack_sbuffer_destroy(&sb);
  char pb[TR_LOG_PEER_MAX];
  tr_log(TR_LOG_DEBUG, "event=status %s", who(cl, pb));
}

/* `traced stop`: the daemon's own user and root may stop it; the sessions
 * end as on SIGTERM, and the requester's connection closes once they are
 * finalised (its EOF tells `traced stop` the files are complete). */
static void handle_stop(client *cl) {
  tr_server *s = cl->srv;
  char pb[TR_LOG_PEER_MAX];
  uid_t me = geteuid();
  if (cl->conn.uid != 0 && cl->conn.uid != me) {
    char why[128];
    snprintf(why, sizeof(why),
             "only uid %lu (the daemon's user) and root may stop the daemon",
             (unsigned long)me);
    tr_log(TR_LOG_WARN, "event=refuse %s request=STOP reason=\"%s\"",
           who(cl, pb), why);
    send_error(cl, EPERM, why);
    queue_teardown(cl);
    return;
  }
  tr_log(TR_LOG_INFO, "event=stop_request %s sessions=%u", who(cl, pb),
         s->sessions.count);
  packer pk;
  packer_init(&pk, 2);
  tr_mp_kv_u64(&pk.pk, "daemon_pid", (uint64_t)getpid());
  tr_mp_kv_u64(&pk.pk, "sessions", s->sessions.count);
  packer_send(cl, &pk, TR_MSG_STOPPING);
  tr_server_stop(s);
}

static void handle_session_end(client *cl) {
  tr_proc *p = &cl->proc;
  if (p->created == NULL) {
    client_fail(cl, p->session ? EPERM : EINVAL,
                p->session ? "SESSION_END from a process that did not create "
                             "its session"
                           : "SESSION_END without an open session");
    return;
  }
  if (p->created->ending) {
    client_fail(cl, EALREADY, "SESSION_END repeated");
    return;
  }
  finish_session(cl->srv, p->created, true);
}

static void handle_process_info(client *cl, const msgpack_object *m) {
  const char *name;
  size_t n;
  uint64_t u;
  if (tr_mp_get_u64(m, "ppid", &u) == 0 && u <= INT32_MAX)
    cl->proc.ppid = (uint32_t)u;
  if (tr_mp_get_str(m, "name", &name, &n) == 0 && n > 0)
    tr_proc_set_name(&cl->proc, name, n);
}

static void on_frame(tr_peer *c, const tr_frame_hdr *h,
                     const uint8_t *payload) {
  client *cl = (client *)c;
  msgpack_unpacked up;
  msgpack_unpacked_init(&up);
  const msgpack_object *m = NULL; /* an empty payload is an empty map */
  if (h->len > 0) {
    size_t off = 0;
    if (tr_mpcheck_size(payload, h->len) != (long)h->len ||
        msgpack_unpack_next(&up, (const char *)payload, h->len, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != h->len || up.data.type != MSGPACK_OBJECT_MAP) {
      client_fail(cl, EPROTO, "%s: payload is not a msgpack map",
                  tr_msg_name(h->type));
      goto out;
    }
    m = &up.data;
  }
  if (!cl->hello && h->type != TR_MSG_HELLO) {
    client_fail(cl, EPROTO, "%s before HELLO", tr_msg_name(h->type));
    goto out;
  }
  switch (h->type) {
    case TR_MSG_HELLO:
      handle_hello(cl, m);
      break;
    case TR_MSG_SESSION_CREATE:
      handle_session_create(cl, m);
      break;
    case TR_MSG_SESSION_JOIN:
      handle_session_join(cl, m);
      break;
    case TR_MSG_RING_ADD:
      handle_ring_add(cl, m);
      break;
    case TR_MSG_DOORBELL:
      drain_client(cl->srv, cl, UINT64_MAX);
      break;
    case TR_MSG_STATUS:
      handle_status(cl);
      break;
    case TR_MSG_STOP:
      handle_stop(cl);
      break;
    case TR_MSG_SESSION_END:
      handle_session_end(cl);
      break;
    case TR_MSG_PROCESS_INFO:
      handle_process_info(cl, m);
      break;
    default:
      client_fail(cl, EPROTO, "unexpected message type %u (%s)", h->type,
                  tr_msg_name(h->type));
  }
out:
  msgpack_unpacked_destroy(&up);
}

/* ---- sessions ending ---------------------------------------------------- */

/* PROTOCOL.md section 2, SESSION_END: (1) frames already queued on member
 * connections are handled (a RING_ADD sent before the creator's END must
 * not be missed); (2)-(4) tr_session_end; (5) the creator's answer. */
static void finish_session(tr_server *s, tr_session *sess, bool reply) {
  if (sess->ending) return;
  sess->ending = true; /* from now on nobody joins it */
  client *creator = sess->creator != NULL ? sess->creator->owner : NULL;
  uint32_t n = sess->nmembers;
  client **snap = n > 0 ? malloc(n * sizeof(*snap)) : NULL;
  if (snap == NULL) n = 0;
  for (uint32_t i = 0; i < n; i++) snap[i] = sess->members[i]->owner;
  /* The creator's own later frames come after its END: not read here. */
  for (uint32_t i = 0; i < n; i++) {
    client *m = snap[i];
    if (m != creator && !m->conn.dead && m->proc.session == sess)
      client_read(m);
  }
  char path[TR_SESSION_PATH_MAX];
  memcpy(path, sess->path, sizeof(path));
  tr_session_stats st;
  tr_session_end(&s->sessions, sess, &st);
  for (uint32_t i = 0; i < n; i++) check_failed(snap[i]);
  free(snap);
  if (reply && creator != NULL && !creator->conn.dead) {
    packer pk;
    packer_init(&pk, 10);
    tr_mp_kv_u64(&pk.pk, "processes", st.processes);
    tr_mp_kv_u64(&pk.pk, "threads", st.threads);
    tr_mp_kv_u64(&pk.pk, "events", st.events);
    tr_mp_kv_u64(&pk.pk, "dropped", st.dropped);
    tr_mp_kv_u64(&pk.pk, "late", st.late);
    tr_mp_kv_u64(&pk.pk, "malformed", st.malformed);
    tr_mp_kv_u64(&pk.pk, "unmatched", st.unmatched);
    tr_mp_kv_u64(&pk.pk, "filtered", st.filtered);
    tr_mp_kv_u64(&pk.pk, "bytes", st.bytes);
    tr_mp_kv_str(&pk.pk, "path", path);
    packer_send(creator, &pk, TR_MSG_SESSION_SUMMARY);
  }
}

/* ---- connection lifecycle ---------------------------------------------- */

static void on_client_closed(uv_handle_t *h) { free(h->data); }

static void usage_put(tr_server *s, tr_usage *u);

static void idle_check(tr_server *s);

/* A connection's end: a session it created ends (without an answer), its
 * rings are drained into its session one last time, open calls end as
 * unfinished, the rings are unmapped. */
static void teardown(tr_server *s, client *cl) {
  tr_proc *p = &cl->proc;
  if (s->cursor == cl) s->cursor = cl->next;
  if (p->created != NULL) finish_session(s, p->created, false);
  tr_session_leave(p);
  tr_proc_fini(p);
  usage_put(s, p->usage);
  p->usage = NULL;
  if (cl->prev != NULL)
    cl->prev->next = cl->next;
  else
    s->clients = cl->next;
  if (cl->next != NULL) cl->next->prev = cl->prev;
  s->nclients--;
  tr_peer_close(&cl->conn, on_client_closed);
}

static void reap(tr_server *s) {
  if (s->depth > 0 || s->reaping) return;
  s->reaping = true;
  while (s->reap != NULL) {
    client *cl = s->reap;
    s->reap = cl->reap_next;
    teardown(s, cl);
  }
  s->reaping = false;
  idle_check(s);
}

static void on_conn_poll(uv_poll_t *h, int status, int events) {
  client *cl = h->data;
  tr_server *s = cl->srv;
  s->depth++;
  if (status < 0) {
    client_end(cl, TR_LOG_DEBUG, uv_strerror(status));
  } else {
    if ((events & UV_WRITABLE) && tr_peer_flush(&cl->conn) < 0)
      client_end(cl, TR_LOG_DEBUG, "connection lost while replying");
    if ((events & UV_READABLE) && !cl->conn.dead) client_read(cl);
  }
  s->depth--;
  reap(s);
}

static uint32_t clients_of_uid(const tr_server *s, uid_t uid) {
  uint32_t n = 0;
  for (const client *c = s->clients; c != NULL; c = c->next)
    if (c->conn.uid == uid) n++;
  return n;
}

/* Refuses a just-accepted socket with a best-effort ERROR. */
static void refuse(int fd, pid_t pid, uid_t uid, int code, const char *why) {
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_WARN, "event=refuse %s request=connect reason=%s",
         tr_log_peer(pb, pid, uid, 0), tr_log_q(q, why));
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 2);
  tr_mp_kv_i64(&pk, "code", code);
  tr_mp_kv_str(&pk, "message", why);
  uint8_t hdr[sizeof(tr_frame_hdr)];
  tr_frame_hdr_encode(hdr, TR_MSG_ERROR, (uint32_t)sb.size);
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {sb.data, sb.size}};
  struct msghdr mh;
  memset(&mh, 0, sizeof(mh));
  mh.msg_iov = iov;
  mh.msg_iovlen = 2;
  (void)sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  msgpack_sbuffer_destroy(&sb);
  close(fd);
}

void tr_limits_default(tr_limits *l, bool system) {
  if (l->record_rate_per_uid == 0)
    l->record_rate_per_uid =
        system ? TR_RECORD_RATE_PER_UID_SYSTEM : UINT64_MAX;
  if (l->conns_per_uid == 0) l->conns_per_uid = TR_CONNS_PER_UID;
  if (l->conns_max == 0) l->conns_max = TR_CONNS_MAX;
  if (l->sessions_per_uid == 0) l->sessions_per_uid = TR_SESSIONS_PER_UID;
  if (l->ring_slots_max == 0 || l->ring_slots_max > TR_RING_MAX_SLOTS)
    l->ring_slots_max = TR_RING_MAX_SLOTS;
  if (l->arena_bytes_max == 0 || l->arena_bytes_max > TR_ARENA_MAX_SIZE)
    l->arena_bytes_max = TR_ARENA_MAX_SIZE;
  if (l->rings_per_proc == 0 || l->rings_per_proc > TR_PROC_MAX_THREADS)
    l->rings_per_proc = TR_PROC_MAX_THREADS;
  if (l->rings_per_uid == 0) l->rings_per_uid = TR_RINGS_PER_UID;
  if (l->ring_bytes_per_uid == 0) l->ring_bytes_per_uid = TR_RING_BYTES_PER_UID;
  if (l->open_calls_per_uid == 0) l->open_calls_per_uid = TR_OPEN_CALLS_PER_UID;
  /* HELLO with a long argv needs room; below 4 KiB nothing works. */
  if (l->frame_bytes_max == 0 || l->frame_bytes_max > TR_FRAME_MAX_PAYLOAD)
    l->frame_bytes_max = TR_FRAME_MAX_PAYLOAD;
  if (l->frame_bytes_max < 4096) l->frame_bytes_max = 4096;
  if (l->hello_timeout_s == 0) l->hello_timeout_s = TR_HELLO_TIMEOUT_S;
}

/* Every connection is a descriptor: take all the kernel allows, and keep
 * the connection limits below it with headroom (rings and the output are
 * descriptors only briefly; listening, lock, log and loop need a few), so
 * a flood meets the per-user limit, with its clear refusal, first. */
static void raise_fd_limit(tr_limits *l) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  const rlim_t headroom = 64;
  rlim_t usable =
      rl.rlim_cur > 2 * headroom ? rl.rlim_cur - headroom : rl.rlim_cur / 2;
  if (l->conns_max > usable) {
    tr_log(TR_LOG_WARN,
           "event=limit what=conns_max nofile=%llu conns_max=%llu "
           "reason=\"the open-file limit allows no more connections\"",
           (unsigned long long)rl.rlim_cur, (unsigned long long)usable);
    l->conns_max = (uint32_t)usable;
  }
  if (l->conns_per_uid > l->conns_max) l->conns_per_uid = l->conns_max;
}

/* The budget entry of `uid`, created on its first connection. */
static tr_usage *usage_get(tr_server *s, uid_t uid) {
  for (tr_usage *u = s->usage; u != NULL; u = u->next) {
    if (u->uid == uid) {
      u->refs++;
      return u;
    }
  }
  tr_usage *u = calloc(1, sizeof(*u));
  if (u == NULL) return NULL;
  u->uid = uid;
  u->refs = 1;
  u->open_slots_max = s->limits.open_calls_per_uid;
  u->rate_tokens = s->limits.record_rate_per_uid;
  u->next = s->usage;
  s->usage = u;
  return u;
}

static void usage_put(tr_server *s, tr_usage *u) {
  if (u == NULL || --u->refs > 0) return;
  for (tr_usage **pp = &s->usage; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == u) {
      *pp = u->next;
      break;
    }
  }
  free(u);
}

static void accept_one(tr_server *s, int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
    tr_log(TR_LOG_ERROR, "event=accept_error reason=\"SO_PEERCRED: %s\"",
           strerror(errno));
    close(fd);
    return;
  }
  if (s->nclients >= s->limits.conns_max) {
    refuse(fd, cred.pid, cred.uid, EMFILE, "too many connections");
    return;
  }
  if (clients_of_uid(s, cred.uid) >= s->limits.conns_per_uid) {
    refuse(fd, cred.pid, cred.uid, EMFILE,
           "too many connections for this user");
    return;
  }
  client *cl = calloc(1, sizeof(*cl));
  if (cl == NULL) {
    refuse(fd, cred.pid, cred.uid, ENOMEM, "out of memory");
    return;
  }
  cl->conn.poll.data = cl;
  int rc = tr_peer_init(&cl->conn, s->loop, fd, on_frame, on_conn_poll);
  if (rc < 0) {
    free(cl);
    refuse(fd, cred.pid, cred.uid, -rc, "cannot set up the connection");
    return;
  }
  cl->srv = s;
  cl->accepted_ms = uv_now(s->loop);
  tr_proc_init(&cl->proc, cl->conn.pid, cl->conn.uid, cl->conn.gid);
  cl->proc.owner = cl;
  cl->proc.usage = usage_get(s, cl->conn.uid);
  if (cl->proc.usage == NULL) {
    tr_peer_close(&cl->conn, on_client_closed);
    tr_log(TR_LOG_WARN, "event=drop pid=%d uid=%u reason=\"out of memory\"",
           (int)cred.pid, (unsigned)cred.uid);
    return;
  }
  cl->next = s->clients;
  if (s->clients != NULL) s->clients->prev = cl;
  s->clients = cl;
  s->nclients++;
  if (s->nclients == 1) {
    uv_timer_stop(&s->idle_timer);
    uv_timer_start(&s->drain_timer, on_drain_timer, TR_DRAIN_INTERVAL_MS,
                   TR_DRAIN_INTERVAL_MS);
  }
  char pb[TR_LOG_PEER_MAX];
  tr_log(TR_LOG_DEBUG, "event=connect %s",
         tr_log_peer(pb, cl->conn.pid, cl->conn.uid, 0));
}

static void on_listen_poll(uv_poll_t *h, int status, int events) {
  tr_server *s = h->data;
  (void)events;
  if (status < 0) {
    tr_log(TR_LOG_ERROR, "event=accept_error reason=\"%s\"",
           uv_strerror(status));
    return;
  }
  s->depth++;
  for (int i = 0; i < ACCEPTS_PER_WAKEUP && !s->stopping; i++) {
    int fd = accept4(s->lst.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if ((errno == EMFILE || errno == ENFILE) && s->reserve_fd >= 0) {
        /* Accept and close one connection with the spare descriptor, so
         * the pending one does not keep the socket readable forever. */
        tr_log(TR_LOG_ERROR,
               "event=refuse request=connect reason=\"accept: %s\"",
               strerror(errno));
        close(s->reserve_fd);
        fd = accept4(s->lst.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        break;
      }
      tr_log(TR_LOG_ERROR, "event=accept_error reason=\"%s\"", strerror(errno));
      break;
    }
    accept_one(s, fd);
  }
  s->depth--;
  reap(s);
}

/* ---- fair draining -------------------------------------------------------
 * One user's flood must not delay another user's session
 * (docs/service.md, "Fairness and the record rate"): a drain pass gives
 * every connection turns of TR_DRAIN_QUANTUM records, starting each pass
 * at a different connection; a user gets at most TR_DRAIN_PASS_PER_UID
 * records per pass (doorbells between passes draw from the same budget)
 * and at most its rate-limit tokens.  What is left waits in the rings; a
 * producer whose ring stays full drops and counts what it cannot write,
 * so a user over the rate limit sees the loss in its own trace and
 * summary, never anyone else. */

static bool rate_limited(const tr_server *s) {
  return s->limits.record_rate_per_uid != UINT64_MAX;
}

static uint64_t drain_allowance(const tr_server *s, const tr_usage *u) {
  /* With one user connected there is nobody to be fair to: the per-pass
   * share would only cap how fast that user's rings are emptied. */
  if (s->usage == u && u->next == NULL && !rate_limited(s)) return UINT64_MAX;
  uint64_t left = u->pass_used >= TR_DRAIN_PASS_PER_UID
                      ? 0
                      : TR_DRAIN_PASS_PER_UID - u->pass_used;
  if (rate_limited(s) && u->rate_tokens < left) left = u->rate_tokens;
  return left;
}

static void note_throttled(tr_server *s, tr_usage *u) {
  u->throttled++;
  uint64_t now = uv_now(s->loop);
  if (u->limit_logged_ms != 0 && now - u->limit_logged_ms < 10000) return;
  u->limit_logged_ms = now;
  tr_log(TR_LOG_WARN,
         "event=limit uid=%lu what=record_rate limit=%llu reason=\"this "
         "user's producers write more records per second than the limit; "
         "what their rings cannot hold is dropped and counted in their "
         "traces\"",
         (unsigned long)u->uid,
         (unsigned long long)s->limits.record_rate_per_uid);
}

/* Drains at most `quantum` records of cl's rings, charged to its user.
 * Returns true when records were left. */
/* interim: see drain_client. */
#define TR_INTERIM_BACKLOG_MAX (4u * 1024u * 1024u)

static bool drain_client(tr_server *s, client *cl, uint64_t quantum) {
  tr_usage *u = cl->proc.usage;
  if (cl->conn.dead || cl->proc.nthreads == 0 || u == NULL) return false;
  uint64_t allow = drain_allowance(s, u);
  if (allow == 0) {
    if (rate_limited(s) && u->rate_tokens == 0) note_throttled(s, u);
    return false;
  }
  if (quantum > allow) quantum = allow;
  uint64_t used;
  bool more;
  if (tr_proc_drain_some(&cl->proc, quantum, &used, &more) < 0)
    check_failed(cl);
  /* interim: the one-threaded daemon bounds its writers' queues as its
   * synchronous writes used to, by waiting for the disk once a writer's
   * I/O thread is TR_INTERIM_BACKLOG_MAX behind (4 MiB rather than 1:
   * fewer waits, each two context switches); the drain workers will
   * instead stop draining that session's processes. */
  tr_session *ss = cl->proc.session;
  if (ss != NULL && tr_writer_backlog(ss->out) > TR_INTERIM_BACKLOG_MAX)
    tr_writer_wait(ss->out);
  u->pass_used += used;
  if (rate_limited(s)) {
    u->rate_tokens = used < u->rate_tokens ? u->rate_tokens - used : 0;
    if (more && u->rate_tokens == 0) note_throttled(s, u);
  }
  return more;
}

static void drain_pass(tr_server *s, uint64_t now) {
  uint64_t rate = s->limits.record_rate_per_uid;
  uint64_t dt = now - s->refill_ms;
  s->refill_ms = now;
  for (tr_usage *u = s->usage; u != NULL; u = u->next) {
    u->pass_used = 0;
    if (!rate_limited(s)) continue;
    /* A bucket of one second's worth: bursts up to the rate pass. */
    uint64_t add =
        dt >= 1000 ? rate : rate / 1000 * dt + rate % 1000 * dt / 1000;
    u->rate_tokens = rate - u->rate_tokens <= add ? rate : u->rate_tokens + add;
  }
  if (s->clients == NULL) return;
  client *first = s->cursor != NULL ? s->cursor : s->clients;
  bool more = true;
  while (more) {
    more = false;
    client *cl = first;
    do {
      if (drain_client(s, cl, TR_DRAIN_QUANTUM)) more = true;
      cl = cl->next != NULL ? cl->next : s->clients;
    } while (cl != first);
  }
  s->cursor = first->next;
}

/* ---- timers -------------------------------------------------------------- */

static void drain_pass(tr_server *s, uint64_t now);

static void on_drain_timer(uv_timer_t *t) {
  tr_server *s = t->data;
  s->depth++;
  uint64_t now = uv_now(s->loop);
  for (client *cl = s->clients; cl != NULL; cl = cl->next) {
    /* A peer that connects and never says HELLO holds a connection of its
     * user's budget for at most --hello-timeout seconds. */
    if (!cl->hello && !cl->conn.dead &&
        now - cl->accepted_ms > 1000u * s->limits.hello_timeout_s)
      client_fail(cl, ETIMEDOUT, "no HELLO within %u s",
                  s->limits.hello_timeout_s);
  }
  drain_pass(s, now);
  /* The heartbeat tells producers waiting on a full ring that the daemon
   * lives and serves, however long their own turn takes (fair draining
   * among many users, the rate limit). */
  if (now - s->beat_ms >= TR_BEAT_INTERVAL_MS) {
    for (client *cl = s->clients; cl != NULL; cl = cl->next)
      tr_proc_beat(&cl->proc, now);
    s->beat_ms = now;
  }
  tr_sessions_flush(&s->sessions);
  if (now - s->rates_ms >= 1000) {
    tr_sessions_sample_rates(&s->sessions, tr_monotonic_ns());
    s->rates_ms = now;
  }
  s->depth--;
  reap(s);
}

static void on_idle_timer(uv_timer_t *t) {
  tr_server *s = t->data;
  if (s->nclients != 0 || s->sessions.count != 0) return;
  tr_log(TR_LOG_INFO, "event=idle_exit seconds=%u", s->idle_exit_s);
  tr_server_stop(s);
}

/* With no connection left, the drain timer sleeps and the idle countdown
 * starts. */
static void idle_check(tr_server *s) {
  if (s->stopping || s->nclients != 0) return;
  uv_timer_stop(&s->drain_timer);
  if (s->idle_exit_s > 0 && !uv_is_active((uv_handle_t *)&s->idle_timer))
    uv_timer_start(&s->idle_timer, on_idle_timer,
                   (uint64_t)s->idle_exit_s * 1000u, 0);
}

int tr_server_start(uv_loop_t *loop, const tr_server_opts *opts,
                    tr_server **out) {
  tr_server *s = calloc(1, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  s->loop = loop;
  s->lst.fd = s->lst.lock_fd = s->reserve_fd = -1;
  s->idle_exit_s = opts->idle_exit_s;
  s->system = opts->system;
  s->started_ns = tr_monotonic_ns();
  s->refill_ms = s->rates_ms = uv_now(loop);
  s->limits = opts->limits;
  tr_limits_default(&s->limits, opts->system);
  raise_fd_limit(&s->limits);
  tr_peer_max_payload = s->limits.frame_bytes_max;
  tr_sessions_init(&s->sessions);
  int rc = 0;
  const char *why = "disabled by --clock monotonic";
  if (!opts->no_tsc && tr_tsclock_usable(&why)) {
    s->tsclock = malloc(sizeof(*s->tsclock));
    if (s->tsclock == NULL) {
      rc = -ENOMEM;
      goto err;
    }
    tr_tsclock_init(s->tsclock, NULL, NULL, 1000);
  } else {
    tr_log(TR_LOG_INFO, "event=clock clock=monotonic reason=\"%s\"", why);
  }
  tr_listen_opts lo = {.path = opts->socket_path,
                       .make_dir = opts->make_dir,
                       .system = opts->system,
                       .has_group = opts->has_group,
                       .group = opts->group,
                       .activated_fd = opts->activated_fd};
  rc = tr_listen_open(&s->lst, &lo);
  if (rc < 0) goto err;
  s->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if ((rc = uv_poll_init(loop, &s->listen_poll, s->lst.fd)) < 0) goto err;
  s->listen_poll.data = s;
  s->listening = true;
  uv_poll_start(&s->listen_poll, UV_READABLE, on_listen_poll);
  uv_timer_init(loop, &s->drain_timer);
  uv_timer_init(loop, &s->idle_timer);
  s->drain_timer.data = s;
  s->idle_timer.data = s;
  uv_timer_start(&s->drain_timer, on_drain_timer, TR_DRAIN_INTERVAL_MS,
                 TR_DRAIN_INTERVAL_MS);
  idle_check(s);
  char q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_INFO,
         "event=listen socket=%s mode=%s%s uid=%lu version=%s protocol=%u",
         tr_log_q(q, s->lst.path), s->system ? "system" : "private",
         s->lst.activated ? " activated=1" : "", (unsigned long)geteuid(),
         TRACED_VERSION, TR_PROTO_VERSION);
  *out = s;
  return 0;
err:
  tr_listen_close(&s->lst);
  if (s->reserve_fd >= 0) close(s->reserve_fd);
  free(s->tsclock);
  free(s);
  return rc;
}

void tr_server_stop(tr_server *s) {
  if (s->stopping) return;
  s->stopping = true;
  s->depth++;
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listen_poll, NULL);
    s->listening = false;
  }
  /* The socket goes and the lock is released now, so a new daemon may
   * start as soon as this one stops answering. */
  tr_listen_close(&s->lst);
  tr_log(TR_LOG_INFO, "event=stop sessions=%u connections=%u",
         s->sessions.count, s->nclients);
  while (s->sessions.head != NULL) {
    tr_session *h = s->sessions.head;
    finish_session(s, h, true);
    if (s->sessions.head == h) break; /* cannot happen: ending is final */
  }
  for (client *cl = s->clients; cl != NULL; cl = cl->next)
    client_end(cl, TR_LOG_DEBUG, "the daemon is stopping");
  s->depth--;
  reap(s);
  uv_close((uv_handle_t *)&s->drain_timer, NULL);
  uv_close((uv_handle_t *)&s->idle_timer, NULL);
}

bool tr_server_stopped(const tr_server *s) { return s->stopping; }

void tr_server_free(tr_server *s) {
  if (s == NULL) return;
  tr_listen_close(&s->lst);
  if (s->reserve_fd >= 0) close(s->reserve_fd);
  free(s->tsclock);
  free(s);
}

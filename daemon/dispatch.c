/* dispatch.c: the protocol's messages (PROTOCOL.md): one handler per
 * message a client sends, its reply, and the end of a session. */
#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "mpcheck.h"
#include "output/formats.h"
#include "proto/mp.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"
#include "server_int.h"
#include "status.h"
#include "transport.h"

/* ---- replies ------------------------------------------------------------ */

typedef struct packer {
  msgpack_sbuffer sb;
  msgpack_packer pk;
} packer;

static void packer_init(packer *p) {
  msgpack_sbuffer_init(&p->sb);
  msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void packer_send(client *cl, packer *p, uint16_t type) {
  tr_conn_send_reply(cl, type, &p->sb);
  msgpack_sbuffer_destroy(&p->sb);
}

static void send_joined(client *cl, bool active, uint64_t epoch) {
  packer p;
  packer_init(&p);
  tr_msg_session_joined_pack(&p.pk, &(tr_msg_session_joined){active, epoch});
  packer_send(cl, &p, TR_MSG_SESSION_JOINED);
}

/* ---- message handlers --------------------------------------------------- */

static const char *basename_of(const char *s, size_t n, size_t *len) {
  const char *b = s;
  for (size_t i = 0; i < n; i++)
    if (s[i] == '/') b = s + i + 1;
  *len = n - (size_t)(b - s);
  return b;
}

static void handle_hello(client *cl, const msgpack_object *m) {
  tr_proc *p = &cl->proc;
  tr_msg_hello h;
  tr_msg_err err;
  if (cl->hello) {
    tr_conn_fail(cl, EPROTO, "second HELLO");
    return;
  }
  int urc = tr_msg_hello_unpack(m, &h, &err);
  if (urc < 0) {
    tr_conn_fail(cl, -urc, "%s", err.text);
    return;
  }
  p->producer = h.producer;
  /* A producer that can write raw TSC ticks says so; it does only if the
   * WELCOME tells it to (the daemon then converts them, tsclock.h). */
  p->tsc = p->producer && cl->srv->tsclock != NULL && h.tsc;
  p->pid = (uint32_t)h.pid;
  if (h.has_ppid) p->ppid = (uint32_t)h.ppid;

  if (p->producer) {
    uint64_t size = h.arena_size;
    int fd;
    if (tr_peer_take_fds(&cl->conn, &fd, 1) != 1) {
      tr_conn_fail(cl, EBADF, "HELLO: producer without the arena descriptor");
      return;
    }
    if (size < TR_ARENA_MIN_SIZE || size > cl->srv->limits.arena_bytes_max) {
      tr_dtransport_close(fd);
      tr_conn_fail(cl, EINVAL, "HELLO: arena_size %llu out of range",
                   (unsigned long long)size);
      return;
    }
    tr_arenaview a;
    int rc = tr_arena_map(&a, fd, (uint32_t)size);
    tr_dtransport_close(fd);
    if (rc < 0) {
      tr_conn_fail(cl, -rc, "HELLO: bad arena descriptor: %s (%s)",
                   rc == -EPERM    ? "not sealed against shrinking"
                   : rc == -EINVAL ? "wrong size or header"
                                   : "cannot map it",
                   strerror(-rc));
      return;
    }
    tr_proc_set_arena(p, &a);
    /* The worker that will drain it, and the request that will let go of
     * it when the connection closes (allocated now, so that a teardown
     * never needs memory). */
    cl->close_op = calloc(1, sizeof(*cl->close_op));
    if (cl->close_op == NULL || tr_workers_add(&cl->srv->workers, p) < 0) {
      tr_conn_fail(cl, ENOMEM, "HELLO: out of memory");
      return;
    }
  }

  /* Display name: `name`, else argv[0]'s last component, else the pid. */
  if (h.name.len > 0) {
    tr_proc_set_name(p, h.name.ptr, h.name.len);
  } else if (h.argv0.len > 0) {
    size_t n;
    const char *b = basename_of(h.argv0.ptr, h.argv0.len, &n);
    tr_proc_set_name(p, b, n);
  } else {
    char buf[32];
    int k = snprintf(buf, sizeof(buf), "pid %u", p->pid);
    tr_proc_set_name(p, buf, (size_t)k);
  }
  cl->hello = true;

  packer pk;
  packer_init(&pk);
  /* Producers write records with more payload slots than version 1's
   * first daemons took (4) only when told so (ARGS records). */
  tr_msg_welcome_pack(&pk.pk, &(tr_msg_welcome){
                                  .version = TR_PROTO_VERSION,
                                  .daemon_pid = (uint64_t)getpid(),
                                  .tsc = p->tsc,
                                  .max_extra = TR_RECORD_MAX_EXTRA,
                              });
  packer_send(cl, &pk, TR_MSG_WELCOME);
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_DEBUG, "event=hello %s role=%s name=%s client_pid=%u clock=%s",
         tr_conn_who(cl, pb), p->producer ? TR_ROLE_PRODUCER : TR_ROLE_CONTROL,
         tr_log_q(q, p->name), p->pid,
         p->tsc ? TR_CLOCK_TSC : TR_CLOCK_MONOTONIC);
}

static void handle_session_create(client *cl, const msgpack_object *m) {
  tr_server *s = cl->srv;
  tr_proc *p = &cl->proc;
  tr_msg_session_create c;
  tr_msg_err err;
  int h, fd;
  if (tr_peer_take_fds(&cl->conn, &h, 1) != 1) {
    tr_conn_fail(cl, EBADF, "SESSION_CREATE without the output descriptor");
    return;
  }
  /* From here the output is a C runtime descriptor, closed with close(). */
  if ((fd = tr_dtransport_output_fd(h)) < 0) {
    tr_conn_fail(cl, -fd, "SESSION_CREATE: the output handle: %s",
                 strerror(-fd));
    return;
  }
  if (p->created != NULL) {
    close(fd);
    tr_conn_fail(cl, EBUSY,
                 "SESSION_CREATE while this connection's session is open");
    return;
  }
  int urc = tr_msg_session_create_unpack(m, &c, &err);
  if (urc < 0) {
    close(fd);
    tr_conn_fail(cl, -urc, "%s", err.text);
    return;
  }
  /* A client that predates the key writes JSON. */
  tr_format format = TR_FORMAT_JSON;
  if (c.format.ptr != NULL &&
      tr_format_parse(c.format.ptr, c.format.len, &format) < 0) {
    close(fd);
    tr_conn_fail(cl, EINVAL,
                 "SESSION_CREATE: format '%.*s' is not supported (use "
                 "'" TR_FORMAT_NAME_JSON "', '" TR_FORMAT_NAME_JSON_GZ
                 "' or '" TR_FORMAT_NAME_PERFETTO "')",
                 (int)(c.format.len > 32 ? 32 : c.format.len), c.format.ptr);
    return;
  }
  /* Calls shorter than this are not written (docs/options.md). */
  uint64_t min_duration_ns = c.min_duration_ns;
  bool was_idle = p->session == NULL;
  /* A member of another session switches to the one it creates. */
  tr_session_leave(&s->sessions, p);
  tr_conn_check_failed(cl);
  if (cl->conn.dead) {
    close(fd);
    return;
  }
  tr_session *sess;
  int rc = tr_session_create(&s->sessions, p, fd, format, c.path.ptr,
                             c.path.len, s->limits.sessions_per_uid, &sess);
  if (rc < 0) {
    close(fd);
    tr_conn_fail(cl, -rc, "SESSION_CREATE refused: %s",
                 rc == -EBADF ? "the output descriptor is not open for writing"
                 : rc == -EINVAL ? "the output is not a regular file or device"
                 : rc == -EMFILE ? "too many open sessions for this user"
                                 : strerror(-rc));
    return;
  }
  sess->min_duration_ns = min_duration_ns;
  /* The smaller of the client's bound and the daemon's (`traced serve
   * --max-size`), 0 being none; never below what a trace's head and
   * ending need. */
  uint64_t max_size = c.max_size;
  uint64_t cap = s->limits.trace_bytes_max;
  if (cap != 0 && (max_size == 0 || max_size > cap)) max_size = cap;
  if (max_size != 0 && max_size < TR_TRACE_BYTES_MIN)
    max_size = TR_TRACE_BYTES_MIN;
  sess->max_size = max_size;
  if (max_size != 0) tr_writer_set_max_bytes(sess->out, max_size);
  if (p->producer) {
    rc = tr_session_join(&s->sessions, sess, p);
    tr_conn_check_failed(cl);
    if (rc < 0) {
      tr_conn_fail(cl, -rc, "SESSION_CREATE: cannot join: %s", strerror(-rc));
      return;
    }
  }
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_INFO, "event=session_create %s output=%s format=%s",
         tr_conn_who(cl, pb), tr_log_q(q, sess->path), tr_format_name(format));
  /* Idle pool workers of this process (still connected from an earlier
   * session) record into the new one: see docs/sessions.md. */
  if (p->producer && was_idle) {
    for (client *o = s->clients; o != NULL; o = o->next) {
      if (o == cl || o->conn.dead || !o->hello) continue;
      if (!tr_session_may_adopt(sess, &o->proc)) continue;
      if (tr_session_join(&s->sessions, sess, &o->proc) == 0)
        tr_log(TR_LOG_INFO, "event=adopt %s creator_pid=%ld",
               tr_conn_who(o, pb), (long)cl->conn.pid);
      tr_conn_check_failed(o);
    }
  }
  if (cl->conn.dead) return;
  tr_msg_session_created created = {.epoch = sess->epoch};
  memcpy(created.token, sess->token, sizeof(created.token));
  packer pk;
  packer_init(&pk);
  tr_msg_session_created_pack(&pk.pk, &created);
  packer_send(cl, &pk, TR_MSG_SESSION_CREATED);
}

static void handle_session_join(client *cl, const msgpack_object *m) {
  tr_server *s = cl->srv;
  tr_proc *p = &cl->proc;
  tr_msg_session_join j;
  tr_msg_err err;
  char pb[TR_LOG_PEER_MAX];
  int urc = tr_msg_session_join_unpack(m, &j, &err);
  if (urc < 0) {
    tr_conn_fail(cl, -urc, "%s", err.text);
    return;
  }
  tr_session *sess = tr_session_find(&s->sessions, j.token.ptr, j.token.len);
  if (sess == NULL) {
    /* Not an error: the process waits, idle, for a session to adopt it. */
    send_joined(cl, false, 0);
    return;
  }
  if (sess->owner != cl->conn.uid) {
    tr_log(TR_LOG_WARN,
           "event=refuse %s request=SESSION_JOIN reason=\"the session "
           "belongs to uid %lu\"",
           tr_conn_who(cl, pb), (unsigned long)sess->owner);
    tr_conn_send_error(cl, EACCES, "the session belongs to another user");
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
    tr_conn_fail(cl, EBUSY,
                 "SESSION_JOIN from the creator of another open session");
    return;
  }
  tr_session_leave(&s->sessions, p);
  int rc = tr_session_join(&s->sessions, sess, p);
  tr_conn_check_failed(cl);
  if (rc < 0) {
    tr_conn_fail(cl, -rc, "SESSION_JOIN: %s", strerror(-rc));
    return;
  }
  if (cl->conn.dead) return;
  tr_log(TR_LOG_DEBUG, "event=join %s", tr_conn_who(cl, pb));
  send_joined(cl, true, sess->epoch);
}

static void handle_ring_add(client *cl, const msgpack_object *m) {
  tr_proc *p = &cl->proc;
  tr_msg_ring_add r;
  tr_msg_err err;
  int fd;
  if (!p->producer) {
    tr_conn_fail(cl, EPROTO, "RING_ADD on a control connection");
    return;
  }
  if (tr_peer_take_fds(&cl->conn, &fd, 1) != 1) {
    tr_conn_fail(cl, EBADF, "RING_ADD without the ring descriptor");
    return;
  }
  int urc = tr_msg_ring_add_unpack(m, &r, &err);
  if (urc < 0) {
    tr_dtransport_close(fd);
    tr_conn_fail(cl, -urc, "%s", err.text);
    return;
  }
  uint64_t tid = r.tid, slots = r.slots;
  if (slots > cl->srv->limits.ring_slots_max) {
    tr_dtransport_close(fd);
    tr_conn_fail(cl, EFBIG, "RING_ADD: %llu slots exceeds the limit of %u",
                 (unsigned long long)slots, cl->srv->limits.ring_slots_max);
    return;
  }
  pthread_mutex_lock(&p->lock);
  uint32_t nthreads = p->nthreads;
  pthread_mutex_unlock(&p->lock);
  if (nthreads >= cl->srv->limits.rings_per_proc) {
    tr_dtransport_close(fd);
    tr_conn_fail(cl, EMFILE, "RING_ADD: more than %u rings in one process",
                 cl->srv->limits.rings_per_proc);
    return;
  }
  tr_usage *u = p->usage;
  uint64_t bytes = TR_SHM_HEADER_SIZE + slots * sizeof(tr_record);
  if (u->rings >= cl->srv->limits.rings_per_uid ||
      u->ring_bytes + bytes > cl->srv->limits.ring_bytes_per_uid) {
    tr_dtransport_close(fd);
    tr_conn_fail(cl, EMFILE,
                 "RING_ADD: this user's rings would exceed the limit (%u "
                 "rings, %llu bytes)",
                 cl->srv->limits.rings_per_uid,
                 (unsigned long long)cl->srv->limits.ring_bytes_per_uid);
    return;
  }
  tr_ringview v;
  int rc =
      slots > UINT32_MAX ? -EINVAL : tr_ringview_map(&v, fd, (uint32_t)slots);
  tr_dtransport_close(fd);
  if (rc < 0) {
    tr_conn_fail(cl, -rc, "RING_ADD: bad ring descriptor (%llu slots): %s (%s)",
                 (unsigned long long)slots,
                 rc == -EPERM    ? "not sealed against shrinking"
                 : rc == -EINVAL ? "wrong size, slot count or header"
                                 : "cannot map it",
                 strerror(-rc));
    return;
  }
  /* Its worker converts its TSC readings with a clock of its own. */
  v.clock = p->tsc ? tr_workers_clock(&cl->srv->workers, p) : NULL;
  pthread_mutex_lock(&p->lock);
  for (uint32_t i = 0; i < p->nthreads; i++) {
    if (p->threads[i]->ring.ino == v.ino && p->threads[i]->ring.dev == v.dev) {
      pthread_mutex_unlock(&p->lock);
      tr_ringview_unmap(&v);
      tr_conn_fail(cl, EEXIST, "RING_ADD: this ring is already registered");
      return;
    }
  }
  pthread_mutex_unlock(&p->lock);
  if (v.tid != tid) {
    uint32_t htid = v.tid;
    tr_ringview_unmap(&v);
    tr_conn_fail(cl, EPROTO, "RING_ADD: header tid %u differs from tid %llu",
                 htid, (unsigned long long)tid);
    return;
  }
  pthread_mutex_lock(&p->lock);
  rc = tr_proc_add_thread(p, &v, r.name.ptr, r.name.len);
  pthread_mutex_unlock(&p->lock);
  if (rc < 0) {
    tr_conn_fail(
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
  bool activated;
  tr_status_daemon d = {.socket = tr_server_listen_where(s, &activated),
                        .system = s->system,
                        .uptime_ns = tr_monotonic_ns() - s->started_ns,
                        .connections = conns,
                        .record_rate_per_uid = s->limits.record_rate_per_uid};
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  tr_status_pack(&sb, &d, &s->sessions, viewer);
  tr_conn_send_reply(cl, TR_MSG_STATUS_REPLY, &sb);
  msgpack_sbuffer_destroy(&sb);
  char pb[TR_LOG_PEER_MAX];
  tr_log(TR_LOG_DEBUG, "event=status %s", tr_conn_who(cl, pb));
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
           tr_conn_who(cl, pb), why);
    tr_conn_send_error(cl, EPERM, why);
    tr_conn_queue_teardown(cl);
    return;
  }
  tr_log(TR_LOG_INFO, "event=stop_request %s sessions=%u", tr_conn_who(cl, pb),
         s->sessions.count);
  packer pk;
  packer_init(&pk);
  tr_msg_stopping_pack(
      &pk.pk, &(tr_msg_stopping){(uint64_t)getpid(), s->sessions.count});
  packer_send(cl, &pk, TR_MSG_STOPPING);
  tr_server_stop(s);
}

static void handle_session_end(client *cl) {
  tr_proc *p = &cl->proc;
  if (p->created == NULL) {
    tr_conn_fail(cl, p->session ? EPERM : EINVAL,
                 p->session ? "SESSION_END from a process that did not create "
                              "its session"
                            : "SESSION_END without an open session");
    return;
  }
  if (p->created->ending) {
    tr_conn_fail(cl, EALREADY, "SESSION_END repeated");
    return;
  }
  tr_dispatch_finish_session(cl->srv, p->created, true);
}

static void handle_process_info(client *cl, const msgpack_object *m) {
  tr_msg_process_info pi;
  tr_msg_err err;
  int urc = tr_msg_process_info_unpack(m, &pi, &err);
  if (urc < 0) {
    tr_conn_fail(cl, -urc, "%s", err.text);
    return;
  }
  pthread_mutex_lock(&cl->proc.lock);
  if (pi.has_ppid) cl->proc.ppid = (uint32_t)pi.ppid;
  if (pi.name.len > 0) tr_proc_set_name(&cl->proc, pi.name.ptr, pi.name.len);
  pthread_mutex_unlock(&cl->proc.lock);
  /* A process it started: named at the session's end if it is a Python
   * interpreter that never joined (docs/sessions.md).  Outside a session
   * there is nobody to tell. */
  if (pi.has_child && cl->proc.session != NULL)
    tr_session_child(cl->proc.session, &pi.child, cl->proc.pid);
}

void tr_dispatch_frame(tr_peer *c, const tr_frame_hdr *h,
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
      tr_conn_fail(cl, EPROTO, "%s: payload is not a msgpack map",
                   tr_msg_name(h->type));
      goto out;
    }
    m = &up.data;
  }
  if (!cl->hello && h->type != TR_MSG_HELLO) {
    tr_conn_fail(cl, EPROTO, "%s before HELLO", tr_msg_name(h->type));
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
      tr_workers_kick(&cl->srv->workers, &cl->proc);
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
      tr_conn_fail(cl, EPROTO, "unexpected message type %u (%s)", h->type,
                   tr_msg_name(h->type));
  }
out:
  msgpack_unpacked_destroy(&up);
}

/* ---- sessions ending ---------------------------------------------------- */

/* PROTOCOL.md section 2, SESSION_END: (1) frames already queued on member
 * connections are handled (a RING_ADD sent before the creator's END must
 * not be missed); (2)-(4) the members leave through their workers and the
 * writer writes the end (tr_session_end_begin, then tr_dispatch_poll_
 * sessions as they finish); (5) the creator's answer, sent then. */
void tr_dispatch_finish_session(tr_server *s, tr_session *sess, bool reply) {
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
      tr_conn_read(m);
  }
  sess->reply_to =
      reply && creator != NULL && !creator->conn.dead ? creator : NULL;
  tr_session_end_begin(&s->sessions, sess);
  for (uint32_t i = 0; i < n; i++) tr_conn_check_failed(snap[i]);
  free(snap);
  tr_dispatch_poll_sessions(s);
}

/* One log line per Python child that never joined the session `label`. */
static void log_unjoined(const char *label, const tr_msg_child *c, uint32_t n,
                         uint64_t omitted) {
  char q[TR_LOG_VALUE_MAX];
  for (uint32_t i = 0; i < n; i++) {
    char path[TR_CHILD_PATH_MAX + 1];
    tr_msg_strcpy(path, sizeof(path), c[i].path);
    tr_log(TR_LOG_INFO, "event=unjoined %s pid=%llu path=%s", label,
           (unsigned long long)c[i].pid, tr_log_q(q, path));
  }
  if (omitted > 0)
    tr_log(TR_LOG_INFO, "event=unjoined %s more=%llu", label,
           (unsigned long long)omitted);
}

void tr_dispatch_poll_sessions(tr_server *s) {
  tr_session *next;
  for (tr_session *sess = s->sessions.head; sess != NULL; sess = next) {
    next = sess->next;
    if (!sess->ending) continue;
    client *to = sess->reply_to;
    char path[TR_SESSION_PATH_MAX];
    memcpy(path, sess->path, sizeof(path));
    char label[32];
    memcpy(label, sess->label, sizeof(label));
    tr_session_stats st;
    if (!tr_session_end_poll(&s->sessions, sess, &st)) continue;
    tr_msg_child unjoined[TR_UNJOINED_MAX];
    uint64_t omitted;
    uint32_t nunjoined = tr_pychildren_unjoined(&st.children, unjoined,
                                                TR_UNJOINED_MAX, &omitted);
    log_unjoined(label, unjoined, nunjoined, omitted);
    if (to == NULL || to->conn.dead) {
      tr_pychildren_free(&st.children);
      continue;
    }
    tr_msg_session_summary sum = {
        .processes = st.processes,
        .threads = st.threads,
        .events = st.events,
        .dropped = st.dropped,
        .late = st.late,
        .malformed = st.malformed,
        .unmatched = st.unmatched,
        .filtered = st.filtered,
        .bytes = st.bytes,
        .path = tr_msg_cstr(path),
        .max_size = st.max_size,
        .write_error = (uint64_t)st.write_error,
        .unclosed = st.unclosed ? 1 : 0,
        .cut_dropped = st.cut_dropped,
        .unjoined = unjoined,
        .nunjoined = nunjoined,
        .unjoined_omitted = omitted,
    };
    packer pk;
    packer_init(&pk);
    tr_msg_session_summary_pack(&pk.pk, &sum);
    packer_send(to, &pk, TR_MSG_SESSION_SUMMARY);
    tr_pychildren_free(&st.children);
  }
}

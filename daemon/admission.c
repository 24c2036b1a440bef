/* admission.c: who may connect and what each uid may hold: the limits'
 * defaults, the descriptor limit, per-uid usage, and accepting or refusing
 * a new connection. */
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "proto/mp.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"
#include "server_int.h"
#include "transport.h"

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

void tr_admission_usage_put(tr_server *s, tr_usage *u) {
  if (u == NULL || --u->refs > 0) return;
  for (tr_usage **pp = &s->usage; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == u) {
      *pp = u->next;
      break;
    }
  }
  free(u);
}

static uint32_t clients_of_uid(const tr_server *s, uid_t uid) {
  uint32_t n = 0;
  for (const client *c = s->clients; c != NULL; c = c->next)
    if (c->conn.uid == uid) n++;
  return n;
}

/* Refuses a just-accepted socket with a best-effort ERROR.  The log gets
 * a burst of these lines per uid (lograte.h), as bad frames do: a user at
 * its connection limit who keeps connecting must not fill the log. */
static void refuse(tr_server *s, int fd, pid_t pid, uid_t uid, int code,
                   const char *why) {
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  if (tr_lograte_allow(&s->lograte, uid, uv_now(s->loop)))
    tr_log(TR_LOG_WARN, "event=refuse %s request=connect reason=%s",
           tr_log_peer(pb, pid, uid, 0), tr_log_q(q, why));
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_error_pack(&pk, &(tr_msg_error){code, tr_msg_cstr(why)});
  /* One write, so the whole ERROR goes or none of it (every reason here
   * is a short constant). */
  uint8_t frame[sizeof(tr_frame_hdr) + 256];
  if (sb.size <= sizeof(frame) - sizeof(tr_frame_hdr)) {
    tr_frame_hdr_encode(frame, TR_MSG_ERROR, (uint32_t)sb.size);
    memcpy(frame + sizeof(tr_frame_hdr), sb.data, sb.size);
    (void)tr_dtransport_send(fd, frame, sizeof(tr_frame_hdr) + sb.size);
  }
  msgpack_sbuffer_destroy(&sb);
  tr_dtransport_close(fd);
}

void tr_admission_accept(tr_server *s, int fd) {
  tr_peer_cred cred;
  int crc = tr_dtransport_peer_cred(fd, &cred);
  if (crc < 0) {
    tr_log(TR_LOG_ERROR, "event=accept_error reason=\"peer credentials: %s\"",
           strerror(-crc));
    tr_dtransport_close(fd);
    return;
  }
  if (s->nclients >= s->limits.conns_max) {
    refuse(s, fd, cred.pid, cred.uid, EMFILE, "too many connections");
    return;
  }
  if (clients_of_uid(s, cred.uid) >= s->limits.conns_per_uid) {
    refuse(s, fd, cred.pid, cred.uid, EMFILE,
           "too many connections for this user");
    return;
  }
  client *cl = calloc(1, sizeof(*cl));
  if (cl == NULL) {
    refuse(s, fd, cred.pid, cred.uid, ENOMEM, "out of memory");
    return;
  }
  cl->conn.poll.data = cl;
  int rc =
      tr_peer_init(&cl->conn, s->loop, fd, tr_dispatch_frame, tr_conn_on_poll);
  if (rc < 0) {
    free(cl);
    refuse(s, fd, cred.pid, cred.uid, -rc, "cannot set up the connection");
    return;
  }
  cl->srv = s;
  cl->accepted_ms = uv_now(s->loop);
  tr_proc_init(&cl->proc, cl->conn.pid, cl->conn.uid, cl->conn.gid);
  cl->proc.owner = cl;
  cl->proc.usage = usage_get(s, cl->conn.uid);
  if (cl->proc.usage == NULL) {
    tr_peer_close(&cl->conn, tr_conn_on_closed);
    tr_log(TR_LOG_WARN, "event=drop pid=%d uid=%u reason=\"out of memory\"",
           (int)cred.pid, (unsigned)cred.uid);
    return;
  }
  cl->next = s->clients;
  if (s->clients != NULL) s->clients->prev = cl;
  s->clients = cl;
  s->nclients++;
  if (s->nclients == 1) tr_server_wake(s);
  char pb[TR_LOG_PEER_MAX];
  tr_log(TR_LOG_DEBUG, "event=connect %s",
         tr_log_peer(pb, cl->conn.pid, cl->conn.uid, 0));
}

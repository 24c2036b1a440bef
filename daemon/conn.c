/* conn.c: one connection's life in the server: its log label, its errors
 * and replies, reading it, and its teardown once no callback holds it. */
#include <errno.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "proto/mp.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"
#include "server_int.h"

const char *tr_conn_who(const client *cl, char buf[TR_LOG_PEER_MAX]) {
  const tr_proc *p = &cl->proc;
  uint64_t epoch = 0;
  if (p->session != NULL)
    epoch = p->session->epoch;
  else if (p->created != NULL)
    epoch = p->created->epoch;
  return tr_log_peer(buf, cl->conn.pid, cl->conn.uid, epoch);
}

void tr_conn_queue_teardown(client *cl) {
  tr_peer_kill(&cl->conn);
  if (cl->queued) return;
  cl->queued = true;
  cl->reap_next = cl->srv->reap;
  cl->srv->reap = cl;
}

void tr_conn_send_error(client *cl, int code, const char *msg) {
  msgpack_sbuffer sb;
  msgpack_packer pk;
  msgpack_sbuffer_init(&sb);
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_error_pack(&pk, &(tr_msg_error){code, tr_msg_cstr(msg)});
  tr_peer_send(&cl->conn, TR_MSG_ERROR, sb.data, sb.size);
  msgpack_sbuffer_destroy(&sb);
}

void tr_conn_fail(client *cl, int code, const char *fmt, ...) {
  if (cl->conn.dead) return;
  char reason[256], pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  /* The client still gets its ERROR; the log gets a burst per uid. */
  if (tr_lograte_allow(&cl->srv->lograte, cl->conn.uid, uv_now(cl->srv->loop)))
    tr_log(TR_LOG_WARN, "event=drop %s reason=%s", tr_conn_who(cl, pb),
           tr_log_q(q, reason));
  tr_conn_send_error(cl, code, reason);
  tr_conn_queue_teardown(cl);
}

void tr_conn_end(client *cl, int level, const char *why) {
  if (cl->conn.dead) return;
  char pb[TR_LOG_PEER_MAX], q[TR_LOG_VALUE_MAX];
  tr_log(level, "event=disconnect %s reason=%s", tr_conn_who(cl, pb),
         tr_log_q(q, why));
  tr_conn_queue_teardown(cl);
}

void tr_conn_check_failed(client *cl) {
  if (!cl->proc.failed || cl->conn.dead) return;
  if (cl->proc.failed_rc == -ENODATA)
    tr_conn_fail(cl, EPROTO,
                 "the ring of thread %u publishes records in pages it never "
                 "wrote",
                 cl->proc.failed_tid);
  else
    tr_conn_fail(cl, EPROTO,
                 "the ring of thread %u has impossible head/tail positions",
                 cl->proc.failed_tid);
}

void tr_conn_send_reply(client *cl, uint16_t type, msgpack_sbuffer *sb) {
  int rc = tr_peer_send(&cl->conn, type, sb->data, sb->size);
  if (rc == -ENOBUFS || rc == -ENOMEM)
    tr_conn_fail(cl, ENOBUFS, "the client does not read its replies");
  else if (rc < 0)
    tr_conn_end(cl, TR_LOG_DEBUG, "connection lost while replying");
}

void tr_conn_read(client *cl) {
  int rc = tr_peer_read(&cl->conn);
  if (rc == 1) {
    tr_conn_end(cl, TR_LOG_DEBUG, "disconnected");
  } else if (rc == -ECONNRESET || rc == -EPIPE) {
    tr_conn_end(cl, TR_LOG_DEBUG, "connection reset");
  } else if (rc < 0) {
    tr_conn_fail(cl, rc == -EMSGSIZE ? EMSGSIZE : EPROTO, "%s", cl->conn.err);
  }
}

void tr_conn_on_closed(uv_handle_t *h) { free(h->data); }

/* A connection's end: a session it created ends (without an answer); a
 * producer's worker drains its rings into its session one last time, in
 * turns, ends open calls as unfinished and lets go of it, and then
 * (tr_conn_finish_teardown, from the completion) its rings are unmapped
 * and the connection freed.  Until then it stays in the list, dead. */
static void teardown(tr_server *s, client *cl) {
  tr_proc *p = &cl->proc;
  for (tr_session *x = s->sessions.head; x != NULL; x = x->next)
    if (x->reply_to == cl) x->reply_to = NULL;
  if (p->created != NULL) tr_dispatch_finish_session(s, p->created, false);
  if (p->worker >= 0) {
    tr_op *op = cl->close_op;
    cl->close_op = NULL;
    tr_session_leave_into(op, TR_OP_CLOSE, p);
    tr_workers_request(&s->workers, op);
    return;
  }
  tr_conn_finish_teardown(s, cl);
}

void tr_conn_finish_teardown(tr_server *s, client *cl) {
  tr_proc *p = &cl->proc;
  tr_proc_fini(p);
  tr_admission_usage_put(s, p->usage);
  p->usage = NULL;
  free(cl->close_op);
  cl->close_op = NULL;
  if (cl->prev != NULL)
    cl->prev->next = cl->next;
  else
    s->clients = cl->next;
  if (cl->next != NULL) cl->next->prev = cl->prev;
  s->nclients--;
  tr_peer_close(&cl->conn, tr_conn_on_closed);
  tr_server_idle_check(s);
}

void tr_conn_reap(tr_server *s) {
  if (s->depth > 0 || s->reaping) return;
  s->reaping = true;
  while (s->reap != NULL) {
    client *cl = s->reap;
    s->reap = cl->reap_next;
    teardown(s, cl);
  }
  s->reaping = false;
  tr_server_idle_check(s);
}

void tr_conn_on_poll(tr_watch *h, int status, int events) {
  client *cl = h->data;
  tr_server *s = cl->srv;
  s->depth++;
  if (status < 0) {
    tr_conn_end(cl, TR_LOG_DEBUG, uv_strerror(status));
  } else {
    if ((events & UV_WRITABLE) && tr_peer_flush(&cl->conn) < 0)
      tr_conn_end(cl, TR_LOG_DEBUG, "connection lost while replying");
    if ((events & UV_READABLE) && !cl->conn.dead) tr_conn_read(cl);
  }
  s->depth--;
  tr_conn_reap(s);
}

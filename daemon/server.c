/* server.c: the daemon's server loop: start and stop, and the timers that
 * drain the rings and stop an idle daemon.  Where clients connect is
 * server_listen_<os>.c's. */
#include "server.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"
#include "common/version.h"
#include "proto/traced_proto.h"
#include "server_int.h"
#include "transport.h"

/* ---- timers -------------------------------------------------------------- */

static void on_drain_timer(uv_timer_t *t) {
  tr_server *s = t->data;
  s->depth++;
  uint64_t now = uv_now(s->loop);
  for (client *cl = s->clients; cl != NULL; cl = cl->next) {
    /* A peer that connects and never says HELLO holds a connection of its
     * user's budget for at most --hello-timeout seconds.  The loop's clock
     * also runs while the daemon itself is stopped or busy, and timers run
     * before the sockets are read: a HELLO that arrived meanwhile waits
     * unread in the socket, so the peer is judged on what it sent. */
    if (!cl->hello && !cl->conn.dead &&
        now - cl->accepted_ms > 1000u * s->limits.hello_timeout_s) {
      tr_conn_read(cl);
      if (!cl->hello && !cl->conn.dead)
        tr_conn_fail(cl, ETIMEDOUT, "no HELLO within %u s",
                     s->limits.hello_timeout_s);
    }
  }
  tr_drain_tick(s, now);
  /* The heartbeat tells producers waiting on a full ring that the daemon
   * lives and serves, however long their own turn takes (fair draining
   * among many users, the rate limit). */
  if (now - s->beat_ms >= TR_BEAT_INTERVAL_MS) {
    for (client *cl = s->clients; cl != NULL; cl = cl->next)
      tr_proc_beat(&cl->proc, now);
    s->beat_ms = now;
  }
  tr_dispatch_poll_sessions(s);
  if (now - s->rates_ms >= 1000) {
    tr_sessions_sample_rates(&s->sessions, tr_monotonic_ns());
    s->rates_ms = now;
  }
  s->depth--;
  tr_conn_reap(s);
}

void tr_server_on_async(uv_async_t *a) {
  tr_server *s = a->data;
  s->depth++;
  tr_op *next;
  for (tr_op *op = tr_workers_take_done(&s->workers); op != NULL; op = next) {
    next = op->next;
    client *cl = op->proc->owner;
    switch (op->kind) {
      case TR_OP_FAILED:
        tr_conn_check_failed(cl);
        free(op);
        break;
      case TR_OP_DETACH:
        if (op->session != NULL) tr_session_left(op->session, &op->stats);
        free(op);
        break;
      case TR_OP_CLOSE:
        if (op->session != NULL) tr_session_left(op->session, &op->stats);
        free(op);
        tr_conn_finish_teardown(s, cl);
        break;
      case TR_OP_ATTACH:
        free(op);
        break;
    }
  }
  tr_dispatch_poll_sessions(s);
  s->depth--;
  tr_conn_reap(s);
}

/* A writer finished its file: wake the loop (any thread). */
static void writer_done(void *arg) { uv_async_send(arg); }

static void on_idle_timer(uv_timer_t *t) {
  tr_server *s = t->data;
  if (s->nclients != 0 || s->sessions.count != 0) return;
  tr_log(TR_LOG_INFO, "event=idle_exit seconds=%u", s->idle_exit_s);
  tr_server_stop(s);
}

void tr_server_wake(tr_server *s) {
  uv_timer_stop(&s->idle_timer);
  uv_timer_start(&s->drain_timer, on_drain_timer, TR_DRAIN_INTERVAL_MS,
                 TR_DRAIN_INTERVAL_MS);
}

static void close_handles(tr_server *s) {
  if (s->handles_closed) return;
  s->handles_closed = true;
  uv_close((uv_handle_t *)&s->drain_timer, NULL);
  uv_close((uv_handle_t *)&s->idle_timer, NULL);
  uv_close((uv_handle_t *)&s->async, NULL);
}

void tr_server_idle_check(tr_server *s) {
  if (s->stopping) {
    /* Sessions end first; their creators (`traced stop`'s requester too)
     * are answered, then every connection closes, then the loop ends. */
    if (s->sessions.count != 0) return;
    for (client *cl = s->clients; cl != NULL; cl = cl->next)
      tr_conn_end(cl, TR_LOG_DEBUG, "the daemon is stopping");
    if (s->nclients == 0 && s->depth == 0) close_handles(s);
    return;
  }
  if (s->nclients != 0 || s->sessions.count != 0) return;
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
  s->idle_exit_s = opts->idle_exit_s;
  s->system = opts->system;
  s->started_ns = tr_monotonic_ns();
  s->drain.refill_ms = s->rates_ms = uv_now(loop);
  s->limits = opts->limits;
  tr_limits_default(&s->limits, opts->system);
  tr_server_listen_limits(&s->limits);
  tr_peer_max_payload = s->limits.frame_bytes_max;
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
  if ((rc = uv_async_init(loop, &s->async, tr_server_on_async)) < 0) goto err;
  s->async.data = s;
  unsigned threads = opts->threads;
  if (threads == 0) {
    unsigned n = tr_dtransport_ncpus();
    threads = n > 0 ? n : 1u;
  }
  rc = tr_workers_start(&s->workers, threads, &s->async, s->tsclock != NULL);
  if (rc < 0) goto err_async;
  tr_sessions_init(&s->sessions, &s->workers, writer_done, &s->async);
  rc = tr_server_listen(s, opts);
  if (rc < 0) goto err;
  uv_timer_init(loop, &s->drain_timer);
  uv_timer_init(loop, &s->idle_timer);
  s->drain_timer.data = s;
  s->idle_timer.data = s;
  uv_timer_start(&s->drain_timer, on_drain_timer, TR_DRAIN_INTERVAL_MS,
                 TR_DRAIN_INTERVAL_MS);
  tr_server_idle_check(s);
  char q[TR_LOG_VALUE_MAX];
  bool activated;
  const char *where = tr_server_listen_where(s, &activated);
  tr_log(TR_LOG_INFO,
         "event=listen socket=%s mode=%s%s uid=%lu version=%s protocol=%u",
         tr_log_q(q, where), s->system ? "system" : "private",
         activated ? " activated=1" : "", (unsigned long)geteuid(),
         TRACED_VERSION, TR_PROTO_VERSION);
  *out = s;
  return 0;
err:
  /* After the workers started, the listener failed: the async handle is
   * initialised and must be closed before the loop is freed. */
  if (s->workers.started) tr_workers_stop(&s->workers);
err_async:
  if (uv_is_active((uv_handle_t *)&s->async) || s->async.type == UV_ASYNC) {
    uv_close((uv_handle_t *)&s->async, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
  }
  tr_server_unlisten(s);
  tr_server_listen_free(s);
  free(s->tsclock);
  free(s);
  return rc;
}

void tr_server_stop(tr_server *s) {
  if (s->stopping) return;
  s->stopping = true;
  s->depth++;
  /* The socket goes and the lock is released now, so a new daemon may
   * start as soon as this one stops answering. */
  tr_server_unlisten(s);
  tr_log(TR_LOG_INFO, "event=stop sessions=%u connections=%u",
         s->sessions.count, s->nclients);
  tr_session *next;
  for (tr_session *h = s->sessions.head; h != NULL; h = next) {
    next = h->next;
    tr_dispatch_finish_session(s, h, true);
  }
  uv_timer_stop(&s->idle_timer);
  uv_timer_start(&s->drain_timer, on_drain_timer, TR_DRAIN_INTERVAL_MS,
                 TR_DRAIN_INTERVAL_MS);
  s->depth--;
  tr_conn_reap(s);
}

bool tr_server_stopped(const tr_server *s) { return s->stopping; }

void tr_server_free(tr_server *s) {
  if (s == NULL) return;
  tr_workers_stop(&s->workers);
  tr_server_unlisten(s);
  tr_server_listen_free(s);
  free(s->tsclock);
  free(s);
}

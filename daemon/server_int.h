/* server_int.h: the server's private parts, shared by the files that make
 * it up: the connection (conn.c), one handler per message (dispatch.c),
 * admission and per-uid usage (admission.c), fair draining (drain.c), the
 * loop with its timers (server.c) and, one file per system, where clients
 * connect (server_listen_unix.c: the Unix socket of listen.h;
 * server_listen_win.c: the named pipe of transport.h).  Nothing outside daemon/
 * includes it but the fuzz harness, which drives the real handlers.
 *
 * Every function here runs on the loop's thread.  Callbacks that may end a
 * connection raise `depth` while they run and call tr_conn_reap() when it
 * is back to 0: a connection ended inside a callback is only queued, so no
 * client is freed while a caller up the stack still holds it. */
#ifndef TRACED_SERVER_INT_H
#define TRACED_SERVER_INT_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/log.h"
#include "lograte.h"
#include "peer.h"
#include "proc.h"
#include "proto/frame.h"
#include "server.h"
#include "session.h"
#include "tsclock.h"
#include "worker.h"

/* One connection: its transport and the process that speaks through it. */
typedef struct client {
  tr_peer conn; /* first: conn.poll.data points back here */
  tr_proc proc;
  tr_server *srv;
  struct client *prev;
  struct client *next;
  struct client *reap_next;
  bool queued;          /* on the teardown list */
  bool hello;           /* HELLO accepted */
  tr_op *close_op;      /* a producer's CLOSE request, allocated at HELLO */
  uint64_t accepted_ms; /* loop time of accept, for the HELLO timeout */
} client;

/* Fair draining's state on the loop's side; only drain.c reads or writes
 * it (tr_drain_*). */
typedef struct tr_drain {
  uint64_t refill_ms; /* loop time the rate tokens were last refilled */
} tr_drain;

struct tr_server {
  uv_loop_t *loop;
  struct tr_slisten *listener; /* server_listen_<os>.c's; NULL: none */
  uv_timer_t drain_timer;      /* runs while there are connections */
  uv_timer_t idle_timer;       /* runs while there are none (--idle-exit) */
  unsigned idle_exit_s;
  tr_limits limits;
  tr_usage *usage;    /* one entry per uid with connections */
  tr_lograte lograte; /* refusal lines per uid (tr_conn_fail) */
  client *clients;
  uint32_t nclients;
  client *reap; /* connections to tear down once the current callback ends */
  tr_drain drain;
  uint64_t rates_ms; /* loop time the sessions' event rates were taken */
  uint64_t beat_ms;  /* loop time of the last heartbeat */
  tr_sessions sessions;
  int depth; /* callbacks in progress: teardown waits until 0 */
  bool reaping;
  bool stopping;
  bool system;         /* --system: a shared daemon */
  uint64_t started_ns; /* CLOCK_MONOTONIC at start, for the uptime */
  tr_tsclock *tsclock; /* NULL: producers write CLOCK_MONOTONIC ns; else
                          each worker converts with a clock of its own */
  tr_workers workers;  /* drain workers (worker.h) */
  uv_async_t async;    /* woken by workers' completions and writers */
  bool handles_closed; /* stop: the loop's handles are closing */
};

/* ---- conn.c: a connection's errors, replies and end -------------------- */

/* The peer's log label (pid, uid, session epoch) written into buf. */
const char *tr_conn_who(const client *cl, char buf[TR_LOG_PEER_MAX]);

/* Sends an ERROR {code, message}; best effort. */
void tr_conn_send_error(client *cl, int code, const char *msg);

/* Sends one reply; a peer that leaves too much unread is dropped. */
void tr_conn_send_reply(client *cl, uint16_t type, msgpack_sbuffer *sb);

/* Ends a connection for a protocol violation: one log line naming the peer
 * and the reason, an ERROR when the socket still takes it, then teardown
 * (its rings are drained first).  No-op on a dead connection. */
void tr_conn_fail(client *cl, int code, const char *fmt, ...)
    __attribute__((format(TR_PRINTF_FORMAT, 3, 4)));

/* Ends a connection without blame (the peer closed it, the daemon stops),
 * logged at `level`. */
void tr_conn_end(client *cl, int level, const char *why);

/* Marks the connection dead and queues its teardown for tr_conn_reap. */
void tr_conn_queue_teardown(client *cl);

/* Fails the connection if one of its rings was found impossible while
 * draining (tr_proc.failed). */
void tr_conn_check_failed(client *cl);

/* The rest of a teardown once the connection's worker let go of it (or
 * at once for a connection without one): rings unmapped, usage released,
 * the connection unlinked and its handle closed (freed in the close
 * callback). */
void tr_conn_finish_teardown(tr_server *s, client *cl);

/* Reads and handles what the socket holds; ends the connection on EOF or a
 * bad frame. */
void tr_conn_read(client *cl);

/* The connection's poll callback (tr_peer_init's `cb`). */
void tr_conn_on_poll(tr_watch *h, int status, int events);

/* The close callback of a connection's handle: frees the client. */
void tr_conn_on_closed(uv_handle_t *h);

/* Tears down the queued connections unless a callback is still in
 * progress (depth > 0); with none left, the server may go idle. */
void tr_conn_reap(tr_server *s);

/* ---- dispatch.c: one handler per message -------------------------------- */

/* The frame callback of every connection (tr_peer_init's `fn`): checks the
 * payload and calls the message's handler. */
void tr_dispatch_frame(tr_peer *c, const tr_frame_hdr *h,
                       const uint8_t *payload);

/* Begins ending `sess` as PROTOCOL.md section 2 says for SESSION_END;
 * `reply`: answer its creator with SESSION_SUMMARY once it has ended, if
 * still connected.  Idempotent. */
void tr_dispatch_finish_session(tr_server *s, tr_session *sess, bool reply);

/* Carries every ending session on (tr_session_end_poll) and answers the
 * creators of those that ended. */
void tr_dispatch_poll_sessions(tr_server *s);

/* ---- admission.c: who may connect, and what each uid holds -------------- */

/* Admits or refuses the accepted socket `fd` (which it owns from here). */
void tr_admission_accept(tr_server *s, int fd);

/* Releases a connection's share of its uid's usage entry (NULL: none). */
void tr_admission_usage_put(tr_server *s, tr_usage *u);

/* ---- drain.c: fair draining, the loop's part ------------------------------
 * The drain workers (worker.h) empty the rings; each 10 ms tick the loop
 * refills every user's rate tokens, opens a new window of fair shares, and
 * tells the workers whether fairness and the rate limit apply. */

/* One tick at loop time `now` (ms). */
void tr_drain_tick(tr_server *s, uint64_t now);

/* ---- server_listen_<os>.c: where clients connect ------------------------ */

/* Keeps the connection limits below what the system lets the daemon hold
 * open (Unix: raises the open-file limit first), so that a flood meets
 * the per-user limit, with its clear refusal, first. */
void tr_server_listen_limits(tr_limits *l);

/* Opens the socket or pipe the options name and hands every connection
 * it accepts to tr_admission_accept.  Returns 0, -EADDRINUSE when another
 * daemon serves it, or another negative errno (each failure logged). */
int tr_server_listen(tr_server *s, const tr_server_opts *o);

/* Stops accepting and gives the place up, so that a new daemon may start
 * as soon as this one stops answering (Unix: the socket path removed and
 * the lock released).  Idempotent. */
void tr_server_unlisten(tr_server *s);

/* Where the server listens (a socket path or a pipe name; "" when not
 * listening), and whether a service manager passed it (`activated`). */
const char *tr_server_listen_where(const tr_server *s, bool *activated);

/* Frees what tr_server_listen made; after uv_run has returned. */
void tr_server_listen_free(tr_server *s);

/* ---- server.c: the loop -------------------------------------------------- */

/* The async handle's callback: the workers' completions (worker.h), and
 * writers that finished their files. */
void tr_server_on_async(uv_async_t *a);

/* The first connection arrived: the idle countdown stops and the drain
 * timer runs. */
void tr_server_wake(tr_server *s);

/* With no connection and no session left, the drain timer sleeps and the
 * idle countdown (--idle-exit) starts; a stopping server closes its
 * handles. */
void tr_server_idle_check(tr_server *s);

#endif

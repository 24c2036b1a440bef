/* server.h: the daemon's server: the listening Unix socket, the table of
 * client connections, the protocol's messages (PROTOCOL.md), and the timer
 * that drains every ring. */
#ifndef TRACED_SERVER_H
#define TRACED_SERVER_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

#include "common/platform.h"

#define TR_DRAIN_INTERVAL_MS 10
#define TR_THREADS_MAX 256u   /* drain workers at most (`--threads`) */
#define TR_HELLO_TIMEOUT_S 30 /* a connection must say HELLO by then */
#define TR_CONNS_PER_UID 1024 /* open connections per peer uid */
#define TR_CONNS_MAX 16384    /* open connections in all */
#define TR_RINGS_PER_UID 8192 /* rings mapped at once per user */
#define TR_RING_BYTES_PER_UID (4ull << 30)  /* 4 GiB of rings per user */
#define TR_OPEN_CALLS_PER_UID (16ull << 20) /* 256 MiB of open calls */
/* Ring records drained per second per user in system mode (a Python call
 * is two); private daemons have no rate limit unless one is set. */
#define TR_RECORD_RATE_PER_UID_SYSTEM 4000000u
/* Fair draining: in one drain pass every user gets turns of this many
 * records until its rings are empty or it used TR_DRAIN_PASS_PER_UID. */
#define TR_DRAIN_QUANTUM 16384u
#define TR_DRAIN_PASS_PER_UID 262144u

typedef struct tr_server tr_server;

/* Per-peer and global limits; `traced serve` flags set them (docs/
 * hostile.md).  Zero-initialised fields take the defaults below. */
typedef struct tr_limits {
  uint32_t conns_per_uid;       /* open connections per peer uid */
  uint32_t conns_max;           /* open connections in all */
  uint32_t sessions_per_uid;    /* open sessions per owner */
  uint32_t ring_slots_max;      /* largest ring a producer may register */
  uint32_t arena_bytes_max;     /* largest string arena */
  uint32_t rings_per_proc;      /* rings open at once per process */
  uint32_t rings_per_uid;       /* rings mapped at once per user */
  uint64_t ring_bytes_per_uid;  /* bytes of rings mapped per user */
  uint64_t open_calls_per_uid;  /* open-call slots (16 B) per user */
  uint32_t frame_bytes_max;     /* largest control frame payload */
  uint32_t hello_timeout_s;     /* seconds a peer may stay silent */
  uint64_t record_rate_per_uid; /* ring records drained per second per
                                   user; 0: the mode's default */
  uint64_t trace_bytes_max;     /* every trace's size bound (--max-size);
                                   0: none but the client's */
} tr_limits;

/* The smallest size bound a session gets (a client's smaller one is
 * raised to it): room for a trace's head, some events and its ending. */
#define TR_TRACE_BYTES_MIN (16u * 1024u)

/* Fills unset (zero) limits with the defaults (`system`: the system
 * mode's, which add a record rate limit). */
void tr_limits_default(tr_limits *l, bool system);

typedef struct tr_server_opts {
  const char *socket_path; /* where to listen (at most 107 bytes) */
  tr_limits limits;
  bool make_dir;  /* create the socket's directory 0700 (the
                     per-user default location) */
  bool system;    /* --system: every local user may connect */
  bool has_group; /* --group: only this group may (system mode) */
  gid_t group;
  int activated_fd;     /* socket activation's listening socket, or -1 */
  unsigned idle_exit_s; /* stop after this long with no connection and
                           no session; 0: never */
  bool no_tsc;          /* never let producers write TSC ticks
                           (daemon/tsclock.h) */
  unsigned threads;     /* drain workers (`--threads`); 0: one per CPU */
} tr_server_opts;

/* Opens the listening socket (daemon/listen.h: lock file, stale socket,
 * directory and mode), and starts the drain timer.  Returns 0, -EADDRINUSE
 * when another daemon serves this socket, or another negative errno
 * (logged). */
int tr_server_start(uv_loop_t *loop, const tr_server_opts *opts,
                    tr_server **out);

/* Graceful stop: no new connections, every open session finalised (its
 * creator answered when still connected), every connection closed.  The
 * server's handles are closed, so uv_run returns once their callbacks ran.
 * Idempotent; also called by the idle-exit timer. */
void tr_server_stop(tr_server *s);

/* Whether tr_server_stop ran (a signal, --idle-exit, or `traced stop`). */
bool tr_server_stopped(const tr_server *s);

/* Removes the socket path, releases the lock and frees the server; call
 * after uv_run has returned (all handles closed). */
void tr_server_free(tr_server *s);

#endif

/* client.h: libtraced's internals shared by the C API (api.c) and the
 * Python shim: the process's one connection to the daemon, its string
 * arena, and per-thread ring registration.
 *
 * Thread-safety: every function may be called from any thread; socket
 * traffic and arena appends are serialised by internal mutexes, which are
 * held across fork() so a child never inherits them locked. */
#ifndef TRACED_CLIENT_H
#define TRACED_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "producer.h"
#include "traced.h"

/* Connects and handshakes (HELLO with this process's string arena).
 * socket_path NULL means the default (tr_sockpath_default(),
 * proto/sockpath.h).  Idempotent while connected. */
int tr_client_connect(const char *socket_path);
bool tr_client_connected(void);
/* Why the last tr_client_connect() was refused, as one line: the trust
 * checks' reason (-EPERM: the socket's directory or the process answering
 * it is not to be trusted, conn.h), or the daemon's ERROR message (e.g.
 * "too many connections for this user"); "" when there is none.  Valid
 * until the next connect. */
const char *tr_client_connect_why(void);
void tr_client_disconnect(void);

/* Sessions.  create: opens nothing itself; `fd` is the output file, passed
 * to the daemon (the caller keeps and closes its own copy).  The token of
 * the current session is exported as TRACED_SESSION by the callers. */
int tr_client_session_create(const char *display_path, int fd,
                             uint64_t min_duration_ns, uint64_t max_size,
                             char token[TR_TOKEN_HEX_LEN + 1]);
int tr_client_session_join(const char *token);
/* `extra` (may be NULL): what the summary says beyond traced_summary
 * (conn.h). */
int tr_client_session_end(traced_summary *out, tr_summary_extra *extra,
                          int timeout_ms);
/* The token this process created or joined ("" when none). */
const char *tr_client_token(void);
const char *tr_client_socket_path(void);

/* Tells the daemon this process's display name (e.g. "ForkPoolWorker-3"). */
int tr_client_process_info(const char *name);

/* Tells the daemon this process started `pid` running `path` with argv
 * (argc strings), or (pid == getpid()) is about to exec it, or (failed)
 * that such an exec failed: PROCESS_INFO `child`, so that a Python
 * interpreter that never joins the session is named at its end.  Cut to
 * the protocol's bounds.  -ENOTCONN when not in a session. */
int tr_client_announce_child(uint32_t pid, const char *path,
                             const char *const *argv, size_t argc, bool failed);

/* The display name a fork()ed child announces until it names itself
 * (e.g. the script's name; the parent may be "MainProcess"). */
void tr_client_set_child_name(const char *name);

/* Interns a string (truncated to TR_STRING_MAX_LEN) into the arena and
 * returns its id; TR_STRING_UNKNOWN when the arena is full (counted). */
uint32_t tr_client_intern(const char *s, size_t n);

/* Gives the calling thread a ring: creates and maps it, registers it with
 * the daemon (RING_ADD), points p at it and fills the producer's
 * connection values (beat, max_extra).  `name` may be NULL. */
int tr_client_thread_open(tr_producer *p, const char *name);
/* The thread is gone: marks the ring closed (the daemon drains and frees
 * it) and unmaps it.  Safe to call in a forked child on a parent's ring:
 * then it only forgets it. */
void tr_client_thread_close(tr_producer *p);

/* A producer that has never been opened: its state word reads "disabled"
 * so events cost one load and are not recorded; its `client` is this
 * file's, which opens its ring on its first enabled event, rings the
 * doorbell and reattaches it after fork(). */
void tr_client_thread_init(tr_producer *p);

/* The address of the process state word, or of a static "disabled" word
 * when not connected. */
_Atomic uint64_t *tr_client_state_word(void);

/* Sets the full-ring mode (tr_full): drop after wait_ns, or (drop false)
 * wait while the daemon makes progress.  TRACED_ON_FULL and
 * TRACED_FULL_WAIT_MS set it at connect; the Python shim's configure()
 * sets it for a session's options. */
void tr_client_set_full_policy(bool drop, uint64_t wait_ns);

/* Whether this process offers the daemon raw TSC timestamps in HELLO:
 * x86-64, unless TRACED_CLOCK=monotonic. */
bool tr_client_may_use_tsc(void);

/* The calling thread's producer of the C API (api.c), ready to record, or
 * NULL when the process records nothing now. */
tr_producer *tr_api_producer(void);

/* Warn once on stderr (used by the Python shim and attach paths, never by
 * the hot path); silenced by TRACED_QUIET=1. */
void tr_client_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

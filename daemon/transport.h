/* transport.h: the daemon's operating-system seam: a client connection's
 * bytes and handles and who is at its other end, the shared memory a
 * client hands over (rings, the string arena), waking a producer that
 * waits on a full ring, the output file a session writes to, and process
 * ancestry.  transport_unix.c provides it on Linux (SO_PEERCRED, recvmsg
 * with SCM_RIGHTS, sealed memfds, mincore, futex, /proc); transport_win.c
 * on Windows (named pipes, handles copied with DuplicateHandle and
 * receipted, pagefile-backed sections; producers on a full ring sleep and
 * look again).  The listener is the server's (server_int.h,
 * server_listen_<os>.c): listen_unix.c's socket watched with uv_poll on
 * Unix, tr_dtransport_listen_pipe below on Windows.
 *
 * Handles are ints as in libclient/src/transport.h (a descriptor, or a
 * Windows HANDLE's value); functions that fail return a negative errno. */
#ifndef TRACED_DTRANSPORT_H
#define TRACED_DTRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/platform.h"

/* Who is at the other end of a connection, as the kernel says. */
typedef struct tr_peer_cred {
  pid_t pid;
  uid_t uid;
  gid_t gid;
} tr_peer_cred;

/* ---- a connection ---------------------------------------------------- */

/* A connection's readiness watcher, with uv_poll's interface: `cb` runs
 * with UV_READABLE when tr_dtransport_recv has something to return (data,
 * the end, or an error), and with UV_WRITABLE when tr_dtransport_send can
 * take bytes again.  On Unix it is a uv_poll_t on the socket.  On Windows,
 * where uv_poll watches only sockets, it is a uv_pipe_t reading into a
 * queue that tr_dtransport_recv empties.  `data` is the owner's; the
 * close callback gets the handle whose `data` it is. */
#if defined(_WIN32)
typedef struct tr_watch tr_watch;
typedef void (*tr_watch_cb)(tr_watch *w, int status, int events);
struct tr_watch {
  void *data;
  uv_pipe_t pipe;
  tr_watch_cb cb;
  int events;
  struct tr_wconn *conn; /* transport_win.c's state of the connection */
};
#else
typedef uv_poll_t tr_watch;
typedef uv_poll_cb tr_watch_cb;
#endif

/* Starts watching the accepted connection `conn`; the owner's `data` is
 * kept.  On error nothing is left to close. */
int tr_dtransport_watch_init(uv_loop_t *loop, tr_watch *w, int conn);

/* Watches for `events` (UV_READABLE | UV_WRITABLE; 0 stops). */
void tr_dtransport_watch(tr_watch *w, int events, tr_watch_cb cb);

/* Closes the watcher; `cb` runs from the loop afterwards (and may free the
 * memory holding w).  The connection is closed with tr_dtransport_close
 * right after. */
void tr_dtransport_watch_close(tr_watch *w, uv_close_cb cb);

/* The credentials of the process that connected (SO_PEERCRED). */
int tr_dtransport_peer_cred(int conn, tr_peer_cred *out);

/* One non-blocking read of up to `cap` bytes into `buf`; the handles that
 * came with them (at most `max_h`) go to handles[0..*nh).  Returns the
 * bytes read, 0 when the peer closed its end, -EAGAIN when nothing is
 * there, -EBADMSG when more than max_h handles came at once (they are
 * closed), or the error. */
int64_t tr_dtransport_recv(int conn, void *buf, size_t cap, int *handles,
                           int *nh, int max_h);

/* One non-blocking write that never raises SIGPIPE: the bytes taken,
 * -EAGAIN when none fit now, or the error. */
int64_t tr_dtransport_send(int conn, const void *buf, size_t len);

/* Closes a connection, shared-memory handle or output file. */
void tr_dtransport_close(int h);

#if defined(_WIN32)
/* ---- the listener (Windows) ----------------------------------------- */

/* Listens on the named pipe `name` (\\.\pipe\traced-<user>, or the
 * system pipe when `system`): every instance is created with a security
 * descriptor that admits only this process's user and SYSTEM (the system
 * pipe: also any authenticated user, who may connect but not create an
 * instance), remote clients are refused, and the first instance is made
 * with FILE_FLAG_FIRST_PIPE_INSTANCE, so a squatter that made the name
 * first is found out (-EADDRINUSE).  A thread waits for connections; each
 * is handed to `fn` on the loop's thread as a connection handle for
 * tr_dtransport_peer_cred and tr_dtransport_watch_init.  (On Unix the
 * listener is listen_unix.c.) */
typedef struct tr_dtransport_listener tr_dtransport_listener;
typedef void (*tr_dtransport_accept_fn)(void *arg, int conn);
int tr_dtransport_listen_pipe(uv_loop_t *loop, const char *name, bool system,
                              tr_dtransport_accept_fn fn, void *arg,
                              tr_dtransport_listener **out);

/* Stops listening, closes the instances not yet handed over and frees
 * the listener (its libuv handle is closed from the loop). */
void tr_dtransport_listen_close(tr_dtransport_listener *l);
#endif

/* ---- shared memory --------------------------------------------------- */

/* Checks that `h` is shared memory of exactly `size` bytes that cannot
 * shrink (a producer that could truncate it would make the daemon's reads
 * fault), and maps it shared read-write.  *id gets an identity of the
 * memory that two handles of the same region share (0 where there is
 * none).  The caller keeps `h`.  Returns 0, -EINVAL (wrong size or kind),
 * -EPERM (could shrink), or the system's error. */
int tr_dtransport_shm_map(int h, size_t size, void **map, uint64_t id[2]);

void tr_dtransport_shm_unmap(void *map, size_t size);

/* 0 when every page of [addr, addr + len) of a shared mapping exists,
 * -ENODATA when one was never written (reading it would allocate it in
 * the daemon: docs/hostile.md, "Empty rings").  Where the system cannot
 * tell, the pages are taken to exist. */
int tr_dtransport_pages_exist(const void *addr, size_t len);

/* Wakes every producer waiting for `*wake` to change (the caller has
 * bumped it): PROTOCOL.md section 5, "Full ring". */
void tr_dtransport_ring_wake(_Atomic uint32_t *wake);

/* ---- the output file ------------------------------------------------- */

/* The output handle `h` a client handed over, as the C runtime descriptor
 * the writers use (output/): `h` itself on Unix; on Windows a descriptor
 * that takes the handle over.  Either way close() closes it from then
 * on.  On failure (-errno) `h` is closed. */
int tr_dtransport_output_fd(int h);

/* Checks a session's output descriptor (tr_dtransport_output_fd's): open
 * for writing, and a regular file (returns 1) or the null device (returns
 * 0); -EBADF or -EINVAL otherwise.  A pipe, socket or terminal could block
 * the daemon's writer forever when its reader stops. */
int tr_dtransport_output_kind(int fd);

/* Empties a regular output file (clients open it without truncating, so
 * that a refused session leaves it as it was). */
int tr_dtransport_output_truncate(int fd);

/* ---- processes ------------------------------------------------------- */

/* Fills `buf` with `len` bytes from the system's secure random source
 * (session tokens).  Returns 0 or a negative errno. */
int tr_dtransport_random(void *buf, size_t len);

/* The parent of `pid` as the system says now, or -1. */
pid_t tr_dtransport_parent_of(pid_t pid);

/* The processors the system has online (the default number of drain
 * workers); 0 when it cannot tell. */
unsigned tr_dtransport_ncpus(void);

#endif

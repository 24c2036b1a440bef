/* transport.h: the client's operating-system seam: reaching the daemon and
 * checking who it is, sending frames with handles attached, the shared
 * memory of rings and the string arena, the full-ring wait, the clock, and
 * the process facts a HELLO carries.  One file per system provides it all
 * (transport_unix.c: Unix socket, SCM_RIGHTS, SO_PEERCRED, memfd, futex;
 * transport_win.c: named pipe, DuplicateHandle, pagefile-backed sections,
 * events), chosen when building; the rest of libclient is the same on
 * every system.  PROTOCOL.md section 8 ("Windows") says what differs on
 * the wire.
 *
 * Handles are ints everywhere: a Unix descriptor, or on Windows a kernel
 * HANDLE's value, which Windows keeps within 32 bits so that 32- and
 * 64-bit processes can share them ("Interprocess Communication Between
 * 32-bit and 64-bit Applications"); -1 is "none" on both.  Functions that
 * fail return a negative errno.
 *
 * Nothing here is on the record path: producer.h inlines its clock read
 * itself, and tr_transport_ring_wait runs only on a full ring. */
#ifndef TRACED_TRANSPORT_H
#define TRACED_TRANSPORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the connection ------------------------------------------------- */

/* Connects to the daemon at `path` (a socket path, or on Windows a pipe
 * name) and checks who answered before anything is sent (trust.h on Unix;
 * on Windows the pipe server's token user).  Returns the connection
 * (close-on-exec, not inherited) or a negative errno; a refusal is -EPERM
 * with a one-line reason in `why` (may be NULL), "" after any other
 * outcome. */
int tr_transport_connect(const char *path, char *why, size_t why_size);

/* Closes a connection, a shared-memory handle or an output file. */
void tr_transport_close(int h);

/* Sends `len` bytes (a whole frame: header and payload, in two pieces)
 * with `nh` handles attached to its first byte.  Never raises SIGPIPE.
 * Returns 0 or a negative errno (-ETIMEDOUT after timeout_ms without
 * progress). */
int tr_transport_send(int conn, const void *hdr, size_t hdr_len,
                      const void *payload, size_t len, const int *handles,
                      int nh, int timeout_ms);

/* Sends what fits now without waiting: the bytes taken, -EAGAIN when none
 * fit (the daemon is busy), or another negative errno (it is gone).  For
 * the doorbell, which is never worth waiting for. */
int64_t tr_transport_try_send(int conn, const void *buf, size_t len);

/* Reads exactly `len` bytes; -ECONNRESET when the daemon closed its end
 * first, -ETIMEDOUT after timeout_ms without progress. */
int tr_transport_recv(int conn, void *buf, size_t len, int timeout_ms);

/* Opens `path` to be a session's output (conn.h, tr_conn_open_output,
 * says which files will do).  Returns the handle or a negative errno. */
int tr_transport_open_output(const char *path);

/* ---- shared memory -------------------------------------------------- */

/* A shared region of `size` bytes that can neither shrink nor grow, mapped
 * read-write at *map, its first `populate` bytes faulted in now.  Returns
 * the handle to give the daemon (the caller closes it once sent). */
int tr_transport_shm_create(const char *name, size_t size, void **map,
                            size_t populate);

void tr_transport_shm_unmap(void *map, size_t size);

/* In a fork()ed child: replaces the first `size` bytes of the shared
 * mapping at `map` with private zeroed memory, so the child never writes
 * to the parent's header.  Returns 0 or a negative errno. */
int tr_transport_shm_privatize(void *map, size_t size);

/* Registers fork handlers (pthread_atfork); 0, or -ENOSYS where processes
 * are never forked (Windows: children start fresh and connect anew). */
int tr_transport_atfork(void (*prepare)(void), void (*parent)(void),
                        void (*child)(void));

/* ---- the full ring -------------------------------------------------- */

/* Sleeps until the daemon bumps `*wake` past `seen` (PROTOCOL.md section
 * 5, "Full ring") or `ns` passed.  A wake-up that never comes costs only
 * the bound. */
void tr_transport_ring_wait(_Atomic uint32_t *wake, uint32_t seen, uint64_t ns);

/* ---- the process ---------------------------------------------------- */

/* The daemon's timeline: CLOCK_MONOTONIC ns (Windows: the performance
 * counter in ns), the `now_ns` of HELLO. */
uint64_t tr_transport_mono_ns(void);

/* This thread's system-wide id (a ring's `tid`). */
uint32_t tr_transport_tid(void);

/* The parent's process id (HELLO's ppid; Windows: the creator's, or 0). */
uint64_t tr_transport_ppid(void);

/* The program's short name (HELLO's default display name); never NULL. */
const char *tr_transport_progname(void);

/* Sets an environment variable that child processes inherit. */
int tr_transport_setenv(const char *name, const char *value);

/* The process's command line as NUL-separated arguments (HELLO's argv);
 * returns the bytes written. */
size_t tr_transport_cmdline(char *buf, size_t size);

#endif

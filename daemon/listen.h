/* listen.h: the daemon's listening socket: where it lives, who may connect
 * (a private 0700 directory, or in system mode every local user or one
 * group), one daemon per path, and systemd socket activation.
 *
 * Rules (docs/daemon.md "Running it", docs/service.md):
 *  - private mode: the per-user default directory is created 0700 and must
 *    belong to the daemon's uid; the socket keeps the umask's mode;
 *  - system mode: the socket's directory is created 0755 (0750 and owned by
 *    the group with a group) and must belong to the daemon's uid or root and
 *    not be writable by others, so nobody can replace the socket; the
 *    socket is made 0666 (0660 and owned by the group);
 *  - one daemon per path: an flock on "<socket>.lock" (kept, never
 *    deleted), and a socket that still answers is never replaced;
 *  - socket activation: a listening AF_UNIX stream socket passed as fd 3
 *    with LISTEN_PID = our pid and LISTEN_FDS = 1 is used as it is (systemd
 *    owns its path and mode; it is neither locked nor removed). */
#ifndef TRACED_LISTEN_H
#define TRACED_LISTEN_H

#include <stdbool.h>
#include <sys/types.h>
#include <sys/un.h>

#define TR_SUN_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

typedef struct tr_listen_opts {
  const char *path; /* where to listen (ignored when activated_fd >= 0) */
  bool make_dir;    /* private mode, per-user default: directory 0700 */
  bool system;      /* system mode: every local user (or `group`) connects */
  bool has_group;   /* system mode restricted to `group` */
  gid_t group;
  int activated_fd; /* socket activation's descriptor, or -1 */
} tr_listen_opts;

typedef struct tr_listener {
  int fd; /* listening, non-blocking, close-on-exec */
  int lock_fd;
  bool owns_path; /* we bound it: remove it when closing */
  bool activated; /* passed by the service manager */
  char path[TR_SUN_PATH_MAX];
  char lock_path[TR_SUN_PATH_MAX + 8];
} tr_listener;

/* Opens the listening socket as the options say.  Returns 0, -EADDRINUSE
 * when another daemon serves the path, or another negative errno (each
 * failure is logged with the path and the reason). */
int tr_listen_open(tr_listener *l, const tr_listen_opts *o);

/* Stops listening: closes the socket, removes the path if we bound it and
 * releases the lock.  Idempotent. */
void tr_listen_close(tr_listener *l);

/* Creates the per-user socket directory 0700 and refuses one that is not a
 * directory owned by this user (someone else could have created it first
 * in /tmp).  Idempotent. */
int tr_listen_make_private_dir(const char *socket_path);

/* The descriptor systemd passed (LISTEN_PID is this process, LISTEN_FDS
 * is 1): 3, with the LISTEN_* variables removed from the environment so
 * children do not see them.  -1 when nothing was passed; -EINVAL (logged)
 * when what was passed is not one listening AF_UNIX stream socket. */
int tr_listen_activated_fd(void);

#endif

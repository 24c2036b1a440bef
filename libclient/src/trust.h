/* trust.h: whom a client may talk to.  A client sends its command line,
 * its output descriptor and every function name to whatever answers its
 * socket, so before it sends anything it checks the per-user socket
 * directory (owned by the user, not a symbolic link, mode 0700) and the
 * credentials of the process that answered (SO_PEERCRED).  docs/hostile.md,
 * "Who may serve a client". */
#ifndef TRACED_TRUST_H
#define TRACED_TRUST_H

#include <stdbool.h>
#include <stddef.h>

/* Checks the directory of the per-user default socket `sock_path`
 * (tr_sockpath_user(), proto/sockpath.h) through a descriptor of its
 * parent, so nothing can swap it between the check and the use.  On
 * success returns a descriptor of the directory (O_PATH, close-on-exec; the
 * caller closes it) and writes into `via` (at least 64 bytes) a path that
 * reaches the socket through that descriptor.  Returns -ENOENT when the
 * directory does not exist (no daemon has made it yet), or -EPERM with a
 * one-line reason in `why` (whose it is and what to do) when it must not be
 * used, or another negative errno. */
int tr_trust_private_dir(const char *sock_path, char *via, size_t via_size,
                         char *why, size_t why_size);

/* Checks who answered on `fd`, a connected Unix socket to `sock_path`:
 * the same uid as this process, root, or, unless `per_user`, the owner of
 * the socket's directory (the system daemon's service user owns
 * /run/traced).  Returns 0, or -EPERM with the reason, naming the uid that
 * answered, in `why`. */
int tr_trust_peer(int fd, const char *sock_path, bool per_user, char *why,
                  size_t why_size);

#endif

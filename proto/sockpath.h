/* sockpath.h: where a per-user daemon listens by default, the one rule
 * that clients (libtraced, the Python package, `traced run`, `traced
 * status`) and `traced serve` share so they meet on the same socket. */
#ifndef TRACED_SOCKPATH_H
#define TRACED_SOCKPATH_H

#include <stddef.h>

/* The per-user socket: $XDG_RUNTIME_DIR/traced/traced.sock when
 * XDG_RUNTIME_DIR is an absolute path, else /tmp/traced-$UID/traced.sock.
 * On Windows: the named pipe \\.\pipe\traced-<user name>.
 * Returns 0, or -ENAMETOOLONG when it does not fit in buf. */
int tr_sockpath_user(char *buf, size_t size);

/* The socket a client uses when told none: $TRACED_SOCKET when set and
 * not empty, else tr_sockpath_user(). */
int tr_sockpath_default(char *buf, size_t size);

#endif

/* sockpath.c: the default socket path of a per-user daemon. */
#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "traced_proto.h"

int tr_sockpath_user(char *buf, size_t size) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int n;
  if (xdg != NULL && xdg[0] == '/')
    n = snprintf(buf, size, "%s/traced/traced.sock", xdg);
  else
    n = snprintf(buf, size, "/tmp/traced-%u/traced.sock", (unsigned)getuid());
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

int tr_sockpath_default(char *buf, size_t size) {
  const char *env = getenv(TR_ENV_SOCKET);
  if (env == NULL || env[0] == '\0') return tr_sockpath_user(buf, size);
  int n = snprintf(buf, size, "%s", env);
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

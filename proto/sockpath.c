/* sockpath.c: the default socket path of a per-user daemon. */
#include "sockpath.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

#include "traced_proto.h"

#ifdef _WIN32
int tr_sockpath_user(char *buf, size_t size) {
  /* The user's name as the system knows it (not %USERNAME%, which the
   * environment can change); at most UNLEN (256) characters. */
  char user[257];
  DWORD len = sizeof(user);
  if (!GetUserNameA(user, &len)) return -EINVAL;
  int n = snprintf(buf, size, "\\\\.\\pipe\\traced-%s", user);
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}
#else
int tr_sockpath_user(char *buf, size_t size) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int n;
  if (xdg != NULL && xdg[0] == '/')
    n = snprintf(buf, size, "%s/traced/traced.sock", xdg);
  else
    n = snprintf(buf, size, "/tmp/traced-%u/traced.sock", (unsigned)getuid());
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}
#endif

int tr_sockpath_default(char *buf, size_t size) {
  const char *env = getenv(TR_ENV_SOCKET);
  if (env == NULL || env[0] == '\0') return tr_sockpath_user(buf, size);
  int n = snprintf(buf, size, "%s", env);
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

/* privdrop_win.c: privdrop.h on Windows, where a process cannot switch to
 * another user: a service runs as the account the service manager gives
 * it (NT SERVICE\traced), so there is nothing to drop, and --user is
 * refused. */
#include <stdio.h>
#include <string.h>

#include "privdrop.h"

int tr_privdrop_resolve(bool system_mode, const char *user, bool allow_root,
                        tr_privdrop *out) {
  (void)system_mode;
  (void)allow_root;
  memset(out, 0, sizeof(*out));
  if (user != NULL) {
    fprintf(stderr,
            "traced serve: --user: Windows cannot switch a running process "
            "to another user; run the system daemon as a service under its "
            "own account (NT SERVICE\\traced) instead\n");
    return -1;
  }
  return 0;
}

int tr_privdrop_apply(const tr_privdrop *p, const char *socket_path,
                      bool has_group, gid_t group, bool activated) {
  (void)p;
  (void)socket_path;
  (void)has_group;
  (void)group;
  (void)activated;
  return 0;
}

/* privdrop.h: the system daemon started as root gives up root before it
 * serves.  Running as root it would write users' traces past their disk
 * quotas and into the blocks ext4 reserves for root (issue 15), and any
 * bug in it would be a root bug; as a dedicated user it can write only
 * through the descriptors users hand it.  docs/service.md, "Privileges". */
#ifndef TRACED_PRIVDROP_H
#define TRACED_PRIVDROP_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/platform.h"

/* The service user `traced serve --system` switches to when started as
 * root and given no --user. */
#define TR_SERVICE_USER "traced"

typedef struct tr_privdrop {
  bool drop; /* false: nothing to do (not root, or --allow-root) */
  char name[64];
  uid_t uid;
  gid_t gid;
} tr_privdrop;

/* Decides, before anything is opened, whom a daemon in `system_mode`
 * run as `geteuid()` will serve as: as root, `user` (NULL: the default
 * service user) unless `allow_root`.  Prints why and returns -1 when that
 * user does not exist, or when --user is given to a daemon not run as root
 * in system mode. */
int tr_privdrop_resolve(bool system_mode, const char *user, bool allow_root,
                        tr_privdrop *out);

/* Still root: creates the socket's directory for the service user when it
 * is missing (0755, 0750 with a group: its group then owns it), then drops
 * to the user (its groups, gid, uid; a way back to root is an error).
 * Logs one line either way.  Returns 0 or -1 after logging why. */
int tr_privdrop_apply(const tr_privdrop *p, const char *socket_path,
                      bool has_group, gid_t group, bool activated);

#endif

/* privdrop_unix.c: root's system daemon switching to its service user
 * (privdrop.h). */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "privdrop.h"

int tr_privdrop_resolve(bool system_mode, const char *user, bool allow_root,
                        tr_privdrop *out) {
  memset(out, 0, sizeof(*out));
  if (geteuid() != 0 || !system_mode) {
    if (user != NULL) {
      fprintf(stderr,
              "traced serve: --user is for a system daemon started as root "
              "(--system)\n");
      return -1;
    }
    return 0;
  }
  if (allow_root) {
    if (user != NULL) {
      fprintf(stderr,
              "traced serve: --user and --allow-root exclude each other\n");
      return -1;
    }
    return 0;
  }
  const char *name = user != NULL ? user : TR_SERVICE_USER;
  errno = 0;
  struct passwd *pw = getpwnam(name);
  if (pw == NULL || pw->pw_uid == 0) {
    fprintf(stderr,
            "traced serve: a system daemon started as root serves as an "
            "unprivileged service user, and user '%s' %s. Create it "
            "(`useradd --system --no-create-home --shell /usr/sbin/nologin "
            "%s`; `make install-service-user` does), name another with "
            "--user NAME, or keep root with --allow-root (root's writes "
            "bypass users' disk quotas and reserved blocks: "
            "docs/service.md)\n",
            name, pw != NULL ? "is root" : "does not exist", name);
    return -1;
  }
  out->drop = true;
  snprintf(out->name, sizeof(out->name), "%s", pw->pw_name);
  out->uid = pw->pw_uid;
  out->gid = pw->pw_gid;
  return 0;
}

/* The socket's directory, made for the service user when missing.  An
 * existing one is left as it is (it may be /run itself); listen_unix.c checks
 * it once the daemon runs as the service user. */
static int make_dir(const tr_privdrop *p, const char *socket_path,
                    bool has_group, gid_t group) {
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", socket_path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return 0;
  *slash = '\0';
  mode_t mode = has_group ? 0750 : 0755;
  if (mkdir(dir, mode) < 0) {
    if (errno == EEXIST) return 0;
    int err = errno;
    char q[TR_LOG_VALUE_MAX];
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"cannot create the socket "
           "directory: %s\"",
           tr_log_q(q, dir), strerror(err));
    return -1;
  }
  if (chown(dir, p->uid, has_group ? group : p->gid) < 0 ||
      chmod(dir, mode) < 0) {
    int err = errno;
    char q[TR_LOG_VALUE_MAX];
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"cannot give the socket directory "
           "to user %s: %s\"",
           tr_log_q(q, dir), p->name, strerror(err));
    return -1;
  }
  return 0;
}

int tr_privdrop_apply(const tr_privdrop *p, const char *socket_path,
                      bool has_group, gid_t group, bool activated) {
  if (!p->drop) {
    if (geteuid() == 0)
      tr_log(TR_LOG_WARN,
             "event=privileges user=root reason=\"serving as root "
             "(--allow-root): traces are written with root's rights, past "
             "users' disk quotas and into reserved blocks\"");
    return 0;
  }
  if (!activated && make_dir(p, socket_path, has_group, group) < 0) return -1;
  if (initgroups(p->name, p->gid) < 0 || setgid(p->gid) < 0 ||
      setuid(p->uid) < 0) {
    int err = errno;
    tr_log(TR_LOG_ERROR,
           "event=error reason=\"cannot switch to user %s (uid %lu): %s\"",
           p->name, (unsigned long)p->uid, strerror(err));
    return -1;
  }
  if (setuid(0) == 0 || geteuid() == 0) {
    tr_log(TR_LOG_ERROR,
           "event=error reason=\"still able to become root after switching "
           "to user %s\"",
           p->name);
    return -1;
  }
  tr_log(TR_LOG_INFO, "event=privileges user=%s uid=%lu gid=%lu", p->name,
         (unsigned long)p->uid, (unsigned long)p->gid);
  return 0;
}

/* trust.c: the checks a client makes before it sends its daemon anything:
 * the per-user socket directory, and the credentials of whoever answers. */
#include "trust.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Splits "/a/b/c" into "/a/b" and "c" in place; "/c" gives "/" and "c".
 * Returns the last component, or NULL for a name without a slash. */
static char *split_last(char *path, char **parent) {
  char *slash = strrchr(path, '/');
  if (slash == NULL || slash[1] == '\0') return NULL;
  char *last = slash + 1;
  if (slash == path) {
    *parent = "/";
  } else {
    *slash = '\0';
    *parent = path;
  }
  return last;
}

/* The reason a directory's stat makes it unfit, or NULL when it is fit. */
static const char *unfit(const struct stat *st) {
  if (S_ISLNK(st->st_mode)) return "is a symbolic link";
  if (!S_ISDIR(st->st_mode)) return "is not a directory";
  if (st->st_uid != getuid()) return "belongs to another user";
  if ((st->st_mode & 077) != 0) return "is open to other users";
  return NULL;
}

static int refuse(const char *dir, const struct stat *st, char *why,
                  size_t why_size) {
  const char *r = unfit(st);
  if (r == NULL) r = "changed while it was checked";
  unsigned owner = (unsigned)st->st_uid, me = (unsigned)getuid();
  if (st->st_uid == getuid() && S_ISDIR(st->st_mode) &&
      (st->st_mode & 077) != 0)
    snprintf(why, why_size,
             "the socket directory %s has mode %04o: other users could "
             "replace the daemon's socket in it; make it private with "
             "`chmod 700 %s`",
             dir, (unsigned)(st->st_mode & 07777), dir);
  else
    snprintf(why, why_size,
             "the socket directory %s %s (owner uid %u, you are uid %u): "
             "another user may be impersonating the traced daemon, so "
             "nothing is sent there; have it removed (its owner or root "
             "can) or set XDG_RUNTIME_DIR to a private directory of yours",
             dir, r, owner, me);
  return -EPERM;
}

int tr_trust_private_dir(const char *sock_path, char *via, size_t via_size,
                         char *why, size_t why_size) {
  char dir[PATH_MAX], parent_buf[PATH_MAX];
  char *parent, *dirname;
  if (snprintf(dir, sizeof(dir), "%s", sock_path) >= (int)sizeof(dir))
    return -ENAMETOOLONG;
  char *sockname = split_last(dir, &parent);
  if (sockname == NULL || strcmp(parent, "/") == 0) return -EINVAL;
  snprintf(parent_buf, sizeof(parent_buf), "%s", parent);
  char *name = split_last(parent_buf, &dirname);
  if (name == NULL) return -EINVAL;

  int pfd = open(dirname, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (pfd < 0) return -errno;
  struct stat st, fst;
  if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
    int err = errno;
    close(pfd);
    return -err;
  }
  if (unfit(&st) != NULL) {
    close(pfd);
    return refuse(parent, &st, why, why_size);
  }
  /* The checked directory itself, held open: what is checked is what the
   * socket is reached through, whatever happens to its name meanwhile. */
  int dfd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  int err = errno;
  close(pfd);
  if (dfd < 0) return -err;
  if (fstat(dfd, &fst) < 0 || fst.st_dev != st.st_dev ||
      fst.st_ino != st.st_ino || unfit(&fst) != NULL) {
    close(dfd);
    return refuse(parent, &fst, why, why_size);
  }
  /* connect(2) takes a path: /proc/self/fd/N reaches the socket through
   * the open directory.  Without /proc the name is used; the directory was
   * the user's a moment ago, and the peer check still follows. */
  struct stat proc;
  int n;
  if (stat("/proc/self/fd", &proc) == 0)
    n = snprintf(via, via_size, "/proc/self/fd/%d/%s", dfd, sockname);
  else
    n = snprintf(via, via_size, "%s", sock_path);
  if (n < 0 || (size_t)n >= via_size) {
    close(dfd);
    return -ENAMETOOLONG;
  }
  return dfd;
}

int tr_trust_peer(int fd, const char *sock_path, bool per_user, char *why,
                  size_t why_size) {
  struct ucred cr;
  socklen_t len = sizeof(cr);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) return -errno;
  if (cr.uid == getuid() || cr.uid == 0) return 0;
  if (!per_user) {
    /* Whoever owns the socket's directory decides what listens in it: the
     * system daemon's service user owns /run/traced.  A directory that
     * anyone may write (/tmp) is nobody's: only root and the user count. */
    char dir[PATH_MAX];
    char *parent;
    snprintf(dir, sizeof(dir), "%s", sock_path);
    struct stat st;
    if (split_last(dir, &parent) != NULL && stat(parent, &st) == 0 &&
        st.st_uid == cr.uid && (st.st_mode & 002) == 0)
      return 0;
  }
  snprintf(why, why_size,
           "the process answering at %s (pid %ld) runs as uid %u, not as "
           "you (uid %u), root, or the owner of its directory: it may be "
           "another user impersonating the traced daemon, so nothing is sent "
           "to it",
           sock_path, (long)cr.pid, (unsigned)cr.uid, (unsigned)getuid());
  return -EPERM;
}

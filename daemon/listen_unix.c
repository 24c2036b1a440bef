/* listen_unix.c: the daemon's listening Unix socket: its directory and mode,
 * the one-daemon-per-path lock, stale sockets, and socket activation. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "listen.h"

static void log_path_error(const char *path, const char *what, int err) {
  char q[TR_LOG_VALUE_MAX];
  tr_log(TR_LOG_ERROR, "event=error path=%s reason=\"%s: %s\"",
         tr_log_q(q, path), what, strerror(err));
}

static int dir_of(const char *sock_path, char dir[TR_SUN_PATH_MAX]) {
  snprintf(dir, TR_SUN_PATH_MAX, "%s", sock_path);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return -ENOENT; /* relative name: the cwd */
  if (slash == dir)
    slash[1] = '\0'; /* "/name": the root */
  else
    *slash = '\0';
  return 0;
}

int tr_listen_make_private_dir(const char *sock_path) {
  char dir[TR_SUN_PATH_MAX];
  if (dir_of(sock_path, dir) < 0 || strcmp(dir, "/") == 0) return 0;
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
    int err = errno;
    log_path_error(dir, "cannot create the socket directory", err);
    return -err;
  }
  struct stat st;
  if (lstat(dir, &st) < 0) {
    int err = errno;
    log_path_error(dir, "cannot stat the socket directory", err);
    return -err;
  }
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid()) {
    char q[TR_LOG_VALUE_MAX];
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"not a directory owned by uid %lu; "
           "refusing to put the socket there\"",
           tr_log_q(q, dir), (unsigned long)geteuid());
    return -EPERM;
  }
  if ((st.st_mode & 077) != 0 && chmod(dir, 0700) < 0) {
    int err = errno;
    log_path_error(dir, "cannot make the socket directory private", err);
    return -err;
  }
  return 0;
}

/* System mode: the socket's directory must let every user (or the group)
 * reach the socket, and nobody but us (or root) may replace what is in it.
 * A missing directory is created; an existing one is checked, not changed
 * (it may be systemd's RuntimeDirectory, or /run itself). */
static int system_dir(const tr_listen_opts *o, const char *sock_path) {
  char dir[TR_SUN_PATH_MAX];
  if (dir_of(sock_path, dir) < 0) return 0;
  mode_t mode = o->has_group ? 0750 : 0755;
  bool made = false;
  if (mkdir(dir, mode) == 0) {
    made = true;
  } else if (errno != EEXIST) {
    int err = errno;
    log_path_error(dir, "cannot create the socket directory", err);
    return -err;
  }
  struct stat st;
  if (stat(dir, &st) < 0) {
    int err = errno;
    log_path_error(dir, "cannot stat the socket directory", err);
    return -err;
  }
  if (!S_ISDIR(st.st_mode) || (st.st_uid != geteuid() && st.st_uid != 0) ||
      ((st.st_mode & 002) != 0 && (st.st_mode & S_ISVTX) == 0)) {
    char q[TR_LOG_VALUE_MAX];
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"the socket directory must be a "
           "directory owned by uid %lu or root that others cannot write\"",
           tr_log_q(q, dir), (unsigned long)geteuid());
    return -EPERM;
  }
  if (made) {
    /* mkdir applied the umask: set the mode we mean. */
    if ((o->has_group && chown(dir, (uid_t)-1, o->group) < 0) ||
        chmod(dir, mode) < 0) {
      int err = errno;
      log_path_error(dir, "cannot set the socket directory's group or mode",
                     err);
      return -err;
    }
  }
  return 0;
}

/* Another daemon owns the path when the lock is held or the socket answers;
 * a socket that refuses connections is stale and removed. */
static int claim_path(tr_listener *l) {
  char q[TR_LOG_VALUE_MAX];
  snprintf(l->lock_path, sizeof(l->lock_path), "%s.lock", l->path);
  l->lock_fd =
      open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (l->lock_fd < 0) {
    int err = errno;
    log_path_error(l->lock_path, "cannot open the lock file", err);
    return -err;
  }
  if (flock(l->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    int err = errno;
    if (err == EWOULDBLOCK) {
      tr_log(TR_LOG_ERROR,
             "event=error path=%s reason=\"another traced daemon is serving "
             "it (the lock file is locked)\"",
             tr_log_q(q, l->path));
      return -EADDRINUSE;
    }
    log_path_error(l->lock_path, "cannot lock", err);
    return -err;
  }
  struct stat st;
  if (lstat(l->path, &st) < 0) {
    if (errno == ENOENT) return 0;
    int err = errno;
    log_path_error(l->path, "cannot stat the socket", err);
    return -err;
  }
  if (!S_ISSOCK(st.st_mode)) {
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"exists and is not a socket; not "
           "replacing it\"",
           tr_log_q(q, l->path));
    return -EEXIST;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, l->path, strlen(l->path));
  int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
  int err = errno;
  close(fd);
  if (rc == 0) {
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"another traced daemon is listening "
           "on it\"",
           tr_log_q(q, l->path));
    return -EADDRINUSE;
  }
  if (err != ECONNREFUSED) {
    log_path_error(l->path, "cannot probe the socket", err);
    return -err;
  }
  tr_log(TR_LOG_INFO, "event=stale_socket path=%s", tr_log_q(q, l->path));
  if (unlink(l->path) < 0 && errno != ENOENT) {
    err = errno;
    log_path_error(l->path, "cannot remove the stale socket", err);
    return -err;
  }
  return 0;
}

static int bind_listen(tr_listener *l, const tr_listen_opts *o) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  memcpy(sa.sun_path, l->path, strlen(l->path));
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int err = errno;
    log_path_error(l->path, "cannot bind", err);
    close(fd);
    return -err;
  }
  l->owns_path = true;
  /* Connecting needs write permission on the socket file.  Until this
   * chmod it has the umask's mode (others cannot write), so nobody gets in
   * before the mode is right. */
  if (o->system) {
    if ((o->has_group && chown(l->path, (uid_t)-1, o->group) < 0) ||
        chmod(l->path, o->has_group ? 0660 : 0666) < 0) {
      int err = errno;
      log_path_error(l->path, "cannot set the socket's group or mode", err);
      close(fd);
      return -err;
    }
  }
  if (listen(fd, SOMAXCONN) < 0) {
    int err = errno;
    log_path_error(l->path, "cannot listen", err);
    close(fd);
    return -err;
  }
  l->fd = fd;
  return 0;
}

int tr_listen_activated_fd(void) {
  const char *pid = getenv("LISTEN_PID");
  const char *n = getenv("LISTEN_FDS");
  if (pid == NULL || n == NULL) return -1;
  char *end;
  long p = strtol(pid, &end, 10);
  if (*end != '\0' || p != (long)getpid()) return -1;
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_FDNAMES");
  const int fd = 3; /* SD_LISTEN_FDS_START */
  int type = 0, domain = 0, listening = 0;
  socklen_t len = sizeof(int);
  if (strcmp(n, "1") != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) < 0 ||
      type != SOCK_STREAM || domain != AF_UNIX || !listening) {
    tr_log(TR_LOG_ERROR,
           "event=error reason=\"socket activation: expected one listening "
           "AF_UNIX stream socket (LISTEN_FDS=%s)\"",
           n);
    return -EINVAL;
  }
  return fd;
}

static int adopt_activated(tr_listener *l, int fd) {
  struct sockaddr_un sa;
  socklen_t len = sizeof(sa);
  memset(&sa, 0, sizeof(sa));
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return -errno;
  size_t n = len > offsetof(struct sockaddr_un, sun_path)
                 ? len - offsetof(struct sockaddr_un, sun_path)
                 : 0;
  if (n >= sizeof(l->path)) n = sizeof(l->path) - 1;
  memcpy(l->path, sa.sun_path, n);
  l->path[n] = '\0';
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
      fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
    return -errno;
  l->fd = fd;
  l->activated = true;
  return 0;
}

int tr_listen_open(tr_listener *l, const tr_listen_opts *o) {
  memset(l, 0, sizeof(*l));
  l->fd = l->lock_fd = -1;
  if (o->activated_fd >= 0) return adopt_activated(l, o->activated_fd);
  size_t plen = strlen(o->path);
  if (plen == 0 || plen >= sizeof(l->path)) {
    char q[TR_LOG_VALUE_MAX];
    tr_log(TR_LOG_ERROR,
           "event=error path=%s reason=\"the socket path is empty or longer "
           "than %zu bytes\"",
           tr_log_q(q, o->path), sizeof(l->path) - 1);
    return -ENAMETOOLONG;
  }
  memcpy(l->path, o->path, plen + 1);
  int rc = 0;
  if (o->make_dir && (rc = tr_listen_make_private_dir(l->path)) < 0) goto err;
  if (o->system && (rc = system_dir(o, l->path)) < 0) goto err;
  if ((rc = claim_path(l)) < 0) goto err;
  if ((rc = bind_listen(l, o)) < 0) goto err;
  return 0;
err:
  tr_listen_close(l);
  return rc;
}

void tr_listen_close(tr_listener *l) {
  if (l->fd >= 0) close(l->fd);
  l->fd = -1;
  if (l->owns_path) unlink(l->path);
  l->owns_path = false;
  /* Released last, so a new daemon may start as soon as this one stops
   * answering, and never finds our socket file. */
  if (l->lock_fd >= 0) close(l->lock_fd);
  l->lock_fd = -1;
}

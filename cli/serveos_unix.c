/* serveos_unix.c: serveos.h on Unix: groups by name, systemd's socket,
 * the socket's private directory (daemon/listen.h), fork and setsid, and
 * SIGINT and SIGTERM. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/listen.h"
#include "serveos.h"

int tr_serveos_group(const char *name, gid_t *out) {
  struct group *gr = getgrnam(name);
  if (gr == NULL) {
    fprintf(stderr, "traced serve: --group: no group named '%s'\n", name);
    return -1;
  }
  *out = gr->gr_gid;
  return 0;
}

int tr_serveos_activated(void) { return tr_listen_activated_fd(); }

int tr_serveos_prepare(const char *socket_path, bool make_dir) {
  /* Writes to the trace files and sockets must never kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
  return make_dir && tr_listen_make_private_dir(socket_path) < 0 ? -1 : 0;
}

void tr_serveos_default_log(const char *socket_path, char *buf, size_t size) {
  snprintf(buf, size, "%s.log", socket_path);
}

/* The log is appended to, never through a symbolic link: a daemon run as
 * root would otherwise append to whatever file a link in a writable
 * directory names.  Returns the descriptor, or -1 after saying why. */
static int open_log_fd(const char *path) {
  int fd = open(path,
                O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
                    O_NOCTTY | O_NONBLOCK,
                0600);
  if (fd < 0) {
    fprintf(stderr, "traced serve: cannot open log file %s: %s\n", path,
            errno == ELOOP ? "it is a symbolic link, which is not followed"
                           : strerror(errno));
    return -1;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  return fd;
}

/* Moves a log descriptor onto stderr. */
static int log_to(int fd) {
  int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
  close(fd);
  return rc;
}

int tr_serveos_open_log(const char *path) {
  int fd = open_log_fd(path);
  return fd < 0 ? -1 : log_to(fd);
}

/* fork, setsid, fork, with stdin/stdout on /dev/null; the status byte
 * comes through a pipe. */
int tr_serveos_daemonize(const char *log_path, const char *socket_path) {
  /* Opened here, so that a refusal reaches the user's terminal. */
  int logfd = open_log_fd(log_path);
  if (logfd < 0) exit(1);
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    perror("traced serve: pipe");
    exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("traced serve: fork");
    exit(1);
  }
  if (pid > 0) {
    close(p[1]);
    close(logfd);
    char c = '1';
    ssize_t n;
    do {
      n = read(p[0], &c, 1);
    } while (n < 0 && errno == EINTR);
    tr_serveos_waited(n == 1, c, log_path, socket_path);
  }
  close(p[0]);
  if (setsid() < 0) _exit(1);
  pid = fork();
  if (pid < 0) _exit(1);
  if (pid > 0) _exit(0);
  if (chdir("/") < 0) _exit(1);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    close(null);
  }
  if (log_to(logfd) < 0) _exit(1);
  return p[1];
}

void tr_serveos_ready(int fd, char status) {
  if (fd < 0) return;
  ssize_t n;
  do {
    n = write(fd, &status, 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
}

const tr_serveos_signal tr_serveos_stop_signals[TR_SERVEOS_NSIGNALS + 1] = {
    {SIGINT, "SIGINT"}, {SIGTERM, "SIGTERM"}, {0, NULL}};

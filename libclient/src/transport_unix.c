/* transport_unix.c: transport.h on Linux: the daemon's Unix socket, checked
 * with SO_PEERCRED (trust.c), descriptors passed with SCM_RIGHTS, sealed
 * memfds, the ring's futex, CLOCK_MONOTONIC and /proc/self/cmdline. */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "proto/frame.h"
#include "proto/sockpath.h"
#include "transport.h"
#include "trust.h"

#define TR_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* ---- the connection ------------------------------------------------- */

int tr_transport_connect(const char *path, char *why, size_t why_size) {
  char scratch[TR_CONN_WHY_MAX];
  if (why == NULL || why_size == 0) {
    why = scratch;
    why_size = sizeof(scratch);
  }
  why[0] = '\0';
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  if (path[0] != '/') {
    /* Each process would look in its own working directory (the daemon
     * in /), so a relative name never reaches one daemon for them all. */
    snprintf(why, why_size,
             "the socket path '%s' is relative; TRACED_SOCKET and --socket "
             "need an absolute path",
             path);
    return -EINVAL;
  }
  char user[sizeof(addr.sun_path)];
  bool per_user =
      tr_sockpath_user(user, sizeof(user)) == 0 && strcmp(user, path) == 0;
  int dfd = -1;
  const char *target = path;
  char via[sizeof(addr.sun_path)];
  if (per_user) {
    dfd = tr_trust_private_dir(path, via, sizeof(via), why, why_size);
    if (dfd < 0) return dfd;
    target = via;
  }
  strcpy(addr.sun_path, target);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = errno;
  if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    err = errno;
    close(fd);
    fd = -1;
  }
  if (dfd >= 0) close(dfd);
  if (fd < 0 && err == ENOENT && !per_user) {
    /* Nothing can listen there, nor be started there: say which
     * directory is missing rather than let a daemon started for it fail
     * on a log file in that directory. */
    char dir[sizeof(addr.sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) *slash = '\0';
    struct stat st;
    if (slash != NULL && slash != dir && stat(dir, &st) < 0 && errno == ENOENT)
      snprintf(why, why_size,
               "the socket's directory %s does not exist; create it or "
               "choose another socket (--socket, TRACED_SOCKET)",
               dir);
  }
  if (fd < 0) return -err;
  int rc = tr_trust_peer(fd, path, per_user, why, why_size);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

void tr_transport_close(int h) {
  if (h >= 0) close(h);
}

int tr_transport_open_output(const char *path) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0666);
  if (fd < 0) return -errno;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) < 0)
    rc = -errno;
  else if (!S_ISREG(st.st_mode) &&
           !(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
             minor(st.st_rdev) == 3))
    rc = -EINVAL;
  else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
    rc = -errno;
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd pfd = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&pfd, 1, timeout_ms);
    if (n > 0) return 0;
    if (n == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

int tr_transport_send(int fd, const void *hdr, size_t hdr_len,
                      const void *payload, size_t len, const int *fds, int nfds,
                      int timeout_ms) {
  if (nfds < 0 || nfds > TR_FRAME_MAX_FDS) return -EMSGSIZE;
  struct iovec iov[2] = {{(void *)hdr, hdr_len}, {(void *)payload, len}};
  size_t total = hdr_len + len, sent = 0;
  union {
    char buf[CMSG_SPACE(sizeof(int) * TR_FRAME_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  int first = 1;
  while (sent < total) {
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    /* Rebuild the iovec past what was already sent. */
    struct iovec cur[2];
    int n = 0;
    size_t skip = sent;
    for (int i = 0; i < 2; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      cur[n].iov_base = (char *)iov[i].iov_base + skip;
      cur[n].iov_len = iov[i].iov_len - skip;
      skip = 0;
      n++;
    }
    msg.msg_iov = cur;
    msg.msg_iovlen = (size_t)n;
    if (first && nfds > 0) {
      memset(&ctl, 0, sizeof(ctl));
      msg.msg_control = ctl.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(fd, POLLOUT, timeout_ms);
        if (rc < 0) return rc;
        continue;
      }
      return -errno;
    }
    if (w > 0) first = 0; /* descriptors went with the first byte */
    sent += (size_t)w;
  }
  return 0;
}

int64_t tr_transport_try_send(int fd, const void *buf, size_t len) {
  ssize_t w = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w >= 0) return (int64_t)w;
  return errno == EWOULDBLOCK || errno == EINTR ? -EAGAIN : -errno;
}

int tr_transport_recv(int fd, void *buf, size_t len, int timeout_ms) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0) return -ECONNRESET;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    int rc = wait_fd(fd, POLLIN, timeout_ms);
    if (rc < 0) return rc;
  }
  return 0;
}

/* ---- shared memory -------------------------------------------------- */

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* Faults in the first `n` bytes of a fresh shared mapping. */
static void prefault(void *m, size_t n) {
  if (n == 0) return;
  if (madvise(m, n, MADV_POPULATE_WRITE) == 0) return;
  /* An older kernel: touch each page (the pages are zero already). */
  volatile char *c = m;
  for (size_t i = 0; i < n; i += 4096) c[i] = 0;
}

/* A sealed memfd: the daemon checks F_SEAL_SHRINK (a producer that could
 * truncate it could make the daemon's reads fault). */
int tr_transport_shm_create(const char *name, size_t size, void **map,
                            size_t populate) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return -errno;
  int err;
  if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, TR_SEALS) < 0) {
    err = -errno;
    goto fail;
  }
  void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) {
    err = -errno;
    goto fail;
  }
  prefault(m, populate < size ? populate : size);
  *map = m;
  return fd;
fail:
  close(fd);
  return err;
}

void tr_transport_shm_unmap(void *map, size_t size) { munmap(map, size); }

int tr_transport_shm_privatize(void *map, size_t size) {
  void *m = mmap(map, size, PROT_READ | PROT_WRITE,
                 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return m == MAP_FAILED ? -errno : 0;
}

int tr_transport_atfork(void (*prepare)(void), void (*parent)(void),
                        void (*child)(void)) {
  return -pthread_atfork(prepare, parent, child);
}

/* ---- the full ring -------------------------------------------------- */

/* The futex is shared (not FUTEX_PRIVATE): the daemon wakes it from
 * another process through its own mapping. */
void tr_transport_ring_wait(_Atomic uint32_t *wake, uint32_t seen,
                            uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  syscall(SYS_futex, (uint32_t *)wake, FUTEX_WAIT, seen, &ts, NULL, 0);
}

/* ---- the process ---------------------------------------------------- */

uint64_t tr_transport_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t tr_transport_tid(void) { return (uint32_t)syscall(SYS_gettid); }

uint64_t tr_transport_ppid(void) { return (uint64_t)getppid(); }

const char *tr_transport_progname(void) {
  return program_invocation_short_name ? program_invocation_short_name : "";
}

int tr_transport_setenv(const char *name, const char *value) {
  return setenv(name, value, 1) < 0 ? -errno : 0;
}

/* argv as /proc/self/cmdline has it (the C library does not keep it
 * anywhere public). */
size_t tr_transport_cmdline(char *buf, size_t size) {
  size_t len = 0;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r;
    while (len < size && (r = read(fd, buf + len, size - len)) > 0)
      len += (size_t)r;
    close(fd);
  }
  return len;
}

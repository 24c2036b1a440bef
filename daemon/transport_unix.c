/* transport_unix.c: transport.h on Linux: SO_PEERCRED, recvmsg with
 * SCM_RIGHTS, sealed memfds checked and mapped, mincore, the ring's
 * futex, the output file's kind, and /proc for ancestry. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "proto/traced_proto.h"
#include "transport.h"

/* ---- a connection ---------------------------------------------------- */

int tr_dtransport_watch_init(uv_loop_t *loop, tr_watch *w, int conn) {
  void *data = w->data;
  int rc = uv_poll_init(loop, w, conn);
  w->data = data;
  return rc;
}

void tr_dtransport_watch(tr_watch *w, int events, tr_watch_cb cb) {
  if (events == 0)
    uv_poll_stop(w);
  else
    uv_poll_start(w, events, cb);
}

/* The descriptor may be closed right after uv_close (uv_poll docs). */
void tr_dtransport_watch_close(tr_watch *w, uv_close_cb cb) {
  uv_close((uv_handle_t *)w, cb);
}

int tr_dtransport_peer_cred(int conn, tr_peer_cred *out) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return -errno;
  out->pid = cred.pid;
  out->uid = cred.uid;
  out->gid = cred.gid;
  return 0;
}

int64_t tr_dtransport_recv(int conn, void *buf, size_t cap, int *handles,
                           int *nh, int max_h) {
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(TR_FRAME_MAX_FDS * sizeof(int))];
  } ctl;
  struct iovec iov = {buf, cap};
  struct msghdr mh;
  *nh = 0;
  for (;;) {
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = ctl.buf;
    mh.msg_controllen = sizeof(ctl.buf);
    ssize_t n = recvmsg(conn, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n >= 0) {
      bool over = false;
      for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL;
           cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
          continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
          int fd;
          memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
          if (*nh < max_h)
            handles[(*nh)++] = fd;
          else
            close(fd);
        }
      }
      if (mh.msg_flags & MSG_CTRUNC) over = true;
      if (over) {
        for (int i = 0; i < *nh; i++) close(handles[i]);
        *nh = 0;
        return -EBADMSG;
      }
      return (int64_t)n;
    }
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

int64_t tr_dtransport_send(int conn, const void *buf, size_t len) {
  for (;;) {
    ssize_t n = send(conn, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) return (int64_t)n;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK) return -EAGAIN;
    return -errno;
  }
}

void tr_dtransport_close(int h) {
  if (h >= 0) close(h);
}

/* ---- shared memory --------------------------------------------------- */

/* A descriptor is acceptable shared memory when it is a regular file of
 * exactly the announced size that can no longer shrink: the producer could
 * otherwise truncate it and make the daemon's reads fault (SIGBUS). */
static int check_memfd(int fd, uint64_t size) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  if (st.st_size < 0 || (uint64_t)st.st_size != size) return -EINVAL;
  int seals = fcntl(fd, F_GET_SEALS);
  if (seals < 0 || !(seals & F_SEAL_SHRINK)) return -EPERM;
  return 0;
}

int tr_dtransport_shm_map(int h, size_t size, void **map, uint64_t id[2]) {
  int rc = check_memfd(h, size);
  if (rc < 0) return rc;
  void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, h, 0);
  if (m == MAP_FAILED) return -errno;
  *map = m;
  id[0] = id[1] = 0;
  struct stat st;
  if (fstat(h, &st) == 0) {
    id[0] = (uint64_t)st.st_dev;
    id[1] = (uint64_t)st.st_ino;
  }
  return 0;
}

void tr_dtransport_shm_unmap(void *map, size_t size) { munmap(map, size); }

/* Reading a page of shared memory that was never written allocates it, in
 * the reader.  mincore says whether a page is in the memfd's page cache.
 * A page swapped out reads as absent: MADV_WILLNEED starts reading it back
 * (into the swap cache, where mincore counts it) and leaves pages that
 * were never written alone, so asking again tells the two apart. */
#define PAGES_PER_CALL 256

static bool all_resident(const unsigned char *vec, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!(vec[i] & 1)) return false;
  return true;
}

int tr_dtransport_pages_exist(const void *addr, size_t len) {
  long ps = sysconf(_SC_PAGESIZE);
  size_t page = ps > 0 ? (size_t)ps : 4096;
  uintptr_t a = (uintptr_t)addr & ~(uintptr_t)(page - 1);
  uintptr_t end = (uintptr_t)addr + len;
  unsigned char vec[PAGES_PER_CALL];
  while (a < end) {
    size_t n = (end - a + page - 1) / page;
    if (n > PAGES_PER_CALL) n = PAGES_PER_CALL;
    void *p = (void *)a;
    if (mincore(p, n * page, vec) < 0) return 0;
    if (!all_resident(vec, n)) {
      (void)madvise(p, n * page, MADV_WILLNEED);
      if (mincore(p, n * page, vec) < 0) return 0;
      if (!all_resident(vec, n)) return -ENODATA;
    }
    a += n * page;
  }
  return 0;
}

void tr_dtransport_ring_wake(_Atomic uint32_t *wake) {
  syscall(SYS_futex, (uint32_t *)wake, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- the output file ------------------------------------------------- */

int tr_dtransport_output_fd(int h) { return h; }

int tr_dtransport_output_kind(int h) {
  int fl = fcntl(h, F_GETFL);
  if (fl < 0) return -EBADF;
  if ((fl & O_ACCMODE) != O_WRONLY && (fl & O_ACCMODE) != O_RDWR) return -EBADF;
  struct stat st;
  if (fstat(h, &st) < 0) return -EBADF;
  if (S_ISREG(st.st_mode)) return 1;
  if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3)
    return 0;
  return -EINVAL;
}

int tr_dtransport_output_truncate(int h) {
  return ftruncate(h, 0) < 0 ? -errno : 0;
}

/* ---- processes ------------------------------------------------------- */

int tr_dtransport_random(void *buf, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = getrandom((char *)buf + got, len - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    got += (size_t)n;
  }
  return 0;
}

/* The command name in field 2 of /proc/<pid>/stat may hold spaces and
 * parentheses, so parsing starts after the last ')'. */
pid_t tr_dtransport_parent_of(pid_t pid) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n;
  do {
    n = read(fd, buf, sizeof(buf) - 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *rp = strrchr(buf, ')');
  if (rp == NULL) return -1;
  char state;
  long ppid;
  if (sscanf(rp + 1, " %c %ld", &state, &ppid) != 2) return -1;
  return (pid_t)ppid;
}

unsigned tr_dtransport_ncpus(void) {
  int n = get_nprocs();
  return n > 0 ? (unsigned)n : 0;
}

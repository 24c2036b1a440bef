/* posix_win.h: the few POSIX calls traced's portable code keeps, for
 * Windows (mingw-w64), each with its POSIX meaning or the nearest one
 * Windows allows, said at each.  Included by common/platform.h on Windows
 * only, and by the stand-ins for POSIX headers mingw-w64 lacks
 * (common/compat-win/, on the Windows build's include path only).
 * Behaviour that differs in kind (sockets and pipes, processes, signals,
 * shared memory) is not here: it lives behind the seams (daemon/
 * transport.h, daemon/server_int.h's listener, cli/runproc.h,
 * cli/serveos.h). */
#ifndef TRACED_POSIX_WIN_H
#define TRACED_POSIX_WIN_H
#if defined(_WIN32)

#include <fcntl.h>
#include <io.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* Windows names users by SID, not by number; the daemon's logs and
 * per-user limits keep a number: the user SID's last sub-authority (its
 * RID).  Every identity check compares whole SIDs (daemon/
 * transport_win.c). */
typedef unsigned int uid_t;
typedef unsigned int gid_t;

/* The RID of this process's token user (see uid_t); both are the same,
 * Windows having no set-user-id programs. */
uid_t tr_win_uid(void);
#define getuid tr_win_uid
#define geteuid tr_win_uid

/* A user's name by number: only this process's own user is known (a RID
 * alone does not name an account); NULL for any other. */
struct passwd {
  char *pw_name;
  uid_t pw_uid;
};
struct passwd *tr_win_getpwuid(uid_t uid);
#define getpwuid tr_win_getpwuid

/* Descriptors not inherited by child processes. */
#ifndef O_CLOEXEC
#define O_CLOEXEC _O_NOINHERIT
#endif

/* fcntl's F_GETFL: the access mode only.  The C runtime does not say
 * whether the file was opened for appending (no descriptor traced opens
 * is); a positioned write on such a file fails, which every caller
 * handles (writer_json.c keeps the trace's array form). */
#define F_GETFL 3
int tr_win_fcntl(int fd, int cmd, ...);
#define fcntl tr_win_fcntl

/* pwrite: a write at `off` that leaves the descriptor's offset where it
 * was (Windows' positioned WriteFile moves it; it is put back). */
ssize_t tr_win_pwrite(int fd, const void *buf, size_t n, off_t off);
#define pwrite tr_win_pwrite

/* GNU's strerror_r (the daemon is built with _GNU_SOURCE on Linux): the
 * message in `buf`, which is returned. */
char *tr_win_strerror_r(int err, char *buf, size_t size);
#define strerror_r tr_win_strerror_r

int tr_win_setenv(const char *name, const char *value, int overwrite);
int tr_win_unsetenv(const char *name);
#define setenv tr_win_setenv
#define unsetenv tr_win_unsetenv

/* Anonymous private memory only (MAP_PRIVATE | MAP_ANONYMOUS, fd -1),
 * reserved and committed at once; anything else fails with ENOSYS. */
#define PROT_READ 1
#define PROT_WRITE 2
#define MAP_PRIVATE 2
#define MAP_ANONYMOUS 0x20
#define MAP_FAILED ((void *)-1)
void *tr_win_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
int tr_win_munmap(void *addr, size_t len);
#define mmap tr_win_mmap
#define munmap tr_win_munmap

/* Writeback hints: Windows' cache manager writes back and trims a file's
 * cache itself, so there is nothing to ask of it. */
#define SYNC_FILE_RANGE_WRITE 2
#define POSIX_FADV_DONTNEED 4
static inline int sync_file_range(int fd, off_t off, off_t n, unsigned f) {
  (void)fd, (void)off, (void)n, (void)f;
  return 0;
}
static inline int posix_fadvise(int fd, off_t off, off_t n, int advice) {
  (void)fd, (void)off, (void)n, (void)advice;
  return 0;
}

/* Threads have no signal masks (winpthreads' pthread_sigmask does
 * nothing). */
#ifndef _POSIX
typedef _sigset_t sigset_t;
#endif
#define sigfillset(set) (*(set) = ~(sigset_t)0, 0)
#undef pthread_sigmask
static inline int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  (void)how, (void)set;
  if (old != NULL) *old = 0;
  return 0;
}

/* localtime_r and its Windows spelling, arguments swapped. */
static inline struct tm *tr_win_localtime_r(const time_t *t, struct tm *out) {
  return localtime_s(out, t) == 0 ? out : NULL;
}
#define localtime_r tr_win_localtime_r

/* winpthreads' CLOCK_MONOTONIC is the performance counter, which keeps
 * counting while the machine sleeps: it is also the boot-time clock, and
 * as cheap to read as a coarse one. */
#ifndef CLOCK_MONOTONIC_COARSE
#define CLOCK_MONOTONIC_COARSE CLOCK_MONOTONIC
#endif
#ifndef CLOCK_BOOTTIME
#define CLOCK_BOOTTIME CLOCK_MONOTONIC
#endif

#endif
#endif

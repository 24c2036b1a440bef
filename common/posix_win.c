/* posix_win.c: the POSIX calls of posix_win.h, on Win32. */
#include "posix_win.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "win32.h"

uid_t tr_win_uid(void) {
  static uid_t uid;
  static bool known;
  if (!known) {
    TOKEN_USER *tu = tr_win_token_user(GetCurrentProcess());
    if (tu != NULL) {
      PSID sid = tu->User.Sid;
      UCHAR n = *GetSidSubAuthorityCount(sid);
      uid = n > 0 ? (uid_t)*GetSidSubAuthority(sid, n - 1) : 0;
      free(tu);
    }
    known = true;
  }
  return uid;
}

struct passwd *tr_win_getpwuid(uid_t uid) {
  static char name[257];
  static struct passwd pw = {name, 0};
  DWORD n = sizeof(name);
  if (uid != tr_win_uid() || !GetUserNameA(name, &n)) return NULL;
  pw.pw_uid = uid;
  return &pw;
}

int tr_win_fcntl(int fd, int cmd, ...) {
  if (cmd != F_GETFL) {
    errno = EINVAL;
    return -1;
  }
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  if (h == INVALID_HANDLE_VALUE) {
    errno = EBADF;
    return -1;
  }
  return O_RDWR;
}

ssize_t tr_win_pwrite(int fd, const void *buf, size_t n, off_t off) {
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  if (h == INVALID_HANDLE_VALUE) {
    errno = EBADF;
    return -1;
  }
  LARGE_INTEGER zero = {.QuadPart = 0}, was;
  if (!SetFilePointerEx(h, zero, &was, FILE_CURRENT)) {
    errno = tr_win_errno(GetLastError());
    return -1;
  }
  OVERLAPPED ov;
  memset(&ov, 0, sizeof(ov));
  ov.Offset = (DWORD)((uint64_t)off & 0xffffffffu);
  ov.OffsetHigh = (DWORD)((uint64_t)off >> 32);
  DWORD done = 0;
  DWORD chunk = n > 0x40000000u ? 0x40000000u : (DWORD)n;
  BOOL ok = WriteFile(h, buf, chunk, &done, &ov);
  DWORD err = ok ? 0 : GetLastError();
  SetFilePointerEx(h, was, NULL, FILE_BEGIN);
  if (!ok) {
    errno = tr_win_errno(err);
    return -1;
  }
  return (ssize_t)done;
}

char *tr_win_strerror_r(int err, char *buf, size_t size) {
  if (size == 0) return buf;
  if (strerror_s(buf, size, err) != 0) snprintf(buf, size, "error %d", err);
  return buf;
}

int tr_win_setenv(const char *name, const char *value, int overwrite) {
  if (name == NULL || *name == '\0' || strchr(name, '=') != NULL) {
    errno = EINVAL;
    return -1;
  }
  if (!overwrite && getenv(name) != NULL) return 0;
  /* _putenv_s takes "" as "remove": an empty value is set through the
   * system's environment, which children inherit, alone. */
  if (*value == '\0')
    return SetEnvironmentVariableA(name, "") ? 0 : (errno = EINVAL, -1);
  return _putenv_s(name, value) == 0 ? 0 : -1;
}

int tr_win_unsetenv(const char *name) {
  if (name == NULL || *name == '\0' || strchr(name, '=') != NULL) {
    errno = EINVAL;
    return -1;
  }
  return _putenv_s(name, "") == 0 ? 0 : -1;
}

void *tr_win_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off) {
  (void)prot;
  if (addr != NULL || fd != -1 || off != 0 ||
      flags != (MAP_PRIVATE | MAP_ANONYMOUS)) {
    errno = ENOSYS;
    return MAP_FAILED;
  }
  void *p = VirtualAlloc(NULL, len, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  if (p == NULL) {
    errno = ENOMEM;
    return MAP_FAILED;
  }
  return p;
}

int tr_win_munmap(void *addr, size_t len) {
  (void)len; /* the whole region goes, as every caller maps one */
  if (!VirtualFree(addr, 0, MEM_RELEASE)) {
    errno = EINVAL;
    return -1;
  }
  return 0;
}

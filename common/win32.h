/* win32.h: the few Win32 helpers both Windows transports share
 * (libclient/src/transport_win.c, daemon/transport_win.c): a HANDLE as the
 * int the transport seams pass, Win32 errors as errno values, and a
 * process's token user.  Header-only and Windows-only. */
#ifndef TRACED_WIN32_H
#define TRACED_WIN32_H
#if defined(_WIN32)

#define WIN32_LEAN_AND_MEAN
// clang-format off
#include <windows.h>
// clang-format on
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* Windows keeps kernel handle values within 32 bits (so that 32- and
 * 64-bit processes can share them), which lets the seams pass ints. */
static inline HANDLE tr_win_handle(int h) { return (HANDLE)(intptr_t)h; }
static inline int tr_win_int(HANDLE h) { return (int)(intptr_t)h; }

/* The errno value closest to a Win32 error (EIO for the rest). */
static inline int tr_win_errno(DWORD e) {
  switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      return ENOENT;
    case ERROR_ACCESS_DENIED:
      return EACCES;
    case ERROR_PIPE_BUSY:
      return EBUSY;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
      return EPIPE;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_COMMITMENT_LIMIT:
      return ENOMEM;
    case ERROR_INVALID_HANDLE:
      return EBADF;
    case ERROR_INVALID_PARAMETER:
    case ERROR_INVALID_NAME:
      return EINVAL;
    case ERROR_SEM_TIMEOUT:
      return ETIMEDOUT;
    default:
      return EIO;
  }
}

/* The token user of `proc`, malloc'd (the SID points into it; the caller
 * frees it), or NULL. */
static inline TOKEN_USER *tr_win_token_user(HANDLE proc) {
  HANDLE tok;
  if (!OpenProcessToken(proc, TOKEN_QUERY, &tok)) return NULL;
  DWORD n = 0;
  GetTokenInformation(tok, TokenUser, NULL, 0, &n);
  TOKEN_USER *tu = n > 0 ? malloc(n) : NULL;
  if (tu != NULL && !GetTokenInformation(tok, TokenUser, tu, n, &n)) {
    free(tu);
    tu = NULL;
  }
  CloseHandle(tok);
  return tu;
}

#endif
#endif

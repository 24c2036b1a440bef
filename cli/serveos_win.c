/* serveos_win.c: serveos.h on Windows: no groups, no socket activation
 * and no directory for a pipe; --daemon starts a detached copy of this
 * very command line, which reports through an inherited pipe; the console's
 * control events stop the daemon. */
#include <errno.h>
#include <io.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/win32.h"
#include "serveos.h"

/* Set in the detached copy's environment: the pipe handle it reports its
 * status through. */
#define READY_ENV "TRACED_SERVE_READY"

int tr_serveos_group(const char *name, gid_t *out) {
  (void)out;
  fprintf(stderr,
          "traced serve: --group %s: on Windows the system pipe admits "
          "every authenticated user; it cannot be limited to a group\n",
          name);
  return -1;
}

int tr_serveos_activated(void) { return -1; }

/* No SIGPIPE (a write to a closed pipe fails), and a pipe name has no
 * directory. */
int tr_serveos_prepare(const char *socket_path, bool make_dir) {
  (void)socket_path;
  (void)make_dir;
  return 0;
}

void tr_serveos_default_log(const char *socket_path, char *buf, size_t size) {
  const char *name = strrchr(socket_path, '\\');
  name = name != NULL ? name + 1 : socket_path;
  char tmp[MAX_PATH + 1];
  DWORD n = GetTempPathA(sizeof(tmp), tmp);
  if (n == 0 || n >= sizeof(tmp)) snprintf(tmp, sizeof(tmp), ".\\");
  snprintf(buf, size, "%s%s.log", tmp, name);
}

/* Appended to (FILE_APPEND_DATA: each write lands at the end), shared so
 * that others may read, rotate or delete it, and never through a
 * symbolic link or other reparse point. */
static HANDLE open_log_handle(const char *path, bool inherit) {
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, inherit};
  HANDLE h = CreateFileA(path, FILE_APPEND_DATA | SYNCHRONIZE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         &sa, OPEN_ALWAYS, FILE_FLAG_OPEN_REPARSE_POINT, NULL);
  if (h == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "traced serve: cannot open log file %s: %s\n", path,
            strerror(tr_win_errno(GetLastError())));
    return NULL;
  }
  BY_HANDLE_FILE_INFORMATION info;
  if (GetFileInformationByHandle(h, &info) &&
      (info.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT)) {
    fprintf(stderr,
            "traced serve: cannot open log file %s: it is a symbolic link, "
            "which is not followed\n",
            path);
    CloseHandle(h);
    return NULL;
  }
  return h;
}

int tr_serveos_open_log(const char *path) {
  HANDLE h = open_log_handle(path, false);
  if (h == NULL) return -1;
  int fd = _open_osfhandle((intptr_t)h, _O_WRONLY | _O_BINARY);
  if (fd < 0) {
    CloseHandle(h);
    return -1;
  }
  int rc = dup2(fd, STDERR_FILENO) < 0 ? -1 : 0;
  close(fd);
  if (rc == 0) SetStdHandle(STD_ERROR_HANDLE, (HANDLE)_get_osfhandle(2));
  return rc;
}

/* The detached copy: its status pipe, from the environment. */
static int detached_child(const char *log_path) {
  char v[32];
  DWORD n = GetEnvironmentVariableA(READY_ENV, v, sizeof(v));
  if (n == 0 || n >= sizeof(v)) return -1;
  SetEnvironmentVariableA(READY_ENV, NULL);
  int ready = (int)strtol(v, NULL, 10);
  /* A daemon keeps no directory in use (which Windows would not let be
   * removed): it works from the system drive's root. */
  char root[MAX_PATH];
  UINT k = GetSystemWindowsDirectoryA(root, sizeof(root));
  if (k >= 3 && k < sizeof(root)) {
    root[3] = '\0';
    SetCurrentDirectoryA(root);
  }
  if (tr_serveos_open_log(log_path) < 0) {
    tr_serveos_ready(ready, '1');
    exit(1);
  }
  return ready;
}

int tr_serveos_daemonize(const char *log_path, const char *socket_path) {
  int ready = detached_child(log_path);
  if (ready >= 0) return ready;
  /* Opened here too, so that a refusal reaches the user's terminal. */
  HANDLE log = open_log_handle(log_path, false);
  if (log == NULL) exit(1);
  CloseHandle(log);
  /* The copy inherits what is inheritable here: not the standard handles
   * this process got (a caller waiting for their end, as a shell or
   * `traced run`'s caller does, would wait for the daemon's), only the
   * status pipe and NUL. */
  DWORD std[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
  for (int i = 0; i < 3; i++) {
    HANDLE h = GetStdHandle(std[i]);
    if (h != NULL && h != INVALID_HANDLE_VALUE)
      SetHandleInformation(h, HANDLE_FLAG_INHERIT, 0);
  }
  SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
  HANDLE rd, wr;
  if (!CreatePipe(&rd, &wr, &sa, 0)) {
    fprintf(stderr, "traced serve: pipe: %s\n",
            strerror(tr_win_errno(GetLastError())));
    exit(1);
  }
  SetHandleInformation(rd, HANDLE_FLAG_INHERIT, 0);
  HANDLE nul = CreateFileA("NUL", GENERIC_READ | GENERIC_WRITE,
                           FILE_SHARE_READ | FILE_SHARE_WRITE, &sa,
                           OPEN_EXISTING, 0, NULL);
  char v[32];
  snprintf(v, sizeof(v), "%d", tr_win_int(wr));
  SetEnvironmentVariableA(READY_ENV, v);
  STARTUPINFOA si;
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  si.dwFlags = STARTF_USESTDHANDLES;
  si.hStdInput = si.hStdOutput = si.hStdError = nul;
  PROCESS_INFORMATION pi;
  /* The same command line: the copy finds READY_ENV and detaches no
   * further. */
  BOOL ok = CreateProcessA(NULL, GetCommandLineA(), NULL, NULL, TRUE,
                           DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP, NULL,
                           NULL, &si, &pi);
  DWORD err = ok ? 0 : GetLastError();
  SetEnvironmentVariableA(READY_ENV, NULL);
  CloseHandle(wr);
  if (nul != INVALID_HANDLE_VALUE) CloseHandle(nul);
  if (!ok) {
    fprintf(stderr, "traced serve: cannot start the daemon: %s\n",
            strerror(tr_win_errno(err)));
    exit(1);
  }
  CloseHandle(pi.hThread);
  CloseHandle(pi.hProcess);
  char c = '1';
  DWORD got = 0;
  if (!ReadFile(rd, &c, 1, &got, NULL)) got = 0;
  CloseHandle(rd);
  tr_serveos_waited(got == 1, c, log_path, socket_path);
}

void tr_serveos_ready(int ready, char status) {
  if (ready < 0) return;
  DWORD n;
  WriteFile(tr_win_handle(ready), &status, 1, &n, NULL);
  CloseHandle(tr_win_handle(ready));
}

/* libuv turns the console's control events into these: ^C (SIGINT),
 * ^Break (SIGBREAK) and the console closing (SIGHUP, after which Windows
 * gives the process a few seconds). */
const tr_serveos_signal tr_serveos_stop_signals[TR_SERVEOS_NSIGNALS + 1] = {
    {SIGINT, "SIGINT"}, {SIGBREAK, "SIGBREAK"}, {SIGHUP, "SIGHUP"}, {0, NULL}};

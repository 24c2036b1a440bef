/* runproc_win.c: runproc.h on Windows: CreateProcess with a command line
 * quoted as the C runtime parses it, exit codes, and console control
 * events left to the child. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/win32.h"
#include "proto/traced_proto.h"
#include "runproc.h"

/* Appends `arg` to the command line cmd[*n..cap) as the C runtime's
 * argument parser reads it back (CommandLineToArgvW's rules): quoted when
 * it is empty or holds white space or a quote; inside quotes, a run of
 * backslashes is doubled before a quote (which is escaped) and at the
 * end.  Returns false when it does not fit. */
static bool append_arg(char *cmd, size_t cap, size_t *n, const char *arg) {
  size_t k = *n;
#define PUT(c)                      \
  do {                              \
    if (k + 1 >= cap) return false; \
    cmd[k++] = (c);                 \
  } while (0)
  if (k > 0) PUT(' ');
  if (arg[0] != '\0' && strpbrk(arg, " \t\n\v\"") == NULL) {
    for (const char *p = arg; *p != '\0'; p++) PUT(*p);
  } else {
    PUT('"');
    for (const char *p = arg;; p++) {
      size_t slashes = 0;
      while (*p == '\\') {
        slashes++;
        p++;
      }
      if (*p == '\0') {
        for (size_t i = 0; i < 2 * slashes; i++) PUT('\\');
        break;
      }
      if (*p == '"') {
        for (size_t i = 0; i < 2 * slashes + 1; i++) PUT('\\');
      } else {
        for (size_t i = 0; i < slashes; i++) PUT('\\');
      }
      PUT(*p);
    }
    PUT('"');
  }
#undef PUT
  cmd[k] = '\0';
  *n = k;
  return true;
}

/* The command line of argv, malloc'd, or NULL (errno set). */
static char *command_line(char **argv) {
  size_t cap = 1;
  for (char **a = argv; *a != NULL; a++) cap += 3 + 2 * strlen(*a);
  char *cmd = malloc(cap);
  if (cmd == NULL) return NULL;
  size_t n = 0;
  cmd[0] = '\0';
  for (char **a = argv; *a != NULL; a++)
    if (!append_arg(cmd, cap, &n, *a)) {
      free(cmd);
      errno = E2BIG;
      return NULL;
    }
  return cmd;
}

/* The standard handles a child gets: ours, made inheritable, or NUL's
 * (`quiet`).  *nul is the NUL handle to close after the child started. */
static void std_handles(STARTUPINFOA *si, bool quiet, HANDLE *nul) {
  memset(si, 0, sizeof(*si));
  si->cb = sizeof(*si);
  si->dwFlags = STARTF_USESTDHANDLES;
  *nul = INVALID_HANDLE_VALUE;
  if (quiet) {
    SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, TRUE};
    *nul = CreateFileA("NUL", GENERIC_READ | GENERIC_WRITE,
                       FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_EXISTING,
                       0, NULL);
    si->hStdInput = si->hStdOutput = si->hStdError = *nul;
    return;
  }
  HANDLE std[3] = {GetStdHandle(STD_INPUT_HANDLE),
                   GetStdHandle(STD_OUTPUT_HANDLE),
                   GetStdHandle(STD_ERROR_HANDLE)};
  for (int i = 0; i < 3; i++)
    if (std[i] != NULL && std[i] != INVALID_HANDLE_VALUE)
      SetHandleInformation(std[i], HANDLE_FLAG_INHERIT, HANDLE_FLAG_INHERIT);
  si->hStdInput = std[0];
  si->hStdOutput = std[1];
  si->hStdError = std[2];
}

/* Starts argv; returns the process handle, or NULL with *err the Win32
 * error. */
static HANDLE spawn(char **argv, const char *program, bool quiet, DWORD flags,
                    DWORD *err) {
  char *cmd = command_line(argv);
  if (cmd == NULL) {
    *err = ERROR_NOT_ENOUGH_MEMORY;
    return NULL;
  }
  STARTUPINFOA si;
  HANDLE nul;
  std_handles(&si, quiet, &nul);
  PROCESS_INFORMATION pi;
  BOOL ok = CreateProcessA(program, cmd, NULL, NULL, TRUE, flags, NULL, NULL,
                           &si, &pi);
  *err = ok ? 0 : GetLastError();
  free(cmd);
  if (nul != INVALID_HANDLE_VALUE) CloseHandle(nul);
  if (!ok) return NULL;
  CloseHandle(pi.hThread);
  return pi.hProcess;
}

/* Waits for the process and stores its exit code (any 32-bit value: a
 * crash's NTSTATUS such as 0xC0000005, or exit(-1)'s 0xFFFFFFFF); false
 * when the wait itself failed. */
static bool wait_exit(HANDLE proc, DWORD *code) {
  *code = 0;
  bool ok = WaitForSingleObject(proc, INFINITE) == WAIT_OBJECT_0 &&
            GetExitCodeProcess(proc, code);
  CloseHandle(proc);
  return ok;
}

/* While the child runs, the console's ^C and ^Break (which the child gets
 * too, sharing the console) and closing the console do not end traced
 * before it: it waits for the child, then for the daemon. */
static BOOL WINAPI ignore_control(DWORD type) {
  (void)type;
  return TRUE;
}

int tr_runproc_run(char **argv, const char *socket, const char *token) {
  /* The child inherits this process's environment block. */
  if (token != NULL) {
    char pid[24];
    snprintf(pid, sizeof(pid), "%lu", (unsigned long)GetCurrentProcessId());
    SetEnvironmentVariableA(TR_ENV_ROOT_PID, pid);
    SetEnvironmentVariableA(TR_ENV_SESSION, token);
    SetEnvironmentVariableA(TR_ENV_SOCKET, socket);
  }
  SetEnvironmentVariableA(TR_ENV_OUTPUT, NULL);
  DWORD err;
  HANDLE proc = spawn(argv, NULL, false, 0, &err);
  if (proc == NULL) {
    bool missing = err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND;
    fprintf(
        stderr, "traced: cannot run %s: %s\n", argv[0],
        missing ? "No such file or directory" : strerror(tr_win_errno(err)));
    return missing ? 127 : 126;
  }
  SetConsoleCtrlHandler(ignore_control, TRUE);
  DWORD code;
  bool waited = wait_exit(proc, &code);
  SetConsoleCtrlHandler(ignore_control, FALSE);
  /* Passed through whole: exit() of the same int gives the same DWORD. */
  return waited ? (int)code : 1;
}

int tr_runproc_quiet(char **argv) {
  SetEnvironmentVariableA(TR_ENV_SESSION, NULL);
  SetEnvironmentVariableA(TR_ENV_OUTPUT, NULL);
  DWORD err;
  HANDLE proc = spawn(argv, NULL, true, CREATE_NO_WINDOW, &err);
  DWORD code;
  if (proc == NULL || !wait_exit(proc, &code)) return -1;
  /* A crash (NTSTATUS, negative as an int) is a failure, not a success. */
  return code > INT_MAX ? 1 : (int)code;
}

int tr_runproc_autostart(const char *socket, const char *idle_s) {
  char self[MAX_PATH];
  DWORD n = GetModuleFileNameA(NULL, self, sizeof(self));
  if (n == 0 || n >= sizeof(self)) return -ENAMETOOLONG;
  char *argv[] = {self,           "serve",    "--daemon",     "--idle-exit",
                  (char *)idle_s, "--socket", (char *)socket, NULL};
  DWORD err;
  HANDLE proc = spawn(argv, self, false, 0, &err);
  if (proc == NULL) return -tr_win_errno(err);
  DWORD code;
  return wait_exit(proc, &code) && code == 0 ? 0 : -ECHILD;
}

bool tr_runproc_private_place(const char *socket) {
  /* A pipe has no directory to own: who serves it is checked when the
   * client connects. */
  return strcmp(socket, TR_SYSTEM_SOCKET) != 0;
}

bool tr_runproc_find(const char *name, char *out, size_t size) {
  if (strpbrk(name, "/\\:") != NULL) {
    if ((size_t)snprintf(out, size, "%s", name) >= size) return false;
    DWORD a = GetFileAttributesA(out);
    return a != INVALID_FILE_ATTRIBUTES && !(a & FILE_ATTRIBUTE_DIRECTORY);
  }
  DWORD n = SearchPathA(NULL, name, ".exe", (DWORD)size, out, NULL);
  return n > 0 && n < size;
}

int tr_path_absolute(const char *path, char *out, size_t size) {
  DWORD n = GetFullPathNameA(path, (DWORD)size, out, NULL);
  return n == 0 || n >= size ? -ENAMETOOLONG : 0;
}

bool tr_runproc_output_deleted(int h) {
  FILE_STANDARD_INFO info;
  if (!GetFileInformationByHandleEx(tr_win_handle(h), FileStandardInfo, &info,
                                    sizeof(info)))
    return false;
  return info.DeletePending || info.NumberOfLinks == 0;
}

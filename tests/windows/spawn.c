/* spawn.c: starts COUNT copies of a command at once and waits for all of
 * them, so that one `traced.exe run` session gets several processes (the
 * Windows side of test_stress.py's Python driver; tests/windows/).
 *
 *   spawn COUNT PROGRAM [ARGS...]
 *
 * The copies inherit the environment (TRACED_SESSION) and the standard
 * handles.  Exits 0 when every copy exited 0, else with the first non-zero
 * status in start order; 2 on bad usage, 3 when a copy cannot start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>

enum { kMaxCopies = 64, kCmdMax = 32768 };

/* Appends `arg` to `cmd` quoted the way CommandLineToArgvW and the C
 * runtime split it: in double quotes, a quote or the backslashes before a
 * quote or the closing quote doubled. */
static int append_arg(char *cmd, size_t *len, const char *arg) {
  size_t n = *len;
  if (n + 3 >= kCmdMax) return -1;
  if (n > 0) cmd[n++] = ' ';
  cmd[n++] = '"';
  for (const char *p = arg;; p++) {
    size_t slashes = 0;
    while (*p == '\\') {
      slashes++;
      p++;
    }
    size_t reps = (*p == '\0')  ? 2 * slashes
                  : (*p == '"') ? 2 * slashes + 1
                                : slashes;
    if (n + reps + 3 >= kCmdMax) return -1;
    memset(cmd + n, '\\', reps);
    n += reps;
    if (*p == '\0') break;
    cmd[n++] = *p;
  }
  cmd[n++] = '"';
  cmd[n] = '\0';
  *len = n;
  return 0;
}

int main(int argc, char **argv) {
  int count = argc >= 3 ? atoi(argv[1]) : 0;
  if (count < 1 || count > kMaxCopies) {
    fprintf(stderr, "usage: spawn COUNT(1..%d) PROGRAM [ARGS...]\n",
            kMaxCopies);
    return 2;
  }
  static char cmd[kCmdMax];
  size_t len = 0;
  for (int i = 2; i < argc; i++) {
    if (append_arg(cmd, &len, argv[i]) != 0) {
      fprintf(stderr, "spawn: command line too long\n");
      return 2;
    }
  }
  HANDLE procs[kMaxCopies];
  int started = 0, status = 0;
  for (int i = 0; i < count; i++) {
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof(si));
    si.cb = sizeof(si);
    /* CreateProcess may write into the command line: give it a copy. */
    static char copy[kCmdMax];
    memcpy(copy, cmd, len + 1);
    if (!CreateProcessA(NULL, copy, NULL, NULL, TRUE, 0, NULL, NULL, &si,
                        &pi)) {
      fprintf(stderr, "spawn: cannot start %s: error %lu\n", argv[2],
              (unsigned long)GetLastError());
      status = 3;
      break;
    }
    CloseHandle(pi.hThread);
    procs[started++] = pi.hProcess;
  }
  for (int i = 0; i < started; i++) {
    DWORD code = 1;
    WaitForSingleObject(procs[i], INFINITE);
    GetExitCodeProcess(procs[i], &code);
    CloseHandle(procs[i]);
    if (status == 0 && code != 0) status = (int)code;
  }
  return status;
}

/* terminate.c: ends every process running the program IMAGE with
 * TerminateProcess and exit code CODE, as a crash or Task Manager's "End
 * task" would: none of the process's own exit code runs
 * (tests/windows/test_traced.py's killed client).  Wine's taskkill /F
 * ends them with code 0, which cannot be told from a clean exit.
 *
 *   terminate IMAGE CODE
 *
 * Prints "terminated N"; exits 0 when N > 0, 1 when none was found, 2 on
 * bad usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
// clang-format off
#include <tlhelp32.h>
// clang-format on

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: terminate IMAGE CODE\n");
    return 2;
  }
  UINT code = (UINT)strtoul(argv[2], NULL, 10);
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) {
    fprintf(stderr, "terminate: no process list: %lu\n", GetLastError());
    return 1;
  }
  int n = 0;
  PROCESSENTRY32 pe;
  pe.dwSize = sizeof(pe);
  for (BOOL ok = Process32First(snap, &pe); ok; ok = Process32Next(snap, &pe)) {
    if (_stricmp(pe.szExeFile, argv[1]) != 0) continue;
    HANDLE p =
        OpenProcess(PROCESS_TERMINATE | SYNCHRONIZE, FALSE, pe.th32ProcessID);
    if (p == NULL) continue;
    if (TerminateProcess(p, code)) {
      WaitForSingleObject(p, 10000);
      n++;
    }
    CloseHandle(p);
  }
  CloseHandle(snap);
  printf("terminated %d\n", n);
  return n > 0 ? 0 : 1;
}

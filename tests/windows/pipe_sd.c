/* pipe_sd.c: reads back the security descriptor of a named pipe someone
 * serves, for tests/windows/ (Wine runs every process as one user, so a
 * second user's refusal is tested by reading what the pipe admits).
 *
 *   pipe_sd PIPE     prints "user=<SID of this process>" and
 *                    "sd=<the pipe's owner and DACL in SDDL>"
 *   pipe_sd --demo   the same for a pipe it creates itself, admitting only
 *                    this user, to show the reading works where it runs
 *
 * Exits 0, or 1 with the failing call and its error on stderr. */
#include <stdio.h>
#include <string.h>
#include <windows.h>
/* After windows.h. */
#include <aclapi.h>
#include <sddl.h>

static int fail(const char *what) {
  fprintf(stderr, "pipe_sd: %s: error %lu\n", what,
          (unsigned long)GetLastError());
  return 1;
}

/* The string SID of this process's user; LocalFree it. */
static char *user_sid(void) {
  HANDLE token;
  static BYTE buf[256];
  DWORD len = 0;
  char *sid = NULL;
  if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) return NULL;
  if (GetTokenInformation(token, TokenUser, buf, sizeof(buf), &len))
    ConvertSidToStringSidA(((TOKEN_USER *)buf)->User.Sid, &sid);
  CloseHandle(token);
  return sid;
}

static int print_sd(HANDLE pipe) {
  PSECURITY_DESCRIPTOR sd = NULL;
  char *sddl = NULL;
  DWORD err =
      GetSecurityInfo(pipe, SE_KERNEL_OBJECT,
                      OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                      NULL, NULL, NULL, NULL, &sd);
  if (err != ERROR_SUCCESS) {
    SetLastError(err);
    return fail("GetSecurityInfo");
  }
  if (!ConvertSecurityDescriptorToStringSecurityDescriptorA(
          sd, SDDL_REVISION_1,
          OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &sddl,
          NULL)) {
    LocalFree(sd);
    return fail("ConvertSecurityDescriptorToStringSecurityDescriptor");
  }
  printf("sd=%s\n", sddl);
  LocalFree(sddl);
  LocalFree(sd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: pipe_sd PIPE | --demo\n");
    return 2;
  }
  char *sid = user_sid();
  if (sid == NULL) return fail("the process token's user");
  printf("user=%s\n", sid);
  const char *name = argv[1];
  HANDLE server = INVALID_HANDLE_VALUE;
  char demo[64];
  if (strcmp(name, "--demo") == 0) {
    char sddl[256];
    PSECURITY_DESCRIPTOR sd;
    snprintf(demo, sizeof(demo), "\\\\.\\pipe\\pipe_sd-demo-%lu",
             (unsigned long)GetCurrentProcessId());
    snprintf(sddl, sizeof(sddl), "O:%sD:P(A;;GA;;;%s)", sid, sid);
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(
            sddl, SDDL_REVISION_1, &sd, NULL))
      return fail("ConvertStringSecurityDescriptorToSecurityDescriptor");
    SECURITY_ATTRIBUTES sa = {sizeof(sa), sd, FALSE};
    server = CreateNamedPipeA(demo, PIPE_ACCESS_DUPLEX, PIPE_TYPE_BYTE, 1, 4096,
                              4096, 0, &sa);
    LocalFree(sd);
    if (server == INVALID_HANDLE_VALUE) return fail("CreateNamedPipe");
    name = demo;
  }
  LocalFree(sid);
  /* READ_CONTROL is all reading the descriptor needs: no data flows, and
   * the server sees a client connect and go. */
  HANDLE pipe =
      CreateFileA(name, READ_CONTROL, 0, NULL, OPEN_EXISTING, 0, NULL);
  if (pipe == INVALID_HANDLE_VALUE) return fail("opening the pipe");
  int rc = print_sd(pipe);
  CloseHandle(pipe);
  if (server != INVALID_HANDLE_VALUE) CloseHandle(server);
  return rc;
}

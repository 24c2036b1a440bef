/* win_transport.c: a Windows check of both sides of the transport seam
 * (libclient/src/transport_win.c and daemon/transport_win.c), run under
 * Wine by make test-windows (tests/windows/test_units.py).  The parent listens
 * on a private pipe through libuv; a child process (this program again)
 * connects, checks the server, hands over a section and an output file in one
 * frame and closes its own handles at once; the parent pulls both, reads the
 * section's pattern, writes through the file handle, and answers with the
 * checksum, which the child compares.  The child also reads the pipe's
 * security descriptor back.  Exit status 0 means every check held. */
#define WIN32_LEAN_AND_MEAN
/* windows.h first: sddl.h, tlhelp32.h and the other Win32 headers need
 * it, so it is kept out of clang-format's include sorting. */
// clang-format off
#include <windows.h>
// clang-format on
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon/transport.h"
#include "libclient/src/transport.h"
#include "proto/frame.h"

#define SHM_SIZE (4096u + 65536u)
#define FAIL(...)                 \
  do {                            \
    fprintf(stderr, "FAIL: ");    \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(1);                      \
  } while (0)

static uint32_t checksum(const uint8_t *p, size_t n) {
  uint32_t s = 2166136261u;
  for (size_t i = 0; i < n; i++) s = (s ^ p[i]) * 16777619u;
  return s;
}

/* ---- the server (parent) ---------------------------------------------- */

static struct {
  uv_loop_t *loop;
  tr_dtransport_listener *lst;
  tr_watch w;
  int conn;
  uint8_t in[256];
  size_t in_len;
  int handles[TR_FRAME_MAX_FDS];
  int nh;
  int done;
  const char *out_path;
} S;

static void on_closed(uv_handle_t *h) { (void)h; }

static void serve_frame(const tr_frame_hdr *h, const uint8_t *payload) {
  if (h->type != TR_MSG_RING_ADD || h->len != 4)
    FAIL("server: unexpected frame type %u len %u", h->type, h->len);
  if (S.nh != 2) FAIL("server: %d handles came with the frame, not 2", S.nh);
  void *m;
  uint64_t id[2];
  int rc = tr_dtransport_shm_map(S.handles[0], SHM_SIZE, &m, id);
  if (rc < 0) FAIL("server: cannot map the section: %d", rc);
  if (tr_dtransport_shm_map(S.handles[0], SHM_SIZE - 4096, &m, id) != -EINVAL)
    FAIL("server: a section of the wrong size was accepted");
  uint32_t sum = checksum(m, SHM_SIZE);
  uint32_t want;
  memcpy(&want, payload, 4);
  if (sum != want)
    FAIL("server: section checksum %08x, client said %08x", sum, want);
  int out = tr_dtransport_output_fd(S.handles[1]);
  if (out < 0) FAIL("server: the output handle is no descriptor: %d", out);
  if (tr_dtransport_output_kind(out) != 1)
    FAIL("server: the output handle is not a disk file");
  if (write(out, "traced\n", 7) != 7)
    FAIL("server: cannot write through the output handle");
  close(out);
  tr_peer_cred cred;
  if (tr_dtransport_peer_cred(S.conn, &cred) < 0 || cred.pid <= 0)
    FAIL("server: no peer credentials");
  uint8_t reply[sizeof(tr_frame_hdr) + 4];
  tr_frame_hdr_encode(reply, TR_MSG_WELCOME, 4);
  memcpy(reply + sizeof(tr_frame_hdr), &sum, 4);
  if (tr_dtransport_send(S.conn, reply, sizeof(reply)) != sizeof(reply))
    FAIL("server: cannot reply");
  printf("server: pulled 2 handles, section checksum %08x, client pid %ld\n",
         sum, (long)cred.pid);
  S.done = 1;
}

static void on_readable(tr_watch *w, int status, int events) {
  (void)w;
  (void)events;
  if (status < 0) FAIL("server: watch status %d", status);
  for (;;) {
    int hs[TR_FRAME_MAX_FDS], nh = 0;
    int64_t n =
        tr_dtransport_recv(S.conn, S.in + S.in_len, sizeof(S.in) - S.in_len, hs,
                           &nh, TR_FRAME_MAX_FDS);
    if (n == -EAGAIN) return;
    if (n == 0) {
      if (!S.done) FAIL("server: the client left before its frame");
      tr_dtransport_watch_close(&S.w, on_closed);
      tr_dtransport_close(S.conn);
      tr_dtransport_listen_close(S.lst);
      return;
    }
    if (n < 0) FAIL("server: recv %lld", (long long)n);
    if (nh > 0) {
      if (S.in_len != 0) FAIL("server: handles not at a frame's start");
      memcpy(S.handles, hs, sizeof(int) * (size_t)nh);
      S.nh = nh;
    }
    S.in_len += (size_t)n;
    tr_frame_hdr h;
    int64_t total = tr_frame_parse(S.in, S.in_len, &h);
    if (total < 0) FAIL("server: bad frame");
    if (total > 0) {
      serve_frame(&h, S.in + sizeof(tr_frame_hdr));
      S.in_len = 0;
    }
  }
}

static void on_accept(void *arg, int conn) {
  (void)arg;
  S.conn = conn;
  tr_peer_cred cred;
  if (tr_dtransport_peer_cred(conn, &cred) < 0) FAIL("server: peer_cred");
  if (tr_dtransport_watch_init(S.loop, &S.w, conn) < 0)
    FAIL("server: watch_init");
  tr_dtransport_watch(&S.w, UV_READABLE, on_readable);
}

static int serve(const char *pipe, const char *self, const char *out) {
  S.loop = uv_default_loop();
  S.out_path = out;
  int rc =
      tr_dtransport_listen_pipe(S.loop, pipe, false, on_accept, NULL, &S.lst);
  if (rc < 0) FAIL("server: listen on %s: %d", pipe, rc);
  tr_dtransport_listener *second;
  rc = tr_dtransport_listen_pipe(S.loop, pipe, false, on_accept, NULL, &second);
  /* Wine (8.0 here) ignores FILE_FLAG_FIRST_PIPE_INSTANCE: the second
   * instance is made.  Only Windows can check this refusal. */
  bool wine =
      GetProcAddress(GetModuleHandleA("ntdll.dll"), "wine_get_version") != NULL;
  if (rc == 0) {
    tr_dtransport_listen_close(second);
    if (!wine) FAIL("server: a second listener on %s was not refused", pipe);
    printf("server: Wine does not refuse a second first instance (skipped)\n");
  } else if (rc != -EADDRINUSE) {
    FAIL("server: a second listener on %s: %d, not -EADDRINUSE", pipe, rc);
  }
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "\"%s\" client %s %s", self, pipe, out);
  STARTUPINFOA si;
  PROCESS_INFORMATION pi;
  memset(&si, 0, sizeof(si));
  si.cb = sizeof(si);
  if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
    FAIL("server: cannot start the client: %lu", GetLastError());
  uv_run(S.loop, UV_RUN_DEFAULT);
  WaitForSingleObject(pi.hProcess, 20000);
  DWORD code = 1;
  GetExitCodeProcess(pi.hProcess, &code);
  if (code != 0) FAIL("the client failed (exit %lu)", code);
  printf("ok: both sides of the Windows transport\n");
  return 0;
}

/* ---- the client (child) ----------------------------------------------- */

static int client(const char *pipe, const char *out) {
  char why[512];
  int conn = tr_transport_connect(pipe, why, sizeof(why));
  if (conn < 0) FAIL("client: connect %s: %d %s", pipe, conn, why);
  PSECURITY_DESCRIPTOR sd = NULL;
  PACL dacl;
  DWORD e =
      GetSecurityInfo((HANDLE)(intptr_t)conn, SE_KERNEL_OBJECT,
                      DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL, &sd);
  char *sddl = NULL;
  if (e == ERROR_SUCCESS &&
      ConvertSecurityDescriptorToStringSecurityDescriptorA(
          sd, SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &sddl, NULL)) {
    printf("client: pipe DACL %s\n", sddl);
    if (strstr(sddl, ";WD)") != NULL || strstr(sddl, ";AN)") != NULL)
      FAIL("client: the pipe admits everyone or anonymous");
    if (strstr(sddl, "D:P") == NULL) FAIL("client: the DACL is not protected");
  } else {
    printf("client: cannot read the pipe's DACL back (error %lu)\n", e);
  }
  void *m;
  int sec = tr_transport_shm_create("t", SHM_SIZE, &m, 4096);
  if (sec < 0) FAIL("client: shm_create %d", sec);
  for (size_t i = 0; i < SHM_SIZE; i++) ((uint8_t *)m)[i] = (uint8_t)(i * 7);
  uint32_t sum = checksum(m, SHM_SIZE);
  int of = tr_transport_open_output(out);
  if (of < 0) FAIL("client: open_output %s: %d", out, of);
  uint8_t hdr[sizeof(tr_frame_hdr)];
  tr_frame_hdr_encode(hdr, TR_MSG_RING_ADD, 4);
  int hs[2] = {sec, of};
  int rc = tr_transport_send(conn, hdr, sizeof(hdr), &sum, 4, hs, 2, 5000);
  if (rc < 0) FAIL("client: send %d", rc);
  /* As after SCM_RIGHTS: ours may go at once. */
  tr_transport_close(sec);
  tr_transport_close(of);
  uint8_t reply[sizeof(tr_frame_hdr) + 4];
  rc = tr_transport_recv(conn, reply, sizeof(reply), 10000);
  if (rc < 0) FAIL("client: recv %d", rc);
  uint32_t back;
  memcpy(&back, reply + sizeof(tr_frame_hdr), 4);
  if (back != sum) FAIL("client: server saw %08x, not %08x", back, sum);
  tr_transport_close(conn);
  printf("client: server checked, handles handed over, checksum %08x\n", sum);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "client") == 0)
    return client(argv[2], argv[3]);
  if (argc == 3) return serve(argv[1], argv[0], argv[2]);
  fprintf(stderr, "usage: win_transport \\\\.\\pipe\\NAME OUTPUT\n");
  return 2;
}

/* transport_win.c: transport.h on Windows: the daemon's named pipe,
 * checked by the token user of the process serving it, handles handed over
 * in a HANDLES frame for the daemon to copy and receipted, pagefile-backed
 * sections, a bounded sleep on a full ring, and the process facts from
 * Win32.
 * PROTOCOL.md section 9 and docs/windows-transport.md say why each choice. */
#define WIN32_LEAN_AND_MEAN
/* windows.h first: sddl.h, tlhelp32.h and the other Win32 headers need
 * it, so it is kept out of clang-format's include sorting. */
// clang-format off
#include <windows.h>
// clang-format on
#include <errno.h>
#include <sddl.h>
#include <shellapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tlhelp32.h>

#include "common/win32.h"
#include "conn.h"
#include "proto/frame.h"
#include "proto/sockpath.h"
#include "transport.h"

#ifndef CREATE_WAITABLE_TIMER_HIGH_RESOLUTION
#define CREATE_WAITABLE_TIMER_HIGH_RESOLUTION 0x00000002
#endif

#define PIPE_PREFIX "\\\\.\\pipe\\"

/* A HANDLE's value as the int the seam passes, and back (transport.h). */

/* ---- who serves the pipe -------------------------------------------- */

/* Whether `sid` may serve this client: the client's own user, LocalSystem
 * (what root is on Unix), or, on a pipe other than the per-user default,
 * the shared service's virtual account NT SERVICE\traced (what the owner
 * of /run/traced is on Unix). */
static bool trusted_sid(PSID sid, PSID mine, bool per_user) {
  if (EqualSid(sid, mine) || IsWellKnownSid(sid, WinLocalSystemSid))
    return true;
  if (per_user) return false;
  BYTE svc[SECURITY_MAX_SID_SIZE];
  DWORD svc_len = sizeof(svc);
  char dom[256];
  DWORD dom_len = sizeof(dom);
  SID_NAME_USE use;
  return LookupAccountNameA(NULL, "NT SERVICE\\traced", svc, &svc_len, dom,
                            &dom_len, &use) &&
         EqualSid(sid, svc);
}

/* Checks the process at the server end of `pipe` before anything is
 * sent: like SO_PEERCRED on Unix, the pid comes from the kernel
 * (GetNamedPipeServerProcessId), and it is asked again once the process
 * is held open, so a server that exited and had its pid reused is not
 * mistaken for the one that answered. */
static int check_server(HANDLE pipe, const char *path, bool per_user, char *why,
                        size_t why_size) {
  ULONG pid = 0, again = 0;
  if (!GetNamedPipeServerProcessId(pipe, &pid))
    return -tr_win_errno(GetLastError());
  HANDLE proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  if (proc == NULL) {
    snprintf(why, why_size,
             "cannot inspect the process (pid %lu) serving %s (error %lu), "
             "so nothing is sent to it",
             (unsigned long)pid, path, (unsigned long)GetLastError());
    return -EPERM;
  }
  TOKEN_USER *theirs = tr_win_token_user(proc);
  TOKEN_USER *mine = tr_win_token_user(GetCurrentProcess());
  int rc = 0;
  if (theirs == NULL || mine == NULL) {
    rc = -EPERM;
    snprintf(why, why_size,
             "cannot read the user of the process (pid %lu) serving %s, so "
             "nothing is sent to it",
             (unsigned long)pid, path);
  } else if (!trusted_sid(theirs->User.Sid, mine->User.Sid, per_user)) {
    rc = -EPERM;
    char *s = NULL, *m = NULL;
    ConvertSidToStringSidA(theirs->User.Sid, &s);
    ConvertSidToStringSidA(mine->User.Sid, &m);
    snprintf(why, why_size,
             "the process serving %s (pid %lu) runs as %s, not as you (%s), "
             "SYSTEM, or the traced service: it may be another user "
             "impersonating the traced daemon, so nothing is sent to it",
             path, (unsigned long)pid, s ? s : "?", m ? m : "?");
    LocalFree(s);
    LocalFree(m);
  } else if (!GetNamedPipeServerProcessId(pipe, &again) || again != pid) {
    rc = -EPERM;
    snprintf(why, why_size, "the server of %s changed while it was checked",
             path);
  }
  free(theirs);
  free(mine);
  CloseHandle(proc);
  return rc;
}

/* ---- the connection ------------------------------------------------- */

int tr_transport_connect(const char *path, char *why, size_t why_size) {
  char scratch[TR_CONN_WHY_MAX];
  if (why == NULL || why_size == 0) {
    why = scratch;
    why_size = sizeof(scratch);
  }
  why[0] = '\0';
  if (_strnicmp(path, PIPE_PREFIX, strlen(PIPE_PREFIX)) != 0) {
    snprintf(why, why_size,
             "'%s' is not a pipe name; TRACED_SOCKET and --socket take "
             "\\\\.\\pipe\\<name> on Windows",
             path);
    return -EINVAL;
  }
  char user[256];
  bool per_user =
      tr_sockpath_user(user, sizeof(user)) == 0 && _stricmp(user, path) == 0;
  /* SECURITY_IDENTIFICATION: the server may learn who we are but never
   * act as us, whoever it turns out to be. */
  DWORD flags =
      FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION;
  HANDLE h = INVALID_HANDLE_VALUE;
  for (int tries = 0; tries < 2; tries++) {
    h = CreateFileA(path, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                    flags, NULL);
    if (h != INVALID_HANDLE_VALUE || GetLastError() != ERROR_PIPE_BUSY) break;
    /* Every instance is taken: the daemon makes another as it accepts. */
    if (!WaitNamedPipeA(path, TR_CONN_TIMEOUT_MS)) break;
  }
  if (h == INVALID_HANDLE_VALUE) return -tr_win_errno(GetLastError());
  int rc = check_server(h, path, per_user, why, why_size);
  if (rc < 0) {
    CloseHandle(h);
    return rc;
  }
  return tr_win_int(h);
}

/* One overlapped read or write of up to `len` bytes, waited for at most
 * timeout_ms (-1: forever); returns the bytes moved or a negative errno.
 * The wait ends only once the operation did (completed or cancelled), so
 * `buf` and the OVERLAPPED never outlive it. */
static int64_t pipe_io(HANDLE h, bool write, void *buf, size_t len,
                       int timeout_ms) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
  if (ov.hEvent == NULL) return -ENOMEM;
  DWORD n = 0, chunk = len > 0x10000000u ? 0x10000000u : (DWORD)len;
  BOOL ok = write ? WriteFile(h, buf, chunk, &n, &ov)
                  : ReadFile(h, buf, chunk, &n, &ov);
  DWORD err = ok ? 0 : GetLastError();
  if (!ok && err == ERROR_IO_PENDING) {
    DWORD w = WaitForSingleObject(
        ov.hEvent, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    if (w != WAIT_OBJECT_0) CancelIoEx(h, &ov);
    ok = GetOverlappedResult(h, &ov, &n, TRUE);
    err = ok ? 0 : GetLastError();
    if (!ok && err == ERROR_OPERATION_ABORTED) err = ERROR_SEM_TIMEOUT;
  }
  CloseHandle(ov.hEvent);
  if (ok) return (int64_t)n;
  if (!write && (err == ERROR_BROKEN_PIPE || err == ERROR_PIPE_NOT_CONNECTED))
    return -ECONNRESET;
  return -tr_win_errno(err);
}

static int write_all(HANDLE h, const void *buf, size_t len, int timeout_ms) {
  size_t done = 0;
  while (done < len) {
    int64_t n = pipe_io(h, true, (char *)buf + done, len - done, timeout_ms);
    if (n < 0) return (int)n;
    done += (size_t)n;
  }
  return 0;
}

static int read_all(HANDLE h, void *buf, size_t len, int timeout_ms) {
  size_t got = 0;
  while (got < len) {
    int64_t n = pipe_io(h, false, (char *)buf + got, len - got, timeout_ms);
    if (n < 0) return (int)n;
    if (n == 0) return -ECONNRESET;
    got += (size_t)n;
  }
  return 0;
}

/* ---- the daemon's receipt of handles ---------------------------------
 * A frame read where a receipt was due (the daemon's ERROR, refusing the
 * connection before it read anything) is held for the next
 * tr_transport_recv of that connection, so its reason still reaches the
 * caller.  A process has a connection or two; each slot is one's. */
#define HELD_MAX 1024
typedef struct held_frame {
  int conn; /* 0 (never a handle's value): free */
  size_t len, off;
  uint8_t buf[sizeof(tr_frame_hdr) + HELD_MAX];
} held_frame;
static held_frame g_held[4];
static SRWLOCK g_held_lock = SRWLOCK_INIT;

/* Takes up to `len` held bytes of `conn` into buf; returns how many. */
static size_t take_held(int conn, void *buf, size_t len) {
  size_t n = 0;
  AcquireSRWLockExclusive(&g_held_lock);
  for (size_t i = 0; i < sizeof(g_held) / sizeof(g_held[0]); i++) {
    held_frame *f = &g_held[i];
    if (f->conn != conn) continue;
    n = f->len - f->off < len ? f->len - f->off : len;
    memcpy(buf, f->buf + f->off, n);
    f->off += n;
    if (f->off == f->len) f->conn = 0;
    break;
  }
  ReleaseSRWLockExclusive(&g_held_lock);
  return n;
}

static int hold(int conn, const uint8_t *frame, size_t len) {
  int rc = -EPROTO;
  AcquireSRWLockExclusive(&g_held_lock);
  for (size_t i = 0; i < sizeof(g_held) / sizeof(g_held[0]); i++) {
    held_frame *f = &g_held[i];
    if (f->conn != 0) continue;
    f->conn = conn;
    f->len = len;
    f->off = 0;
    memcpy(f->buf, frame, len);
    rc = 0;
    break;
  }
  ReleaseSRWLockExclusive(&g_held_lock);
  return rc;
}

static void drop_held(int conn) {
  AcquireSRWLockExclusive(&g_held_lock);
  for (size_t i = 0; i < sizeof(g_held) / sizeof(g_held[0]); i++)
    if (g_held[i].conn == conn) g_held[i].conn = 0;
  ReleaseSRWLockExclusive(&g_held_lock);
}

void tr_transport_close(int h) {
  if (h == -1) return;
  drop_held(h);
  CloseHandle(tr_win_handle(h));
}

/* Waits for the daemon's receipt of the `nh` handles just sent (a HANDLES
 * frame back, its payload the u32 count it took): 0 once it holds them
 * all, -EBADF when it could not take them all, or the read's error.
 * Another frame in its place is held (above) and counts as an answer. */
static int await_receipt(HANDLE pipe, int conn, int nh, int timeout_ms) {
  uint8_t f[sizeof(tr_frame_hdr) + HELD_MAX];
  int rc = read_all(pipe, f, sizeof(tr_frame_hdr), timeout_ms);
  if (rc < 0) return rc;
  tr_frame_hdr h;
  if (tr_frame_parse(f, sizeof(tr_frame_hdr), &h) < 0 || h.len > HELD_MAX)
    return -EPROTO;
  rc = read_all(pipe, f + sizeof(tr_frame_hdr), h.len, timeout_ms);
  if (rc < 0) return rc;
  if (h.type != TR_MSG_HANDLES)
    return hold(conn, f, sizeof(tr_frame_hdr) + h.len);
  if (h.len != 4) return -EPROTO;
  const uint8_t *p = f + sizeof(tr_frame_hdr);
  uint32_t took = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                  (uint32_t)p[3] << 24;
  return took == (uint32_t)nh ? 0 : -EBADF;
}

/* Handles go as a HANDLES frame right before the frame they belong to:
 * their values in this process, for the daemon to copy into its own with
 * DuplicateHandle (it never closes them here).  It does so as soon as it
 * reads the frame and answers with a receipt, which this waits for: the
 * handles must still exist in this process when the daemon takes them,
 * and a process that went on and exited (its handle table gone) would
 * lose them, and with them a ring's events.  Once this returns the caller
 * may close its handles, as after SCM_RIGHTS. */
int tr_transport_send(int conn, const void *hdr, size_t hdr_len,
                      const void *payload, size_t len, const int *handles,
                      int nh, int timeout_ms) {
  if (nh < 0 || nh > TR_FRAME_MAX_FDS) return -EMSGSIZE;
  HANDLE pipe = tr_win_handle(conn);
  if (nh > 0) {
    uint8_t hf[sizeof(tr_frame_hdr) + 8 * TR_FRAME_MAX_FDS];
    tr_frame_hdr_encode(hf, TR_MSG_HANDLES, (uint32_t)(8 * nh));
    for (int i = 0; i < nh; i++) {
      uint64_t v = (uint64_t)(intptr_t)tr_win_handle(handles[i]);
      for (int b = 0; b < 8; b++)
        hf[sizeof(tr_frame_hdr) + 8 * i + b] = (uint8_t)(v >> (8 * b));
    }
    int rc =
        write_all(pipe, hf, sizeof(tr_frame_hdr) + 8 * (size_t)nh, timeout_ms);
    if (rc < 0) return rc;
  }
  int rc = write_all(pipe, hdr, hdr_len, timeout_ms);
  if (rc == 0 && len > 0) rc = write_all(pipe, payload, len, timeout_ms);
  if (rc == 0 && nh > 0) rc = await_receipt(pipe, conn, nh, timeout_ms);
  return rc;
}

int64_t tr_transport_try_send(int conn, const void *buf, size_t len) {
  int64_t n = pipe_io(tr_win_handle(conn), true, (void *)buf, len, 0);
  return n == -ETIMEDOUT ? -EAGAIN : n;
}

int tr_transport_recv(int conn, void *buf, size_t len, int timeout_ms) {
  size_t got = take_held(conn, buf, len);
  return read_all(tr_win_handle(conn), (char *)buf + got, len - got,
                  timeout_ms);
}

/* Not truncated (the daemon empties it once it accepts the session), and
 * shared for reading, writing and deletion: the point of traced on
 * Windows is that no process's open trace stops another from replacing or
 * removing the file.  A disk file or the NUL device will do. */
int tr_transport_open_output(const char *path) {
  HANDLE h = CreateFileA(path, GENERIC_WRITE,
                         FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                         NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
  if (h == INVALID_HANDLE_VALUE) return -tr_win_errno(GetLastError());
  DWORD type = GetFileType(h);
  bool nul = _stricmp(path, "NUL") == 0 || _stricmp(path, "\\\\.\\NUL") == 0;
  if (type != FILE_TYPE_DISK && !(type == FILE_TYPE_CHAR && nul)) {
    CloseHandle(h);
    return -EINVAL;
  }
  return tr_win_int(h);
}

/* ---- shared memory -------------------------------------------------- */

/* Pagefile-backed and unnamed: no other process can open it by name, and
 * a section's size is fixed when it is made, which is what sealing
 * against shrinking gives on Linux. */
int tr_transport_shm_create(const char *name, size_t size, void **map,
                            size_t populate) {
  (void)name;
  uint64_t sz = size;
  HANDLE h = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL,
                                PAGE_READWRITE | SEC_COMMIT, (DWORD)(sz >> 32),
                                (DWORD)sz, NULL);
  if (h == NULL) return -tr_win_errno(GetLastError());
  void *m = MapViewOfFile(h, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, size);
  if (m == NULL) {
    int err = tr_win_errno(GetLastError());
    CloseHandle(h);
    return -err;
  }
  volatile char *c = m;
  for (size_t i = 0; i < populate && i < size; i += 4096) c[i] = 0;
  *map = m;
  return tr_win_int(h);
}

void tr_transport_shm_unmap(void *map, size_t size) {
  (void)size;
  UnmapViewOfFile(map);
}

int tr_transport_shm_privatize(void *map, size_t size) {
  (void)map;
  (void)size;
  return -ENOSYS;
}

int tr_transport_atfork(void (*prepare)(void), void (*parent)(void),
                        void (*child)(void)) {
  (void)prepare;
  (void)parent;
  (void)child;
  return -ENOSYS;
}

/* ---- the full ring -------------------------------------------------- */

/* WaitOnAddress works only within a process, so a producer sleeps for the
 * bound and then looks at `tail` again (producer.c bounds each sleep to
 * 50 us .. 4 ms, doubling).  A high-resolution waitable timer makes the
 * short sleeps short; without one (before Windows 10 1803, or under some
 * Wine versions) Sleep rounds up to the timer tick. */
static _Thread_local HANDLE t_timer;

void tr_transport_ring_wait(_Atomic uint32_t *wake, uint32_t seen,
                            uint64_t ns) {
  if (atomic_load_explicit(wake, memory_order_relaxed) != seen) return;
  if (t_timer == NULL) {
    t_timer = CreateWaitableTimerExW(
        NULL, NULL, CREATE_WAITABLE_TIMER_HIGH_RESOLUTION, TIMER_ALL_ACCESS);
    if (t_timer == NULL) t_timer = INVALID_HANDLE_VALUE;
  }
  LARGE_INTEGER due;
  due.QuadPart = -(LONGLONG)((ns + 99) / 100); /* relative, 100 ns units */
  if (t_timer != INVALID_HANDLE_VALUE &&
      SetWaitableTimer(t_timer, &due, 0, NULL, NULL, FALSE)) {
    WaitForSingleObject(t_timer, INFINITE);
    return;
  }
  Sleep((DWORD)((ns + 999999) / 1000000));
}

/* ---- the process ---------------------------------------------------- */

/* The daemon reads the same clock (winpthreads' CLOCK_MONOTONIC, from the
 * performance counter), so HELLO's now_ns is on its timeline. */
uint64_t tr_transport_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t tr_transport_tid(void) { return (uint32_t)GetCurrentThreadId(); }

uint64_t tr_transport_ppid(void) {
  DWORD me = GetCurrentProcessId();
  uint64_t ppid = 0;
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return 0;
  PROCESSENTRY32 pe;
  pe.dwSize = sizeof(pe);
  for (BOOL ok = Process32First(snap, &pe); ok; ok = Process32Next(snap, &pe))
    if (pe.th32ProcessID == me) {
      ppid = pe.th32ParentProcessID;
      break;
    }
  CloseHandle(snap);
  return ppid;
}

const char *tr_transport_progname(void) {
  static char name[MAX_PATH];
  char path[MAX_PATH];
  DWORD n = GetModuleFileNameA(NULL, path, sizeof(path));
  if (n == 0 || n >= sizeof(path)) return "";
  const char *base = path;
  for (const char *c = path; *c; c++)
    if (*c == '\\' || *c == '/') base = c + 1;
  snprintf(name, sizeof(name), "%s", base);
  size_t len = strlen(name);
  if (len > 4 && _stricmp(name + len - 4, ".exe") == 0) name[len - 4] = '\0';
  return name;
}

int tr_transport_setenv(const char *name, const char *value) {
  return -_putenv_s(name, value);
}

/* The arguments as the C runtime of the program would split them, in
 * UTF-8. */
size_t tr_transport_cmdline(char *buf, size_t size) {
  int argc = 0;
  LPWSTR *argv = CommandLineToArgvW(GetCommandLineW(), &argc);
  if (argv == NULL) return 0;
  size_t len = 0;
  for (int i = 0; i < argc && len < size; i++) {
    int n = WideCharToMultiByte(CP_UTF8, 0, argv[i], -1, buf + len,
                                (int)(size - len), NULL, NULL);
    if (n <= 0) break; /* no room for the whole argument and its NUL */
    len += (size_t)n;
  }
  LocalFree(argv);
  return len;
}

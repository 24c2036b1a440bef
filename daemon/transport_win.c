/* transport_win.c: transport.h on Windows: the named-pipe listener and its
 * security descriptor, connections read through libuv's uv_pipe_t into a
 * queue, handles pulled out of the client (DuplicateHandle) as HANDLES
 * frames announce them, pagefile-backed sections mapped, and the output
 * file and process facts from Win32.  PROTOCOL.md section 9 and
 * docs/windows-transport.md say why each choice. */
#define _CRT_RAND_S
#define WIN32_LEAN_AND_MEAN
/* windows.h first: sddl.h, tlhelp32.h and the other Win32 headers need
 * it, so it is kept out of clang-format's include sorting. */
// clang-format off
#include <windows.h>
// clang-format on
#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tlhelp32.h>

#include "common/win32.h"
#include "proto/frame.h"
#include "proto/traced_proto.h"
#include "transport.h"

#define HDR_SIZE sizeof(tr_frame_hdr)
/* Queued replies beyond this make tr_dtransport_send answer -EAGAIN, so
 * peer.c's bound on what a client leaves unread holds here too. */
#define WRITE_QUEUE_MAX (64u * 1024u)
#define READ_CHUNK (64u * 1024u)

/* ---- connections ----------------------------------------------------
 * Everything here runs on the loop's thread. */

typedef struct tr_wconn {
  struct tr_wconn *next;
  int conn;      /* the pipe instance's HANDLE value */
  HANDLE proc;   /* the client, held from accept: its pid cannot be
                    reused while we hold it; PROCESS_DUP_HANDLE */
  bool uv_owned; /* uv_pipe_open took the HANDLE: libuv closes it */
  tr_watch *w;   /* NULL once the watcher is closed */
  uint8_t *q;    /* bytes read and not yet returned: q[q_off, q_len) */
  size_t q_off, q_len, q_cap;
  uint64_t to_next; /* bytes of the current frame before the next header */
  int ph[TR_FRAME_MAX_FDS]; /* handles pulled for the frame that follows */
  int nph;
  bool eof;
  int err; /* a negative errno once reading failed */
} tr_wconn;

static tr_wconn *g_conns;

static tr_wconn *find(int conn) {
  for (tr_wconn *c = g_conns; c != NULL; c = c->next)
    if (c->conn == conn) return c;
  return NULL;
}

/* The state of `conn`, made on first use (at accept). */
static tr_wconn *get(int conn) {
  tr_wconn *c = find(conn);
  if (c != NULL) return c;
  c = calloc(1, sizeof(*c));
  if (c == NULL) return NULL;
  c->conn = conn;
  ULONG pid = 0;
  if (GetNamedPipeClientProcessId(tr_win_handle(conn), &pid))
    c->proc = OpenProcess(
        PROCESS_DUP_HANDLE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
  c->next = g_conns;
  g_conns = c;
  return c;
}

static void forget(tr_wconn *c) {
  for (tr_wconn **p = &g_conns; *p != NULL; p = &(*p)->next)
    if (*p == c) {
      *p = c->next;
      break;
    }
  for (int i = 0; i < c->nph; i++) CloseHandle(tr_win_handle(c->ph[i]));
  if (c->proc != NULL) CloseHandle(c->proc);
  free(c->q);
  free(c);
}

int tr_dtransport_peer_cred(int conn, tr_peer_cred *out) {
  tr_wconn *c = get(conn);
  if (c == NULL) return -ENOMEM;
  if (c->proc == NULL) return -tr_win_errno(GetLastError());
  TOKEN_USER *tu = tr_win_token_user(c->proc);
  if (tu == NULL) return -EACCES;
  PSID sid = tu->User.Sid;
  UCHAR n = *GetSidSubAuthorityCount(sid);
  out->uid = n > 0 ? (uid_t)*GetSidSubAuthority(sid, n - 1) : 0;
  out->gid = 0;
  out->pid = (pid_t)GetProcessId(c->proc);
  free(tu);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tr_watch *w = h->data;
  tr_wconn *c = w->conn;
  buf->base = NULL;
  buf->len = 0;
  if (c == NULL) return;
  if (c->q_off > 0 && c->q_off == c->q_len) c->q_off = c->q_len = 0;
  if (c->q_cap - c->q_len < READ_CHUNK) {
    if (c->q_off > 0) {
      memmove(c->q, c->q + c->q_off, c->q_len - c->q_off);
      c->q_len -= c->q_off;
      c->q_off = 0;
    }
    if (c->q_cap - c->q_len < READ_CHUNK) {
      uint8_t *q = realloc(c->q, c->q_len + READ_CHUNK);
      if (q == NULL) return; /* libuv reports UV_ENOBUFS */
      c->q = q;
      c->q_cap = c->q_len + READ_CHUNK;
    }
  }
  buf->base = (char *)c->q + c->q_len;
  buf->len = (ULONG)(c->q_cap - c->q_len);
}

static bool has_news(const tr_wconn *c) {
  return c->q_len > c->q_off || c->eof || c->err != 0;
}

/* Calls the owner back while it takes what is queued, as a level-
 * triggered poll would keep calling; stops when it takes nothing. */
static void notify_readable(tr_watch *w) {
  for (int round = 0; round < 64; round++) {
    tr_wconn *c = w->conn;
    if (c == NULL || !(w->events & UV_READABLE) || !has_news(c)) return;
    size_t before = c->q_off;
    bool ended = c->eof || c->err != 0;
    w->cb(w, 0, UV_READABLE);
    c = w->conn;
    if (c == NULL || ended || c->q_off == before) return;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  tr_watch *w = s->data;
  tr_wconn *c = w->conn;
  if (c == NULL) return;
  if (nread > 0) {
    c->q_len += (size_t)nread;
  } else if (nread == UV_EOF) {
    c->eof = true;
    uv_read_stop(s);
  } else if (nread < 0) {
    c->err = nread == UV_ECONNRESET ? -ECONNRESET : -EIO;
    uv_read_stop(s);
  }
  notify_readable(w);
}

int tr_dtransport_watch_init(uv_loop_t *loop, tr_watch *w, int conn) {
  void *data = w->data;
  memset(w, 0, sizeof(*w));
  w->data = data;
  tr_wconn *c = get(conn);
  if (c == NULL) return -ENOMEM;
  int rc = uv_pipe_init(loop, &w->pipe, 0);
  if (rc < 0) return rc;
  int fd = _open_osfhandle((intptr_t)tr_win_handle(conn), 0);
  if (fd < 0 || (rc = uv_pipe_open(&w->pipe, fd)) < 0) {
    /* The handle stays the caller's; the CRT descriptor is dropped
     * without closing it (it is not ours to close twice). */
    uv_close((uv_handle_t *)&w->pipe, NULL);
    return fd < 0 ? -EBADF : rc;
  }
  c->uv_owned = true;
  c->w = w;
  w->conn = c;
  w->pipe.data = w;
  return 0;
}

void tr_dtransport_watch(tr_watch *w, int events, tr_watch_cb cb) {
  tr_wconn *c = w->conn;
  w->cb = cb;
  bool was = (w->events & UV_READABLE) != 0, now = (events & UV_READABLE) != 0;
  w->events = events;
  if (c == NULL) return;
  if (now && !was && !c->eof && c->err == 0)
    uv_read_start((uv_stream_t *)&w->pipe, on_alloc, on_read);
  else if (!now && was)
    uv_read_stop((uv_stream_t *)&w->pipe);
}

void tr_dtransport_watch_close(tr_watch *w, uv_close_cb cb) {
  if (w->conn != NULL) w->conn->w = NULL;
  w->conn = NULL;
  w->events = 0;
  w->pipe.data = w->data;
  uv_close((uv_handle_t *)&w->pipe, cb);
}

/* Reads a little-endian field of a frame header. */
static uint32_t le(const uint8_t *p, int n) {
  uint32_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* Copies the handles a HANDLES frame names out of the client (never
 * closing them there: the client closes its own, once it has the
 * receipt) and sends the receipt, the u32 count copied.  The client waits
 * for it before it goes on, so it is alive and its handles exist while
 * they are copied (a process that exited has no handles left to copy).  A
 * value the client does not hold is skipped: the frame that wanted it
 * finds fewer handles and is refused. */
static void pull_handles(tr_wconn *c, const uint8_t *p, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) v = (v << 8) | p[8 * i + b];
    HANDLE mine = NULL;
    if (c->proc != NULL &&
        DuplicateHandle(c->proc, (HANDLE)(uintptr_t)v, GetCurrentProcess(),
                        &mine, 0, FALSE, DUPLICATE_SAME_ACCESS))
      c->ph[c->nph++] = tr_win_int(mine);
  }
  uint8_t receipt[HDR_SIZE + 4];
  tr_frame_hdr_encode(receipt, TR_MSG_HANDLES, 4);
  for (int b = 0; b < 4; b++)
    receipt[HDR_SIZE + b] = (uint8_t)((uint32_t)c->nph >> (8 * b));
  /* A client that left a full write queue unread is beyond help. */
  if (tr_dtransport_send(c->conn, receipt, sizeof(receipt)) !=
      (int64_t)sizeof(receipt))
    c->err = -EPIPE;
}

/* Returns the queued bytes up to the end of the current frame, so that
 * handles are returned with the read that holds their frame's first byte,
 * as recvmsg returns SCM_RIGHTS.  HANDLES frames are consumed here and
 * never reach the caller. */
int64_t tr_dtransport_recv(int conn, void *buf, size_t cap, int *handles,
                           int *nh, int max_h) {
  *nh = 0;
  tr_wconn *c = find(conn);
  if (c == NULL) return -EBADF;
  while (c->to_next == 0) {
    size_t avail = c->q_len - c->q_off;
    if (avail == 0) break;
    if (avail < HDR_SIZE) {
      if (c->eof) break; /* the caller sees the stub, then the end */
      return -EAGAIN;
    }
    const uint8_t *h = c->q + c->q_off;
    uint32_t len = le(h, 4);
    if (le(h + 4, 2) != TR_MSG_HANDLES) {
      c->to_next = HDR_SIZE + (uint64_t)len;
      break;
    }
    if (len == 0 || len % 8 != 0 || len / 8 > TR_FRAME_MAX_FDS || c->nph > 0 ||
        le(h + 6, 2) != 0)
      return c->err = -EPROTO;
    if (avail < HDR_SIZE + len) return c->eof ? (c->err = -EPROTO) : -EAGAIN;
    pull_handles(c, h + HDR_SIZE, len / 8);
    c->q_off += HDR_SIZE + len;
  }
  size_t avail = c->q_len - c->q_off;
  if (avail == 0) {
    if (c->err != 0) return c->err;
    return c->eof ? 0 : -EAGAIN;
  }
  size_t n = avail < cap ? avail : cap;
  if (c->to_next > 0 && n > c->to_next) n = (size_t)c->to_next;
  memcpy(buf, c->q + c->q_off, n);
  if (c->to_next >= n) c->to_next -= n;
  bool frame_start = c->nph > 0;
  c->q_off += n;
  if (frame_start) {
    if (c->nph > max_h) {
      for (int i = 0; i < c->nph; i++) CloseHandle(tr_win_handle(c->ph[i]));
      c->nph = 0;
      return -EBADMSG;
    }
    memcpy(handles, c->ph, (size_t)c->nph * sizeof(int));
    *nh = c->nph;
    c->nph = 0;
  }
  return (int64_t)n;
}

typedef struct wreq {
  uv_write_t req;
  char data[];
} wreq;

static void on_written(uv_write_t *req, int status) {
  uv_stream_t *s = req->handle;
  free(req);
  if (status == UV_ECANCELED) return; /* being closed: w may be gone */
  tr_watch *w = s->data;
  if (w == NULL || w->conn == NULL) return;
  if (status < 0) w->conn->err = -EPIPE;
  if ((w->events & UV_WRITABLE) && uv_stream_get_write_queue_size(s) == 0)
    w->cb(w, 0, UV_WRITABLE);
}

/* Before a connection is watched (a refusal at accept) the pipe is written
 * directly, waiting at most 100 ms. */
static int64_t write_raw(HANDLE h, const void *buf, size_t len) {
  OVERLAPPED ov;
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
  if (ov.hEvent == NULL) return -ENOMEM;
  DWORD n = 0;
  BOOL ok = WriteFile(h, buf, (DWORD)len, &n, &ov);
  if (!ok && GetLastError() == ERROR_IO_PENDING) {
    if (WaitForSingleObject(ov.hEvent, 100) != WAIT_OBJECT_0)
      CancelIoEx(h, &ov);
    ok = GetOverlappedResult(h, &ov, &n, TRUE);
  }
  DWORD err = ok ? 0 : GetLastError();
  CloseHandle(ov.hEvent);
  return ok ? (int64_t)n : -tr_win_errno(err);
}

int64_t tr_dtransport_send(int conn, const void *buf, size_t len) {
  tr_wconn *c = find(conn);
  if (c == NULL || c->w == NULL)
    return write_raw(tr_win_handle(conn), buf, len);
  if (c->err == -EPIPE) return -EPIPE;
  uv_stream_t *s = (uv_stream_t *)&c->w->pipe;
  if (uv_stream_get_write_queue_size(s) > WRITE_QUEUE_MAX) return -EAGAIN;
  wreq *r = malloc(sizeof(*r) + len);
  if (r == NULL) return -ENOMEM;
  memcpy(r->data, buf, len);
  uv_buf_t b = uv_buf_init(r->data, (unsigned int)len);
  if (uv_write(&r->req, s, &b, 1, on_written) < 0) {
    free(r);
    return -EPIPE;
  }
  return (int64_t)len;
}

void tr_dtransport_close(int h) {
  if (h == -1) return;
  tr_wconn *c = find(h);
  bool uv_owned = c != NULL && c->uv_owned;
  if (c != NULL) forget(c);
  if (!uv_owned) CloseHandle(tr_win_handle(h));
}

/* ---- the listener ---------------------------------------------------- */

struct tr_dtransport_listener {
  uv_async_t async; /* first: the close callback frees the listener */
  char name[256];
  SECURITY_ATTRIBUTES sa;
  PSECURITY_DESCRIPTOR sd;
  HANDLE first; /* the instance made by tr_dtransport_listen_pipe */
  HANDLE stop;  /* set: the thread ends */
  HANDLE thread;
  CRITICAL_SECTION lock; /* guards ready[] */
  HANDLE ready[64];      /* connected instances for the loop to take */
  int nready;
  tr_dtransport_accept_fn fn;
  void *arg;
};

/* The descriptor of every instance: owner and full access the daemon's
 * user, full access SYSTEM, and on the system pipe connect-only access
 * for authenticated users: read, write and attributes, but not
 * FILE_APPEND_DATA, which on a pipe is FILE_CREATE_PIPE_INSTANCE (with it
 * a user could make instances of the daemon's pipe and serve clients). */
static int make_sd(bool system, PSECURITY_DESCRIPTOR *out) {
  TOKEN_USER *me = tr_win_token_user(GetCurrentProcess());
  if (me == NULL) return -EACCES;
  char *sid = NULL;
  if (!ConvertSidToStringSidA(me->User.Sid, &sid)) {
    free(me);
    return -EINVAL;
  }
  char sddl[512];
  snprintf(sddl, sizeof(sddl), "O:%sD:P(A;;GA;;;%s)(A;;GA;;;SY)%s", sid, sid,
           system ? "(A;;0x12018b;;;AU)" : "");
  LocalFree(sid);
  free(me);
  if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(
          sddl, SDDL_REVISION_1, out, NULL))
    return -tr_win_errno(GetLastError());
  return 0;
}

static HANDLE new_instance(tr_dtransport_listener *l, bool first) {
  return CreateNamedPipeA(l->name,
                          PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                              (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                          PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
                              PIPE_REJECT_REMOTE_CLIENTS,
                          PIPE_UNLIMITED_INSTANCES, 65536, 65536, 0, &l->sa);
}

static void on_ready(uv_async_t *a) {
  tr_dtransport_listener *l = a->data;
  for (;;) {
    EnterCriticalSection(&l->lock);
    HANDLE h = l->nready > 0 ? l->ready[--l->nready] : NULL;
    LeaveCriticalSection(&l->lock);
    if (h == NULL) return;
    l->fn(l->arg, tr_win_int(h));
  }
}

/* Waits for a client on one instance at a time; a connected instance goes
 * to the loop and a fresh one takes its place. */
static DWORD WINAPI accept_thread(LPVOID arg) {
  tr_dtransport_listener *l = arg;
  HANDLE h = l->first;
  l->first = NULL;
  OVERLAPPED ov;
  memset(&ov, 0, sizeof(ov));
  ov.hEvent = CreateEventA(NULL, TRUE, FALSE, NULL);
  while (h != INVALID_HANDLE_VALUE && ov.hEvent != NULL) {
    ResetEvent(ov.hEvent);
    bool connected = ConnectNamedPipe(h, &ov) != 0;
    DWORD err = connected ? 0 : GetLastError();
    if (err == ERROR_PIPE_CONNECTED) {
      connected = true;
    } else if (err == ERROR_IO_PENDING) {
      HANDLE wait[2] = {ov.hEvent, l->stop};
      if (WaitForMultipleObjects(2, wait, FALSE, INFINITE) != WAIT_OBJECT_0) {
        CancelIoEx(h, &ov);
        DWORD n;
        GetOverlappedResult(h, &ov, &n, TRUE);
        break;
      }
      DWORD n;
      connected = GetOverlappedResult(h, &ov, &n, FALSE) != 0;
    }
    if (connected) {
      EnterCriticalSection(&l->lock);
      bool room = l->nready < (int)(sizeof(l->ready) / sizeof(l->ready[0]));
      if (room) l->ready[l->nready++] = h;
      LeaveCriticalSection(&l->lock);
      if (room)
        uv_async_send(&l->async);
      else
        CloseHandle(h); /* the loop is far behind: refuse this one */
    } else {
      CloseHandle(h); /* the client left before we saw it */
    }
    h = new_instance(l, false);
  }
  if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
  if (ov.hEvent != NULL) CloseHandle(ov.hEvent);
  return 0;
}

int tr_dtransport_listen_pipe(uv_loop_t *loop, const char *name, bool system,
                              tr_dtransport_accept_fn fn, void *arg,
                              tr_dtransport_listener **out) {
  tr_dtransport_listener *l = calloc(1, sizeof(*l));
  if (l == NULL) return -ENOMEM;
  if (snprintf(l->name, sizeof(l->name), "%s", name) >= (int)sizeof(l->name)) {
    free(l);
    return -ENAMETOOLONG;
  }
  int rc = make_sd(system, &l->sd);
  if (rc < 0) {
    free(l);
    return rc;
  }
  l->sa.nLength = sizeof(l->sa);
  l->sa.lpSecurityDescriptor = l->sd;
  l->sa.bInheritHandle = FALSE;
  l->fn = fn;
  l->arg = arg;
  l->first = new_instance(l, true);
  if (l->first == INVALID_HANDLE_VALUE) {
    DWORD err = GetLastError();
    LocalFree(l->sd);
    free(l);
    /* FIRST_PIPE_INSTANCE fails with access denied when the name exists:
     * another daemon, or someone squatting on it. */
    return err == ERROR_ACCESS_DENIED ? -EADDRINUSE : -tr_win_errno(err);
  }
  InitializeCriticalSection(&l->lock);
  l->stop = CreateEventA(NULL, TRUE, FALSE, NULL);
  rc = uv_async_init(loop, &l->async, on_ready);
  if (rc < 0 || l->stop == NULL) goto err;
  l->async.data = l;
  l->thread = CreateThread(NULL, 0, accept_thread, l, 0, NULL);
  if (l->thread == NULL) {
    rc = -tr_win_errno(GetLastError());
    uv_close((uv_handle_t *)&l->async, NULL);
    goto err;
  }
  *out = l;
  return 0;
err:
  if (l->stop != NULL) CloseHandle(l->stop);
  CloseHandle(l->first);
  DeleteCriticalSection(&l->lock);
  LocalFree(l->sd);
  free(l);
  return rc < 0 ? rc : -ENOMEM;
}

static void on_listener_closed(uv_handle_t *h) {
  tr_dtransport_listener *l = h->data;
  DeleteCriticalSection(&l->lock);
  LocalFree(l->sd);
  free(l);
}

void tr_dtransport_listen_close(tr_dtransport_listener *l) {
  SetEvent(l->stop);
  WaitForSingleObject(l->thread, INFINITE);
  CloseHandle(l->thread);
  CloseHandle(l->stop);
  for (int i = 0; i < l->nready; i++) CloseHandle(l->ready[i]);
  l->nready = 0;
  uv_close((uv_handle_t *)&l->async, on_listener_closed);
}

/* ---- shared memory --------------------------------------------------- */

/* A section's size is fixed when it is made (a pagefile-backed one cannot
 * grow or shrink; a file-backed one's file cannot be cut below a mapped
 * view), so no check stands in for Linux's seals.  The whole section is
 * mapped and its size read back: the view of a larger section than
 * announced is refused, as a wrong-sized memfd is. */
int tr_dtransport_shm_map(int h, size_t size, void **map, uint64_t id[2]) {
  static uint64_t serial;
  void *m =
      MapViewOfFile(tr_win_handle(h), FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
  if (m == NULL) return -EINVAL; /* not a section, or not writable */
  MEMORY_BASIC_INFORMATION mbi;
  SYSTEM_INFO si;
  GetSystemInfo(&si);
  size_t page = si.dwPageSize, want = (size + page - 1) / page * page;
  if (VirtualQuery(m, &mbi, sizeof(mbi)) != sizeof(mbi) ||
      mbi.RegionSize != want) {
    UnmapViewOfFile(m);
    return -EINVAL;
  }
  *map = m;
  /* No inode: each mapping is its own (the loop thread maps). */
  id[0] = 1;
  id[1] = ++serial;
  return 0;
}

void tr_dtransport_shm_unmap(void *map, size_t size) {
  (void)size;
  UnmapViewOfFile(map);
}

/* The section was committed in full by its creator (SEC_COMMIT, charged
 * to the client's commit), so reading a page it never wrote costs the
 * daemon a zero page within a size it accepted, not unbounded memory. */
int tr_dtransport_pages_exist(const void *addr, size_t len) {
  (void)addr;
  (void)len;
  return 0;
}

/* Producers on Windows sleep for a bound and look again (WaitOnAddress
 * does not reach across processes): there is no one to wake. */
void tr_dtransport_ring_wake(_Atomic uint32_t *wake) { (void)wake; }

/* ---- the output file ------------------------------------------------- */

/* Binary: the writers' bytes go to the file unchanged. */
int tr_dtransport_output_fd(int h) {
  int fd = _open_osfhandle((intptr_t)tr_win_handle(h), _O_BINARY | _O_WRONLY);
  if (fd < 0) {
    CloseHandle(tr_win_handle(h));
    return -EBADF;
  }
  return fd;
}

int tr_dtransport_output_kind(int fd) {
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  if (h == INVALID_HANDLE_VALUE) return -EBADF;
  DWORD mode, type = GetFileType(h);
  if (type == FILE_TYPE_DISK) return 1;
  /* A console (which ^S can stop) is a character device too. */
  if (type == FILE_TYPE_CHAR && !GetConsoleMode(h, &mode)) return 0;
  return type == FILE_TYPE_UNKNOWN ? -EBADF : -EINVAL;
}

int tr_dtransport_output_truncate(int fd) {
  HANDLE h = (HANDLE)_get_osfhandle(fd);
  LARGE_INTEGER zero;
  zero.QuadPart = 0;
  if (h == INVALID_HANDLE_VALUE) return -EBADF;
  if (!SetFilePointerEx(h, zero, NULL, FILE_BEGIN) || !SetEndOfFile(h))
    return -tr_win_errno(GetLastError());
  return 0;
}

/* ---- processes ------------------------------------------------------- */

int tr_dtransport_random(void *buf, size_t len) {
  uint8_t *p = buf;
  for (size_t i = 0; i < len; i += 4) {
    unsigned int r;
    if (rand_s(&r) != 0) return -EIO;
    for (size_t k = 0; k < 4 && i + k < len; k++)
      p[i + k] = (uint8_t)(r >> 8 * k);
  }
  return 0;
}

/* Windows keeps the creator's pid, which is not a live link: the creator
 * may have exited and its pid been reused.  Good enough for the one use,
 * "is this a descendant of that process", which a wrong answer only makes
 * join or miss a session of the same user. */
pid_t tr_dtransport_parent_of(pid_t pid) {
  pid_t ppid = -1;
  HANDLE snap = CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0);
  if (snap == INVALID_HANDLE_VALUE) return -1;
  PROCESSENTRY32 pe;
  pe.dwSize = sizeof(pe);
  for (BOOL ok = Process32First(snap, &pe); ok; ok = Process32Next(snap, &pe))
    if ((pid_t)pe.th32ProcessID == pid) {
      ppid = (pid_t)pe.th32ParentProcessID;
      break;
    }
  CloseHandle(snap);
  return ppid;
}

unsigned tr_dtransport_ncpus(void) {
  DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
  return (unsigned)n;
}

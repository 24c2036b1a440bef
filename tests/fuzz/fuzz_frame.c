/* fuzz_frame.c: libFuzzer harness for everything the daemon does with the
 * bytes one connection sends: frame reassembly, the msgpack bounds check,
 * msgpack unpacking, and the protocol handlers with their replies.
 *
 * The input is the byte stream a client writes.  Two passes:
 *
 * 1. Reassembly like peer.c's, without a socket: the input arrives in
 *    pieces of varying sizes and tr_frame_parse() cuts frames out of the
 *    growing buffer.  Every complete payload goes through
 *    tr_mpcheck_size(); when it accepts an object, msgpack-c must decode
 *    exactly that many bytes (a differential check: the bounds check is
 *    what keeps msgpack-c from allocating on a peer's word), and every
 *    message's unpacker (proto/msg.h) reads the map.
 *
 * 2. The real server: the daemon's objects are linked in and reached
 *    through its private header (daemon/server_int.h), a socketpair stands
 *    for the client's connection, and tr_admission_accept() /
 *    tr_conn_on_poll() read it exactly as the daemon does.
 *    The stream is sent one frame per sendmsg; HELLO, RING_ADD and
 *    SESSION_CREATE carry a real descriptor (a valid sealed arena memfd,
 *    a valid ring memfd with records, /dev/null), so the fuzzer reaches
 *    the handlers' success paths: sessions, joins (two sessions with known
 *    tokens exist, one owned by another uid), rings drained into an
 *    output.  Every reply the daemon sends must be a well-formed frame of
 *    a reply type whose payload is a msgpack map.  At the end of the
 *    input the client hangs up and the daemon's own teardown runs.
 *
 * Crashes, sanitizer reports and broken replies abort. */
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "daemon/mpcheck.h"
#include "daemon/server_int.h"
#include "proto/frame.h"
#include "proto/mp.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"

#define FUZZ_ARENA_DATA TR_ARENA_MIN_SIZE
#define FUZZ_RING_SLOTS 1024u
#define FUZZ_TID 4242u
/* Tokens of the two sessions every input can join (make_seeds.py). */
#define TOKEN_MINE "00112233445566778899aabbccddeeff"
#define TOKEN_OTHER "ffeeddccbbaa99887766554433221100"

static uv_loop_t g_loop;
static tr_server *g_srv;
static int g_arena_fd, g_ring_fd, g_null_fd;
static tr_arena_hdr *g_arena;
static tr_ring_hdr *g_ring;

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "fuzz_frame: check failed: %s (%s:%d)\n", #cond, \
              __FILE__, __LINE__);                                     \
      abort();                                                         \
    }                                                                  \
  } while (0)

/* ---- shared memory the descriptors point to ----------------------------- */

static int sealed_memfd(const char *name, size_t size, void **map) {
  int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK(fd >= 0);
  CHECK(ftruncate(fd, (off_t)size) == 0);
  CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0);
  *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK(*map != MAP_FAILED);
  return fd;
}

static uint32_t intern(const char *s) {
  uint8_t *data = (uint8_t *)g_arena + TR_SHM_HEADER_SIZE;
  uint32_t at = atomic_load(&g_arena->committed);
  uint32_t n = (uint32_t)strlen(s);
  memcpy(data + at, &n, 4);
  memcpy(data + at + 4, s, n);
  atomic_store(&g_arena->committed, at + 4 + ((n + 3) & ~3u));
  return at;
}

static void put(tr_record *slots, uint64_t *head, uint64_t ts, uint32_t id,
                uint16_t kind, uint16_t extra) {
  tr_record *r = &slots[*head & (FUZZ_RING_SLOTS - 1)];
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = extra;
  (*head)++;
}

/* The ring and arena as a fresh producer would hand them over; the daemon
 * writes tail, bell and the state word, so they are reset per input. */
static void reset_shm(void) {
  atomic_store(&g_arena->state, 0);
  atomic_store(&g_ring->tail, 0);
  atomic_store(&g_ring->bell, 0);
  atomic_store(&g_ring->closed, 0);
}

static void make_shm(void) {
  void *m;
  g_arena_fd =
      sealed_memfd("fuzz-arena", TR_SHM_HEADER_SIZE + FUZZ_ARENA_DATA, &m);
  g_arena = m;
  g_arena->magic = TR_ARENA_MAGIC;
  g_arena->version = TR_PROTO_VERSION;
  g_arena->header_size = TR_SHM_HEADER_SIZE;
  g_arena->capacity = FUZZ_ARENA_DATA;
  intern("<unknown>");
  uint32_t f = intern("f (fuzz.py:1)"), g = intern("g (fuzz.py:5)");
  uint32_t len = intern("builtins.len"), tick = intern("tick");
  uint32_t depth = intern("depth"), worker = intern("worker \"1\"\n\xff");

  g_ring_fd = sealed_memfd(
      "fuzz-ring", TR_SHM_HEADER_SIZE + FUZZ_RING_SLOTS * sizeof(tr_record),
      &m);
  g_ring = m;
  g_ring->magic = TR_RING_MAGIC;
  g_ring->version = TR_PROTO_VERSION;
  g_ring->header_size = TR_SHM_HEADER_SIZE;
  g_ring->capacity = FUZZ_RING_SLOTS;
  g_ring->tid = FUZZ_TID;
  tr_record *slots = (tr_record *)((uint8_t *)m + TR_SHM_HEADER_SIZE);
  uint64_t h = 0, ts = (uint64_t)1 << 62; /* after any session's start */
  put(slots, &h, ts++, worker, TR_REC_THREAD_NAME, 0);
  put(slots, &h, ts++, g, TR_REC_PY_CALL, 0);
  put(slots, &h, ts++, f, TR_REC_PY_CALL, 0);
  put(slots, &h, ts++, len, TR_REC_C_CALL, 0);
  put(slots, &h, ts++, len, TR_REC_C_RETURN, 0);
  put(slots, &h, ts++, f, TR_REC_PY_RETURN, 0);
  put(slots, &h, ts++, tick, TR_REC_INSTANT, 0);
  put(slots, &h, ts++, depth, TR_REC_COUNTER, 1);
  double v = 2.5;
  memcpy(&slots[h & (FUZZ_RING_SLOTS - 1)], &v, sizeof(v));
  h++;
  put(slots, &h, ts++, 3, TR_REC_LOST, 0);
  put(slots, &h, ts++, f, TR_REC_PY_CALL, 0); /* left open */
  atomic_store(&g_ring->head, h);
  reset_shm();
  g_null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
  CHECK(g_null_fd >= 0);
}

/* ---- pass 1: reassembly, bounds check, unpacking, field getters --------- */

/* Both ends of an unpacked string are readable. */
static void touch(tr_msg_str s) {
  if (s.ptr == NULL || s.len == 0) return;
  volatile char c = s.ptr[0];
  c = s.ptr[s.len - 1];
  (void)c;
}

/* A refusal has a code and says why. */
static void refused(int rc, const tr_msg_err *err) {
  if (rc == 0) return;
  CHECK(rc < 0 && err->text[0] != '\0');
  CHECK(strlen(err->text) < sizeof(err->text));
}

/* Every message's unpacker, on whatever map arrived. */
static void read_fields(const msgpack_object *m) {
  tr_msg_err err;
  char buf[64];
  tr_msg_hello h;
  int rc = tr_msg_hello_unpack(m, &h, &err);
  refused(rc, &err);
  if (rc == 0) {
    CHECK(h.pid > 0 && h.pid <= INT32_MAX);
    touch(h.name);
    touch(h.argv0);
  }
  tr_msg_session_create c;
  refused(rc = tr_msg_session_create_unpack(m, &c, &err), &err);
  if (rc == 0) {
    touch(c.path);
    touch(c.format);
  }
  tr_msg_session_join j;
  refused(rc = tr_msg_session_join_unpack(m, &j, &err), &err);
  if (rc == 0) touch(j.token);
  tr_msg_ring_add r;
  refused(rc = tr_msg_ring_add_unpack(m, &r, &err), &err);
  if (rc == 0) touch(r.name);
  tr_msg_process_info pi;
  refused(rc = tr_msg_process_info_unpack(m, &pi, &err), &err);
  if (rc == 0) {
    touch(pi.name);
    if (pi.has_child) {
      CHECK(pi.child.pid > 0 && pi.child.pid <= INT32_MAX);
      CHECK(pi.child.path.len <= TR_CHILD_PATH_MAX);
      CHECK(pi.child.argc <= TR_CHILD_ARGC_MAX);
      touch(pi.child.path);
      for (uint32_t i = 0; i < pi.child.argc; i++)
        touch(tr_msg_child_arg(&pi.child, i));
    }
  }
  tr_msg_welcome w;
  CHECK(tr_msg_welcome_unpack(m, &w, &err) == 0);
  tr_msg_session_created sc;
  if (tr_msg_session_created_unpack(m, &sc, &err) == 0)
    CHECK(strlen(sc.token) == TR_TOKEN_HEX_LEN);
  tr_msg_session_joined sj;
  CHECK(tr_msg_session_joined_unpack(m, &sj, &err) == 0);
  tr_msg_session_summary sum;
  CHECK(tr_msg_session_summary_unpack(m, &sum, &err) == 0);
  touch(sum.path);
  tr_msg_error e;
  CHECK(tr_msg_error_unpack(m, &e, &err) == 0);
  if (tr_msg_strcpy(buf, sizeof(buf), e.message) == 0)
    CHECK(strlen(buf) < sizeof(buf));
  tr_msg_stopping st;
  CHECK(tr_msg_stopping_unpack(m, &st, &err) == 0);
  tr_msg_status_reply sr;
  CHECK(tr_msg_status_reply_unpack(m, &sr, &err) == 0);
  touch(sr.version);
  touch(sr.socket);
  touch(sr.mode);
  for (uint32_t i = 0; i < sr.nsessions; i++) {
    tr_msg_status_session ss;
    CHECK(tr_msg_status_session_unpack(&sr.sessions[i], &ss, &err) == 0);
    touch(ss.path);
  }
}

static void check_payload(const uint8_t *p, size_t n) {
  if (n == 0) return;
  long k = tr_mpcheck_size(p, n);
  CHECK(k == -1 || (k >= 1 && (size_t)k <= n));
  if (k < 0) return; /* never unpacked: msgpack-c would trust the counts */
  msgpack_unpacked up;
  msgpack_unpacked_init(&up);
  size_t off = 0;
  msgpack_unpack_return rc =
      msgpack_unpack_next(&up, (const char *)p, (size_t)k, &off);
  /* What the bounds check accepts, msgpack-c decodes to the same end. */
  CHECK(rc == MSGPACK_UNPACK_SUCCESS);
  CHECK(off == (size_t)k);
  if (up.data.type == MSGPACK_OBJECT_MAP) read_fields(&up.data);
  msgpack_unpacked_destroy(&up);
}

static void reassemble(const uint8_t *data, size_t size) {
  static const size_t pieces[] = {1, 3, 8, 64, 700, 4096, 65536 + 8};
  uint8_t *buf = malloc(size > 0 ? size : 1);
  CHECK(buf != NULL);
  size_t have = 0, off = 0, fed = 0;
  for (size_t i = 0; fed < size; i++) {
    size_t take = pieces[(i + size) % (sizeof(pieces) / sizeof(pieces[0]))];
    if (take > size - fed) take = size - fed;
    memcpy(buf + have, data + fed, take);
    have += take;
    fed += take;
    for (;;) {
      tr_frame_hdr h;
      int64_t total = tr_frame_parse(buf + off, have - off, &h);
      if (total < 0) {
        CHECK(total == -EPROTO || total == -EMSGSIZE);
        CHECK(total == -EMSGSIZE ? h.len > TR_FRAME_MAX_PAYLOAD
                                 : (h.type == 0 || h.flags != 0));
        free(buf);
        return; /* the daemon ends the connection here */
      }
      if (total == 0) break;
      CHECK(h.type != 0 && h.flags == 0 && h.len <= TR_FRAME_MAX_PAYLOAD);
      CHECK((size_t)total == sizeof(tr_frame_hdr) + h.len);
      CHECK((size_t)total <= have - off);
      check_payload(buf + off + sizeof(tr_frame_hdr), h.len);
      off += (size_t)total;
    }
  }
  free(buf);
}

/* ---- pass 2: the server over a socketpair ------------------------------- */

static tr_proc g_owner_mine, g_owner_other;

static void start_sessions(void) {
  g_srv->sessions.last_epoch = 0;
  tr_proc_init(&g_owner_mine, 1, getuid(), getgid());
  tr_proc_init(&g_owner_other, 2, getuid() + 1, getgid());
  tr_session *s;
  int fd = dup(g_null_fd);
  /* Members joining "mine" write through the Perfetto writer; sessions
   * created by the input write JSON, gzip or Perfetto as they ask. */
  CHECK(tr_session_create(&g_srv->sessions, &g_owner_mine, fd,
                          TR_FORMAT_PERFETTO, "mine", 4, 64, &s) == 0);
  memcpy(s->token, TOKEN_MINE, TR_TOKEN_HEX_LEN);
  fd = dup(g_null_fd);
  CHECK(tr_session_create(&g_srv->sessions, &g_owner_other, fd, TR_FORMAT_JSON,
                          "other", 5, 64, &s) == 0);
  memcpy(s->token, TOKEN_OTHER, TR_TOKEN_HEX_LEN);
}

/* Runs the loop until cond() holds: the workers' completions arrive
 * through the async handle. */
static void run_until(bool (*cond)(void)) {
  while (!cond()) uv_run(&g_loop, UV_RUN_ONCE);
}

static bool no_sessions(void) { return g_srv->sessions.count == 0; }

static void end_sessions(void) {
  tr_session *next;
  for (tr_session *s = g_srv->sessions.head; s != NULL; s = next) {
    next = s->next;
    tr_dispatch_finish_session(g_srv, s, false);
  }
  run_until(no_sessions);
}

static uint32_t g_expect_clients;
static bool clients_back(void) { return g_srv->nclients == g_expect_clients; }

/* Reads what the daemon sent back; every reply must be a complete,
 * well-formed frame of a reply type carrying a msgpack map. */
static void check_replies(int fd, uint8_t **acc, size_t *len, bool final) {
  for (;;) {
    uint8_t tmp[65536];
    ssize_t n = recv(fd, tmp, sizeof(tmp), MSG_DONTWAIT);
    if (n <= 0) break;
    uint8_t *b = realloc(*acc, *len + (size_t)n);
    CHECK(b != NULL);
    memcpy(b + *len, tmp, (size_t)n);
    *acc = b;
    *len += (size_t)n;
  }
  if (*acc == NULL) return; /* nothing came yet */
  size_t off = 0;
  for (;;) {
    tr_frame_hdr h;
    int64_t total = tr_frame_parse(*acc + off, *len - off, &h);
    CHECK(total >= 0);
    if (total == 0) break;
    CHECK(h.type == TR_MSG_WELCOME || h.type == TR_MSG_SESSION_CREATED ||
          h.type == TR_MSG_SESSION_JOINED || h.type == TR_MSG_SESSION_SUMMARY ||
          h.type == TR_MSG_STATUS_REPLY || h.type == TR_MSG_ERROR);
    const uint8_t *p = *acc + off + sizeof(tr_frame_hdr);
    CHECK(h.len > 0 && tr_mpcheck_size(p, h.len) == (long)h.len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t used = 0;
    CHECK(msgpack_unpack_next(&up, (const char *)p, h.len, &used) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(used == h.len && up.data.type == MSGPACK_OBJECT_MAP);
    if (h.type == TR_MSG_ERROR) {
      int64_t code;
      const char *msg;
      size_t n;
      CHECK(tr_mp_get_i64(&up.data, TR_KEY_CODE, &code) == 0 && code > 0);
      CHECK(tr_mp_get_str(&up.data, TR_KEY_MESSAGE, &msg, &n) == 0 && n > 0);
    }
    msgpack_unpacked_destroy(&up);
    off += (size_t)total;
  }
  memmove(*acc, *acc + off, *len - off);
  *len -= off;
  if (final) CHECK(*len == 0); /* no reply is cut short */
}

/* Lets the daemon read everything queued on its end. */
static void pump(client *cl, int daemon_fd) {
  for (int i = 0; i < 1000; i++) {
    int avail = 0;
    if (cl->conn.dead || cl->conn.closing) return;
    if (ioctl(daemon_fd, FIONREAD, &avail) < 0 || avail == 0) {
      /* Still poll once: EOF and descriptors-only reads count. */
      tr_conn_on_poll(&cl->conn.poll, 0, UV_READABLE);
      return;
    }
    tr_conn_on_poll(&cl->conn.poll, 0, UV_READABLE);
  }
}

static int fd_for(uint16_t type) {
  switch (type) {
    case TR_MSG_HELLO:
      return g_arena_fd;
    case TR_MSG_RING_ADD:
      return g_ring_fd;
    case TR_MSG_SESSION_CREATE:
      return g_null_fd;
    default:
      return -1;
  }
}

static bool send_piece(int fd, const uint8_t *p, size_t n, int pass_fd,
                       client *cl, int daemon_fd, uint8_t **acc,
                       size_t *acc_len) {
  bool fd_sent = false;
  while (n > 0) {
    struct iovec iov = {(void *)p, n};
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct msghdr mh;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (pass_fd >= 0 && !fd_sent) {
      memset(&ctl, 0, sizeof(ctl));
      mh.msg_control = ctl.buf;
      mh.msg_controllen = sizeof(ctl.buf);
      struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    ssize_t k = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (k < 0) {
      if (errno != EAGAIN) return false; /* the daemon hung up */
      pump(cl, daemon_fd);
      check_replies(fd, acc, acc_len, false);
      if (cl->conn.dead || cl->conn.closing) return false;
      continue;
    }
    fd_sent = true;
    p += k;
    n -= (size_t)k;
  }
  return true;
}

static void serve(const uint8_t *data, size_t size) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  reset_shm();
  start_sessions();
  uint32_t before = g_srv->nclients;
  tr_admission_accept(g_srv, sv[0]); /* the daemon owns sv[0] from here */
  CHECK(g_srv->nclients == before + 1);
  client *cl = g_srv->clients;
  uint8_t *acc = NULL;
  size_t acc_len = 0;

  /* One sendmsg per frame, so each descriptor rides with the first byte
   * of the frame that takes it.  After a bad header the rest goes raw. */
  size_t off = 0;
  while (off < size && !cl->conn.dead) {
    tr_frame_hdr h;
    int64_t total = tr_frame_parse(data + off, size - off, &h);
    size_t n = total > 0 ? (size_t)total : size - off;
    /* STOP from the daemon's own uid stops the whole server, which this
     * harness shares between inputs: it is tested end to end instead
     * (test_service.py), and left out here. */
    if (total > 0 && h.type == TR_MSG_STOP) {
      off += n;
      continue;
    }
    int pass = total > 0 ? fd_for(h.type) : -1;
    if (!send_piece(sv[1], data + off, n, pass, cl, sv[0], &acc, &acc_len))
      break;
    off += n;
    pump(cl, sv[0]);
    check_replies(sv[1], &acc, &acc_len, false);
  }
  /* The client hangs up; the daemon drains and tears the connection down
   * with its own code (teardown via tr_conn_reap, uv_close, tr_conn_on_closed).
   */
  shutdown(sv[1], SHUT_WR);
  pump(cl, sv[0]);
  if (!cl->conn.closing && !cl->conn.dead) {
    g_srv->depth++;
    tr_conn_end(cl, TR_LOG_DEBUG, "fuzz input ended");
    g_srv->depth--;
    tr_conn_reap(g_srv);
  }
  g_expect_clients = before;
  run_until(clients_back);
  check_replies(sv[1], &acc, &acc_len, true);
  free(acc);
  close(sv[1]);
  end_sessions();
  uv_run(&g_loop, UV_RUN_NOWAIT); /* close callbacks free the client */
}

/* ---- libFuzzer ----------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  /* Every refusal logs a line: quiet unless FUZZ_LOG is set (to see
   * what a seed makes the daemon do). */
  tr_log_set_level(getenv("FUZZ_LOG") ? TR_LOG_DEBUG : -1);
  signal(SIGPIPE, SIG_IGN);
  CHECK(uv_loop_init(&g_loop) == 0);
  g_srv = calloc(1, sizeof(*g_srv));
  CHECK(g_srv != NULL);
  g_srv->loop = &g_loop;
  tr_limits_default(&g_srv->limits, false);
  CHECK(uv_async_init(&g_loop, &g_srv->async, tr_server_on_async) == 0);
  g_srv->async.data = g_srv;
  CHECK(tr_workers_start(&g_srv->workers, 1, &g_srv->async, false) == 0);
  tr_sessions_init(&g_srv->sessions, &g_srv->workers, NULL, NULL);
  uv_timer_init(&g_loop, &g_srv->drain_timer);
  uv_timer_init(&g_loop, &g_srv->idle_timer);
  g_srv->drain_timer.data = g_srv;
  g_srv->idle_timer.data = g_srv;
  make_shm();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  reassemble(data, size);
  serve(data, size);
  return 0;
}

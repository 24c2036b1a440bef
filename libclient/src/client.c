/* client.c: the process's one connection to the daemon: handshake, the
 * shared string arena, per-thread rings, sessions, and fork() handling. */
#include "client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "options.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/sockpath.h"
#include "transport.h"

static struct {
  pthread_mutex_t io_lock;    /* socket traffic */
  pthread_mutex_t arena_lock; /* arena appends */
  int fd;                     /* daemon socket, -1 when not connected */
  pid_t pid;                  /* the process that owns fd and the arena */
  char socket_path[108];
  char token[TR_TOKEN_HEX_LEN + 1];
  tr_arena_hdr *arena; /* header page; data follows */
  int arena_fd;        /* kept to hand the same arena to a reconnect */
  uint32_t arena_cap;
  /* Set in a forked child until it reattaches: the parent's arena data
   * (still the shared mapping) and how much of it was committed at fork. */
  bool forked;
  uint32_t fork_committed;
  bool atfork_registered;
  bool warned;
  char hello_name[64];       /* HELLO's display name ("": the program's) */
  char why[TR_CONN_WHY_MAX]; /* why the last connect was refused, or "" */
  char child_name[64];       /* hello_name of children forked from now on */
} g = {
    .io_lock = PTHREAD_MUTEX_INITIALIZER,
    .arena_lock = PTHREAD_MUTEX_INITIALIZER,
    .fd = -1,
    .arena_fd = -1,
};

/* Payload slots per record the daemon reads (WELCOME `max_extra`). */
static uint32_t g_max_extra = TR_RECORD_MAX_EXTRA_V1;

bool tr_client_may_use_tsc(void) {
#if defined(__x86_64__) || defined(_WIN32)
  const char *c = getenv(TR_ENV_CLOCK);
  return c == NULL || strcmp(c, "monotonic") != 0;
#else
  return false;
#endif
}

/* What producers read while the process is not attached. */
static _Atomic uint64_t g_disabled_state = 0;

static char *arena_data(void) { return (char *)g.arena + TR_SHM_HEADER_SIZE; }

void tr_client_warn(const char *fmt, ...) {
  const char *quiet = getenv(TR_ENV_QUIET);
  if (g.warned || (quiet != NULL && strcmp(quiet, "1") == 0)) return;
  g.warned = true;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof(line), fmt, ap);
  va_end(ap);
  /* One write so concurrent output does not split the line. */
  char out[600];
  int n = snprintf(out, sizeof(out), "traced: warning: %s\n", line);
  if (n > 0) {
    ssize_t ignored = write(STDERR_FILENO, out, (size_t)n);
    (void)ignored;
  }
}

/* ---- shared memory ---------------------------------------------------- */

static uint32_t env_u32(const char *name, uint32_t def, uint32_t lo,
                        uint32_t hi) {
  const char *s = getenv(name);
  if (s == NULL || *s == '\0') return def;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (*end != '\0' || s[0] == '-') return def; /* not a number */
  /* Out of range: the nearest allowed value, not the default. */
  if (errno == ERANGE || v > hi) return hi;
  if (v < lo) return lo;
  return (uint32_t)v;
}

/* Appends one entry; caller holds arena_lock. */
static uint32_t arena_append(const char *s, size_t n) {
  if (n > TR_STRING_MAX_LEN) n = TR_STRING_MAX_LEN;
  uint32_t at = atomic_load_explicit(&g.arena->committed, memory_order_relaxed);
  size_t need = 4 + ((n + 3) & ~(size_t)3);
  if ((size_t)at + need > g.arena_cap) {
    atomic_fetch_add_explicit(&g.arena->dropped, 1, memory_order_relaxed);
    return TR_STRING_UNKNOWN;
  }
  char *p = arena_data() + at;
  uint32_t len = (uint32_t)n;
  memcpy(p, &len, 4);
  memcpy(p + 4, s, n);
  memset(p + 4 + n, 0, need - 4 - n);
  /* Publish: the entry is complete before committed covers it. */
  atomic_store_explicit(&g.arena->committed, at + (uint32_t)need,
                        memory_order_release);
  return at;
}

/* Creates this process's arena; in a forked child, seeded with the
 * parent's committed strings so ids cached before fork stay valid. */
static int arena_create(int *fd_out) {
  uint32_t cap = g.arena_cap;
  if (cap == 0) cap = TR_ARENA_DEFAULT_SIZE;
  void *m;
  int fd = tr_transport_shm_create("traced-arena",
                                   TR_SHM_HEADER_SIZE + (size_t)cap, &m, 0);
  if (fd < 0) return fd;
  tr_arena_hdr *h = m;
  h->magic = TR_ARENA_MAGIC;
  h->version = TR_PROTO_VERSION;
  h->header_size = TR_SHM_HEADER_SIZE;
  h->capacity = cap;
  atomic_store_explicit(&h->state, 0, memory_order_relaxed);
  uint32_t committed = 0;
  if (g.forked && g.arena != NULL) {
    committed = g.fork_committed <= cap ? g.fork_committed : 0;
    memcpy((char *)m + TR_SHM_HEADER_SIZE, arena_data(), committed);
    tr_transport_shm_unmap(g.arena, TR_SHM_HEADER_SIZE + (size_t)g.arena_cap);
  }
  atomic_store_explicit(&h->committed, committed, memory_order_release);
  g.arena = h;
  g.arena_cap = cap;
  if (committed == 0) arena_append("<unknown>", 9);
  *fd_out = fd;
  return 0;
}

/* ---- fork ------------------------------------------------------------- */

static void atfork_prepare(void) {
  pthread_mutex_lock(&g.io_lock);
  pthread_mutex_lock(&g.arena_lock);
}

static void atfork_parent(void) {
  pthread_mutex_unlock(&g.arena_lock);
  pthread_mutex_unlock(&g.io_lock);
}

/* Runs inside fork() in the child, before any other code: from here on
 * the child must not write to the parent's shared memory or socket. */
static void atfork_child(void) {
  pthread_mutex_init(&g.io_lock, NULL);
  pthread_mutex_init(&g.arena_lock, NULL);
  memcpy(g.hello_name, g.child_name, sizeof(g.hello_name));
  if (g.arena == NULL) return;
  bool was_connected = g.fd >= 0;
  if (g.fd >= 0) tr_transport_close(g.fd);
  g.fd = -1;
  /* The parent's arena descriptor: the child makes its own copy. */
  if (g.arena_fd >= 0) tr_transport_close(g.arena_fd);
  g.arena_fd = -1;
  g.fork_committed =
      atomic_load_explicit(&g.arena->committed, memory_order_acquire);
  /* Swap the shared header page for a private one that says REATTACH;
   * the data pages stay shared (read-only use: copied at reattach). */
  if (tr_transport_shm_privatize(g.arena, TR_SHM_HEADER_SIZE) < 0) {
    /* Cannot happen short of address-space exhaustion; fall back to
     * never recording in this child. */
    g.arena = NULL;
    return;
  }
  /* A parent that was not connected has nothing for the child to join;
   * the child still must not append to the shared arena, and a later
   * connect makes it a copy. */
  atomic_store_explicit(&g.arena->state, was_connected ? TR_STATE_REATTACH : 0,
                        memory_order_relaxed);
  g.forked = true;
}

/* ---- connection ------------------------------------------------------- */

bool tr_client_connected(void) { return g.fd >= 0 && g.pid == getpid(); }

const char *tr_client_token(void) { return g.token; }
const char *tr_client_socket_path(void) { return g.socket_path; }
const char *tr_client_connect_why(void) { return g.why; }

_Atomic uint64_t *tr_client_state_word(void) {
  return g.arena != NULL ? &g.arena->state : &g_disabled_state;
}

/* The full-ring policy of TRACED_ON_FULL, TRACED_FULL_WAIT_MS and
 * TRACED_STALL_MS (an invalid value leaves its default; the Python shim
 * and `traced run` warn about it). */
static void full_policy_from_env(void) {
  uint64_t v;
  const tr_option *o = &tr_options[TR_OPTION_ON_FULL];
  const char *s = getenv(o->env);
  bool drop = s != NULL && tr_option_parse(o, s, &v, NULL, 0) == 0 &&
              v == TR_ON_FULL_DROP;
  o = &tr_options[TR_OPTION_FULL_WAIT_MS];
  s = getenv(o->env);
  if (s == NULL || tr_option_parse(o, s, &v, NULL, 0) < 0) v = o->def;
  tr_client_set_full_policy(drop, v * 1000000u);
  uint64_t stall =
      env_u32(TR_ENV_STALL_MS, TR_STALL_DEFAULT_MS, 1, TR_STALL_MAX_MS);
  atomic_store_explicit(&tr_full.stall_ns, stall * 1000000u,
                        memory_order_relaxed);
}

void tr_client_set_full_policy(bool drop, uint64_t wait_ns) {
  atomic_store_explicit(&tr_full.drop, drop, memory_order_relaxed);
  atomic_store_explicit(&tr_full.wait_ns, wait_ns, memory_order_relaxed);
}

/* Caller holds io_lock. */
static int connect_locked(const char *path) {
  if (g.fd >= 0 && g.pid == getpid()) return 0;
  g.why[0] = '\0';
  char def[sizeof(g.socket_path)];
  if (path == NULL || *path == '\0') {
    int rc = tr_sockpath_default(def, sizeof(def));
    if (rc < 0) return rc;
    path = def;
  }
  if (strlen(path) >= sizeof(g.socket_path)) return -ENAMETOOLONG;
  if (!g.atfork_registered) {
    (void)tr_transport_atfork(atfork_prepare, atfork_parent, atfork_child);
    g.atfork_registered = true;
  }
  int fd = tr_conn_connect(path, g.why, sizeof(g.why));
  if (fd < 0) return fd;
  snprintf(g.socket_path, sizeof(g.socket_path), "%s", path);

  full_policy_from_env();
  if (g.arena_cap == 0)
    g.arena_cap = env_u32("TRACED_ARENA_SIZE", TR_ARENA_DEFAULT_SIZE,
                          TR_ARENA_MIN_SIZE, TR_ARENA_MAX_SIZE);
  /* One arena for the life of the process (ids cached in code objects
   * must stay valid across reconnects); a forked child gets a copy. */
  int rc = 0;
  if (g.arena == NULL || g.forked) {
    int afd = -1;
    pthread_mutex_lock(&g.arena_lock);
    rc = arena_create(&afd);
    pthread_mutex_unlock(&g.arena_lock);
    if (rc < 0) {
      tr_transport_close(fd);
      return rc;
    }
    g.arena_fd = afd;
    g.forked = false;
  }
  int afd = g.arena_fd;

  tr_msg_welcome w;
  rc = tr_conn_hello(fd, g.hello_name, afd, g.arena_cap,
                     tr_client_may_use_tsc(), &w, g.why, sizeof(g.why));
  if (rc < 0) {
    tr_transport_close(fd);
    return rc;
  }
  g_max_extra = w.max_extra < TR_RECORD_MAX_EXTRA ? (uint32_t)w.max_extra
                                                  : TR_RECORD_MAX_EXTRA;
  /* Every thread is off while we connect, so no event is being stamped
   * with the old clock as it changes. */
  tr_clock_tsc = w.tsc;
  g.fd = fd;
  g.pid = getpid();
  return 0;
}

int tr_client_connect(const char *socket_path) {
  pthread_mutex_lock(&g.io_lock);
  int rc = connect_locked(socket_path);
  pthread_mutex_unlock(&g.io_lock);
  return rc;
}

void tr_client_disconnect(void) {
  pthread_mutex_lock(&g.io_lock);
  if (g.fd >= 0 && g.pid == getpid()) {
    tr_transport_close(g.fd);
    g.fd = -1;
    g.token[0] = '\0';
    /* Recording stops now; the daemon still drains what is committed. */
    if (g.arena != NULL)
      atomic_store_explicit(&g.arena->state, 0, memory_order_relaxed);
  }
  pthread_mutex_unlock(&g.io_lock);
}

/* The daemon is gone (or talked nonsense): close the connection and stop
 * recording in every thread at once, so nobody retries per event.  Caller
 * holds io_lock. */
static void connection_lost_locked(void) {
  if (g.fd >= 0) tr_transport_close(g.fd);
  g.fd = -1;
  if (g.arena != NULL && !g.forked)
    atomic_store_explicit(&g.arena->state, 0, memory_order_relaxed);
}

/* A request's outcome: a failure other than a refusal the connection
 * survives (EACCES) or a slow answer means the daemon is gone.  Caller
 * holds io_lock. */
static int request_done_locked(int rc) {
  if (rc < 0 && rc != -EACCES && rc != -ETIMEDOUT) connection_lost_locked();
  return rc;
}

/* A request on the connection; caller holds io_lock. */
static int request_locked(uint16_t type, msgpack_sbuffer *sb, const int *fds,
                          int nfds, uint16_t reply_type,
                          msgpack_unpacked *reply, int timeout_ms) {
  if (!tr_client_connected()) return -ENOTCONN;
  char msg[256] = "";
  return request_done_locked(tr_conn_request(g.fd, type, sb, fds, nfds,
                                             reply_type, reply, timeout_ms, msg,
                                             sizeof(msg)));
}

int tr_client_session_create(const char *display_path, int fd,
                             uint64_t min_duration_ns, uint64_t max_size,
                             char token[TR_TOKEN_HEX_LEN + 1]) {
  char t[TR_TOKEN_HEX_LEN + 1];
  pthread_mutex_lock(&g.io_lock);
  int rc = -ENOTCONN;
  if (tr_client_connected())
    rc = request_done_locked(tr_conn_session_create(
        g.fd, display_path, fd, min_duration_ns, max_size, t, NULL, 0));
  if (rc == 0) {
    memcpy(g.token, t, sizeof(t));
    if (token != NULL) memcpy(token, t, sizeof(t));
  }
  pthread_mutex_unlock(&g.io_lock);
  return rc;
}

static int join_locked(const char *token) {
  if (strlen(token) != TR_TOKEN_HEX_LEN) return -EINVAL;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_session_join_pack(&pk, &(tr_msg_session_join){tr_msg_cstr(token)});
  msgpack_unpacked reply;
  msgpack_unpacked_init(&reply);
  int rc = request_locked(TR_MSG_SESSION_JOIN, &sb, NULL, 0,
                          TR_MSG_SESSION_JOINED, &reply, TR_CONN_TIMEOUT_MS);
  /* A forked child rejoins with its own g.token (reattach_thread): source
   * and destination may be the same buffer, which snprintf must not be
   * given (glibc empties the destination first, and a second-generation
   * child then has no token to join with). */
  if (rc == 0) memmove(g.token, token, TR_TOKEN_HEX_LEN + 1);
  msgpack_unpacked_destroy(&reply);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int tr_client_session_join(const char *token) {
  pthread_mutex_lock(&g.io_lock);
  int rc = join_locked(token);
  pthread_mutex_unlock(&g.io_lock);
  return rc;
}

int tr_client_session_end(traced_summary *out, tr_summary_extra *extra,
                          int timeout_ms) {
  if (timeout_ms <= 0) timeout_ms = 120000;
  pthread_mutex_lock(&g.io_lock);
  int rc = -ENOTCONN;
  if (tr_client_connected()) {
    bool stopped;
    rc = tr_conn_end_session(g.fd, out, extra, &stopped, timeout_ms);
    if (rc < 0 && rc != -ETIMEDOUT) connection_lost_locked();
    if (stopped) connection_lost_locked(); /* the daemon is gone */
  }
  if (rc == 0) g.token[0] = '\0';
  pthread_mutex_unlock(&g.io_lock);
  return rc;
}

int tr_client_process_info(const char *name) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_process_info_pack(&pk,
                           &(tr_msg_process_info){.name = tr_msg_cstr(name)});
  pthread_mutex_lock(&g.io_lock);
  int rc = tr_client_connected()
               ? tr_conn_send(g.fd, TR_MSG_PROCESS_INFO, sb.data,
                              (uint32_t)sb.size, NULL, 0, TR_CONN_TIMEOUT_MS)
               : -ENOTCONN;
  pthread_mutex_unlock(&g.io_lock);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int tr_client_announce_child(uint32_t pid, const char *path,
                             const char *const *argv, size_t argc,
                             bool failed) {
  tr_conn_child_buf buf;
  tr_msg_process_info pi = {.has_child = true};
  tr_conn_child_make(&pi.child, &buf, pid, path, argv, argc, failed);
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_process_info_pack(&pk, &pi);
  pthread_mutex_lock(&g.io_lock);
  int rc = tr_client_connected() && g.token[0] != '\0'
               ? tr_conn_send(g.fd, TR_MSG_PROCESS_INFO, sb.data,
                              (uint32_t)sb.size, NULL, 0, TR_CONN_TIMEOUT_MS)
               : -ENOTCONN;
  if (rc < 0 && rc != -ENOTCONN) connection_lost_locked();
  pthread_mutex_unlock(&g.io_lock);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

void tr_client_set_child_name(const char *name) {
  pthread_mutex_lock(&g.io_lock);
  snprintf(g.child_name, sizeof(g.child_name), "%s", name);
  pthread_mutex_unlock(&g.io_lock);
}

uint32_t tr_client_intern(const char *s, size_t n) {
  pthread_mutex_lock(&g.arena_lock);
  /* A forked child appends only to its own copy, made at reattach. */
  if (g.arena == NULL || g.forked) {
    pthread_mutex_unlock(&g.arena_lock);
    return TR_STRING_UNKNOWN;
  }
  uint32_t id = arena_append(s, n);
  pthread_mutex_unlock(&g.arena_lock);
  return id;
}

/* ---- rings ------------------------------------------------------------ */

static int producer_call(tr_producer *p, tr_producer_req req);

void tr_client_thread_init(tr_producer *p) {
  memset(p, 0, sizeof(*p));
  p->state = tr_client_state_word();
  p->client = producer_call;
}

int tr_client_thread_open(tr_producer *p, const char *name) {
  if (!tr_client_connected()) return -ENOTCONN;
  uint32_t slots = env_u32(TR_ENV_RING_SLOTS, TR_RING_DEFAULT_SLOTS,
                           TR_RING_MIN_SLOTS, TR_RING_MAX_SLOTS);
  if (slots & (slots - 1)) slots = TR_RING_DEFAULT_SLOTS;
  size_t size = TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record);
  void *m;
  /* Only the start of the ring is faulted in now: a first-touch fault
   * costs ~4 us per page on the VMs we measure, which every traced thread
   * and process would pay at start-up for the whole ring.  The rest is
   * touched on the ring's first lap, by threads busy enough to need it. */
  int fd = tr_transport_shm_create("traced-ring", size, &m,
                                   TR_SHM_HEADER_SIZE + TR_RING_PREFAULT_BYTES);
  if (fd < 0) return fd;
  tr_ring_hdr *h = m;
  h->magic = TR_RING_MAGIC;
  h->version = TR_PROTO_VERSION;
  h->header_size = TR_SHM_HEADER_SIZE;
  h->capacity = slots;
  h->tid = tr_transport_tid();

  char tname[64];
  if (name == NULL && p->name[0] != '\0') name = p->name;
  if (name == NULL) {
    if (pthread_getname_np(pthread_self(), tname, sizeof(tname)) != 0)
      snprintf(tname, sizeof(tname), "thread-%u", h->tid);
    name = tname;
  }
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_ring_add_pack(
      &pk, &(tr_msg_ring_add){
               .tid = h->tid, .slots = slots, .name = tr_msg_cstr(name)});
  pthread_mutex_lock(&g.io_lock);
  int rc = tr_client_connected()
               ? tr_conn_send(g.fd, TR_MSG_RING_ADD, sb.data, (uint32_t)sb.size,
                              &fd, 1, TR_CONN_TIMEOUT_MS)
               : -ENOTCONN;
  if (rc < 0 && rc != -ENOTCONN) connection_lost_locked();
  pthread_mutex_unlock(&g.io_lock);
  msgpack_sbuffer_destroy(&sb);
  tr_transport_close(fd);
  if (rc < 0) {
    tr_transport_shm_unmap(m, size);
    return rc;
  }
  p->hdr = h;
  p->slots = (tr_record *)((char *)m + TR_SHM_HEADER_SIZE);
  p->capacity = slots;
  p->mask = slots - 1;
  p->head = 0;
  p->limit = 0; /* the first record goes through tr_producer_room() */
  p->dropping = false;
  p->lost_pending = 0;
  p->dropped = 0;
  p->map_size = size;
  p->pid = getpid();
  p->tid = h->tid;
  p->state = tr_client_state_word();
  p->beat = g.arena != NULL ? &g.arena->beat : NULL;
  p->max_extra = g_max_extra;
  if (name != p->name) snprintf(p->name, sizeof(p->name), "%s", name);
  return 0;
}

void tr_client_thread_close(tr_producer *p) {
  if (p->hdr != NULL) {
    /* In a forked child this is the parent's ring: only forget it. */
    if (p->pid == getpid())
      atomic_store_explicit(&p->hdr->closed, 1, memory_order_release);
    tr_transport_shm_unmap(p->hdr, p->map_size);
  }
  free(p->stack);
  tr_client_thread_init(p);
}

/* The first event after fork(): connects the child, joins its parent's
 * session and gives p a fresh ring. */
static int reattach_thread(tr_producer *p) {
  /* Forget the parent's ring without writing to it. */
  if (p->hdr != NULL && p->pid != getpid()) {
    tr_transport_shm_unmap(p->hdr, p->map_size);
    p->hdr = NULL;
  }
  pthread_mutex_lock(&g.io_lock);
  int rc = 0;
  if (g.forked) {
    char path[sizeof(g.socket_path)];
    memcpy(path, g.socket_path, sizeof(path));
    rc = connect_locked(path);
    if (rc == 0 && g.token[0] != '\0') rc = join_locked(g.token);
    if (rc < 0) {
      if (g.arena != NULL)
        atomic_store_explicit(&g.arena->state, 0, memory_order_relaxed);
      g.forked = false;
      tr_client_warn("forked child %d could not reattach: %s", getpid(),
                     strerror(-rc));
    }
  }
  pthread_mutex_unlock(&g.io_lock);
  p->state = tr_client_state_word();
  if (rc < 0) return rc;
  if (p->hdr == NULL) rc = tr_client_thread_open(p, NULL);
  return rc;
}

/* Asks the daemon to drain now. */
static void doorbell(void) {
  /* Never wait: if another thread is talking to the daemon, the daemon's
   * timer drains soon anyway. */
  if (pthread_mutex_trylock(&g.io_lock) != 0) return;
  if (tr_client_connected()) {
    uint8_t hdr[sizeof(tr_frame_hdr)];
    tr_frame_hdr_encode(hdr, TR_MSG_DOORBELL, 0);
    int64_t w = tr_transport_try_send(g.fd, hdr, sizeof(hdr));
    /* A full socket buffer means the daemon is already busy; a closed
     * one, that it is gone. */
    if (w < 0 && w != -EAGAIN) connection_lost_locked();
  }
  pthread_mutex_unlock(&g.io_lock);
}

/* The producer's one way into the connection (producer.h). */
static int producer_call(tr_producer *p, tr_producer_req req) {
  switch (req) {
    case TR_PRODUCER_DOORBELL:
      doorbell();
      return 0;
    case TR_PRODUCER_OPEN:
      return tr_client_thread_open(p, NULL);
    case TR_PRODUCER_REATTACH:
      return reattach_thread(p);
  }
  return -EINVAL;
}

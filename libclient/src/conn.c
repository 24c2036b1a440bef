/* conn.c: blocking, timed request/reply framing over the daemon socket. */
#include "conn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "proto/sockpath.h"
#include "trust.h"

int tr_conn_connect(const char *path, char *why, size_t why_size) {
  char scratch[TR_CONN_WHY_MAX];
  if (why == NULL || why_size == 0) {
    why = scratch;
    why_size = sizeof(scratch);
  }
  why[0] = '\0';
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (strlen(path) >= sizeof(addr.sun_path)) return -ENAMETOOLONG;
  if (path[0] != '/') {
    /* Each process would look in its own working directory (the daemon
     * in /), so a relative name never reaches one daemon for them all. */
    snprintf(why, why_size,
             "the socket path '%s' is relative; TRACED_SOCKET and --socket "
             "need an absolute path",
             path);
    return -EINVAL;
  }
  char user[sizeof(addr.sun_path)];
  bool per_user =
      tr_sockpath_user(user, sizeof(user)) == 0 && strcmp(user, path) == 0;
  int dfd = -1;
  const char *target = path;
  char via[sizeof(addr.sun_path)];
  if (per_user) {
    dfd = tr_trust_private_dir(path, via, sizeof(via), why, why_size);
    if (dfd < 0) return dfd;
    target = via;
  }
  strcpy(addr.sun_path, target);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int err = errno;
  if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
    err = errno;
    close(fd);
    fd = -1;
  }
  if (dfd >= 0) close(dfd);
  if (fd < 0 && err == ENOENT && !per_user) {
    /* Nothing can listen there, nor be started there: say which
     * directory is missing rather than let a daemon started for it fail
     * on a log file in that directory. */
    char dir[sizeof(addr.sun_path)];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) *slash = '\0';
    struct stat st;
    if (slash != NULL && slash != dir && stat(dir, &st) < 0 && errno == ENOENT)
      snprintf(why, why_size,
               "the socket's directory %s does not exist; create it or "
               "choose another socket (--socket, TRACED_SOCKET)",
               dir);
  }
  if (fd < 0) return -err;
  int rc = tr_trust_peer(fd, path, per_user, why, why_size);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

int tr_conn_open_output(const char *path) {
  int fd =
      open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0666);
  if (fd < 0) return -errno;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) < 0)
    rc = -errno;
  else if (!S_ISREG(st.st_mode) &&
           !(S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 &&
             minor(st.st_rdev) == 3))
    rc = -EINVAL;
  else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
    rc = -errno;
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd pfd = {.fd = fd, .events = events};
  for (;;) {
    int n = poll(&pfd, 1, timeout_ms);
    if (n > 0) return 0;
    if (n == 0) return -ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

int tr_conn_send(int fd, uint16_t type, const void *payload, uint32_t len,
                 const int *fds, int nfds, int timeout_ms) {
  if (len > TR_FRAME_MAX_PAYLOAD || nfds < 0 || nfds > TR_FRAME_MAX_FDS)
    return -EMSGSIZE;
  uint8_t hdr[sizeof(tr_frame_hdr)];
  tr_frame_hdr_encode(hdr, type, len);
  struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)payload, len}};
  size_t total = sizeof(hdr) + len, sent = 0;
  union {
    char buf[CMSG_SPACE(sizeof(int) * TR_FRAME_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  int first = 1;
  while (sent < total) {
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    /* Rebuild the iovec past what was already sent. */
    struct iovec cur[2];
    int n = 0;
    size_t skip = sent;
    for (int i = 0; i < 2; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      cur[n].iov_base = (char *)iov[i].iov_base + skip;
      cur[n].iov_len = iov[i].iov_len - skip;
      skip = 0;
      n++;
    }
    msg.msg_iov = cur;
    msg.msg_iovlen = (size_t)n;
    if (first && nfds > 0) {
      memset(&ctl, 0, sizeof(ctl));
      msg.msg_control = ctl.buf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
      struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
      memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
    }
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_fd(fd, POLLOUT, timeout_ms);
        if (rc < 0) return rc;
        continue;
      }
      return -errno;
    }
    if (w > 0) first = 0; /* descriptors went with the first byte */
    sent += (size_t)w;
  }
  return 0;
}

static int read_full(int fd, void *buf, size_t len, int timeout_ms) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = recv(fd, (char *)buf + got, len - got, MSG_DONTWAIT);
    if (r > 0) {
      got += (size_t)r;
      continue;
    }
    if (r == 0) return -ECONNRESET;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -errno;
    int rc = wait_fd(fd, POLLIN, timeout_ms);
    if (rc < 0) return rc;
  }
  return 0;
}

int tr_conn_recv(int fd, msgpack_unpacked *out, int timeout_ms, char *errmsg,
                 size_t errmsg_size) {
  uint8_t hb[sizeof(tr_frame_hdr)];
  int rc = read_full(fd, hb, sizeof(hb), timeout_ms);
  if (rc < 0) return rc;
  tr_frame_hdr hdr;
  int64_t t = tr_frame_parse(hb, sizeof(hb), &hdr);
  if (t < 0) return (int)t;
  uint8_t *payload = NULL;
  if (hdr.len > 0) {
    payload = malloc(hdr.len);
    if (payload == NULL) return -ENOMEM;
    rc = read_full(fd, payload, hdr.len, timeout_ms);
    if (rc < 0) {
      free(payload);
      return rc;
    }
  }
  msgpack_unpacked_init(out);
  if (hdr.len > 0) {
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack_next(out, (const char *)payload, hdr.len, &off);
    /* Unpacked strings point into the payload: it lives as long as the
     * unpacked object's zone. */
    if (out->zone == NULL ||
        !msgpack_zone_push_finalizer(out->zone, free, payload)) {
      free(payload);
      msgpack_unpacked_destroy(out);
      msgpack_unpacked_init(out);
      return ur == MSGPACK_UNPACK_SUCCESS ? -ENOMEM : -EPROTO;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS || off != hdr.len) {
      msgpack_unpacked_destroy(out);
      msgpack_unpacked_init(out);
      return -EPROTO;
    }
  }
  if (hdr.type == TR_MSG_ERROR) {
    tr_msg_error e;
    tr_msg_error_unpack(&out->data, &e, NULL);
    int64_t code = e.code;
    if (errmsg != NULL && errmsg_size > 0 &&
        tr_msg_strcpy(errmsg, errmsg_size, e.message) < 0)
      snprintf(errmsg, errmsg_size, "%s", strerror((int)code));
    msgpack_unpacked_destroy(out);
    msgpack_unpacked_init(out);
    if (code <= 0 || code > 4095) code = EPROTO;
    return -(int)code;
  }
  return hdr.type;
}

int tr_conn_request(int fd, uint16_t type, const msgpack_sbuffer *payload,
                    const int *fds, int nfds, uint16_t reply_type,
                    msgpack_unpacked *reply, int timeout_ms, char *errmsg,
                    size_t errmsg_size) {
  int rc = tr_conn_send(fd, type, payload ? payload->data : NULL,
                        payload ? (uint32_t)payload->size : 0, fds, nfds,
                        timeout_ms);
  if (rc == -EPIPE || rc == -ECONNRESET) {
    /* A daemon that refused us at once (a per-user connection limit) sent
     * ERROR and closed before our request: its reason is still to read. */
    int why = tr_conn_recv(fd, reply, 100, errmsg, errmsg_size);
    if (why < 0 && why != -ETIMEDOUT && why != -ECONNRESET) return why;
    if (why >= 0) {
      msgpack_unpacked_destroy(reply);
      msgpack_unpacked_init(reply);
    }
    return rc;
  }
  if (rc < 0) return rc;
  rc = tr_conn_recv(fd, reply, timeout_ms, errmsg, errmsg_size);
  if (rc < 0) return rc;
  if (rc != reply_type) {
    msgpack_unpacked_destroy(reply);
    msgpack_unpacked_init(reply);
    return -EPROTO;
  }
  return 0;
}

/* argv of this process as /proc/self/cmdline has it (the C library does
 * not keep it anywhere public); returns the bytes read. */
static size_t read_cmdline(char *buf, size_t size) {
  size_t len = 0;
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r;
    while (len < size && (r = read(fd, buf + len, size - len)) > 0)
      len += (size_t)r;
    close(fd);
  }
  return len;
}

int tr_conn_hello(int fd, const char *name, int arena_fd, uint32_t arena_size,
                  bool tsc, tr_msg_welcome *welcome, char *err, size_t errsz) {
  char argv[8192];
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (name == NULL || name[0] == '\0')
    name = program_invocation_short_name ? program_invocation_short_name : "";
  tr_msg_hello h = {
      .producer = arena_fd >= 0,
      .pid = (uint64_t)getpid(),
      .ppid = (uint64_t)getppid(),
      .argv = argv,
      .argv_len = read_cmdline(argv, sizeof(argv)),
      .name = tr_msg_cstr(name),
      .now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
      .arena_size = arena_size,
      .tsc = tsc,
  };
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_hello_pack(&pk, &h);
  msgpack_unpacked reply;
  msgpack_unpacked_init(&reply);
  int rc =
      tr_conn_request(fd, TR_MSG_HELLO, &sb, &arena_fd, arena_fd >= 0 ? 1 : 0,
                      TR_MSG_WELCOME, &reply, TR_CONN_TIMEOUT_MS, err, errsz);
  if (rc == 0 && welcome != NULL)
    rc = tr_msg_welcome_unpack(&reply.data, welcome, NULL);
  msgpack_unpacked_destroy(&reply);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int tr_conn_end_session(int fd, traced_summary *out, tr_summary_extra *extra,
                        bool *stopped, int timeout_ms) {
  *stopped = false;
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_empty_pack(&pk);
  msgpack_unpacked reply;
  msgpack_unpacked_init(&reply);
  int rc = tr_conn_send(fd, TR_MSG_SESSION_END, sb.data, (uint32_t)sb.size,
                        NULL, 0, timeout_ms);
  msgpack_sbuffer_destroy(&sb);
  /* A daemon that stopped closed its end: what it sent before closing
   * (the summary) can still be read. */
  bool closed = rc == -EPIPE || rc == -ECONNRESET;
  if (rc == 0 || closed) {
    rc = tr_conn_recv(fd, &reply, closed ? 1000 : timeout_ms, NULL, 0);
    if (rc == TR_MSG_SESSION_SUMMARY) {
      tr_msg_session_summary m;
      tr_msg_session_summary_unpack(&reply.data, &m, NULL);
      if (out != NULL) {
        memset(out, 0, sizeof(*out));
        out->processes = m.processes;
        out->threads = m.threads;
        out->events = m.events;
        out->dropped = m.dropped;
        out->late = m.late;
        out->malformed = m.malformed;
        out->unmatched = m.unmatched;
        out->bytes = m.bytes;
        tr_msg_strcpy(out->path, sizeof(out->path), m.path);
      }
      if (extra != NULL) {
        extra->filtered = m.filtered;
        extra->max_size = m.max_size;
        extra->cut_dropped = m.cut_dropped;
        extra->write_error = (int)m.write_error;
        extra->unclosed = m.unclosed != 0;
      }
      *stopped = closed;
      rc = 0;
    } else if (rc >= 0) {
      rc = -EPROTO;
    } else if (closed) {
      rc = -EPIPE;
    }
  }
  msgpack_unpacked_destroy(&reply);
  return rc;
}

/* Whether `path` ends with `ext`, ignoring ASCII case. */
static bool has_ext(const char *path, const char *ext) {
  size_t n = strlen(path), k = strlen(ext);
  return n > k && strncasecmp(path + n - k, ext, k) == 0;
}

const char *tr_conn_format_for_path(const char *path) {
  if (has_ext(path, ".json.gz")) return TR_FORMAT_NAME_JSON_GZ;
  if (has_ext(path, ".pftrace") || has_ext(path, ".perfetto-trace"))
    return TR_FORMAT_NAME_PERFETTO;
  return TR_FORMAT_NAME_JSON;
}

int tr_conn_session_create(int fd, const char *path, int out_fd,
                           uint64_t min_duration_ns, uint64_t max_size,
                           char token[TR_TOKEN_HEX_LEN + 1], char *err,
                           size_t errsz) {
  tr_msg_session_create m = {
      .path = tr_msg_cstr(path),
      .format = tr_msg_cstr(tr_conn_format_for_path(path)),
      .min_duration_ns = min_duration_ns,
      .max_size = max_size,
  };
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_session_create_pack(&pk, &m);
  msgpack_unpacked reply;
  msgpack_unpacked_init(&reply);
  int rc = tr_conn_request(fd, TR_MSG_SESSION_CREATE, &sb, &out_fd, 1,
                           TR_MSG_SESSION_CREATED, &reply, TR_CONN_TIMEOUT_MS,
                           err, errsz);
  if (rc == 0) {
    tr_msg_session_created c;
    rc = tr_msg_session_created_unpack(&reply.data, &c, NULL);
    if (rc == 0) memcpy(token, c.token, sizeof(c.token));
  }
  msgpack_unpacked_destroy(&reply);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

const char *tr_summary_cut_text(const tr_summary_extra *x, char *buf,
                                size_t size) {
  char why[160], sz[24];
  buf[0] = '\0';
  if (x->write_error != 0)
    snprintf(why, sizeof(why), "write failed: %s", strerror(x->write_error));
  else if (x->max_size != 0)
    snprintf(why, sizeof(why), "stopped at --max-size %s",
             tr_option_size_text(x->max_size, sz, sizeof(sz)));
  else
    return buf;
  snprintf(buf, size, "%s: %llu events dropped%s", why,
           (unsigned long long)x->cut_dropped,
           x->unclosed ? "; the file ends at its last whole event but its "
                         "closing could not be written"
                       : ", the file ends at the last whole event");
  return buf;
}

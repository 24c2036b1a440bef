/* conn.c: blocking, timed request/reply framing over the daemon
 * connection (the bytes and handles go through transport.h). */
#include "conn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "options.h"
#include "proto/frame.h"
#include "proto/msg.h"
#include "transport.h"

int tr_conn_connect(const char *path, char *why, size_t why_size) {
  return tr_transport_connect(path, why, why_size);
}

int tr_conn_open_output(const char *path) {
  return tr_transport_open_output(path);
}

void tr_conn_close(int fd) { tr_transport_close(fd); }

int tr_conn_send(int fd, uint16_t type, const void *payload, uint32_t len,
                 const int *fds, int nfds, int timeout_ms) {
  if (len > TR_FRAME_MAX_PAYLOAD || nfds < 0 || nfds > TR_FRAME_MAX_FDS)
    return -EMSGSIZE;
  uint8_t hdr[sizeof(tr_frame_hdr)];
  tr_frame_hdr_encode(hdr, type, len);
  return tr_transport_send(fd, hdr, sizeof(hdr), payload, len, fds, nfds,
                           timeout_ms);
}

int tr_conn_recv(int fd, msgpack_unpacked *out, int timeout_ms, char *errmsg,
                 size_t errmsg_size) {
  uint8_t hb[sizeof(tr_frame_hdr)];
  int rc = tr_transport_recv(fd, hb, sizeof(hb), timeout_ms);
  if (rc < 0) return rc;
  tr_frame_hdr hdr;
  int64_t t = tr_frame_parse(hb, sizeof(hb), &hdr);
  if (t < 0) return (int)t;
  uint8_t *payload = NULL;
  if (hdr.len > 0) {
    payload = malloc(hdr.len);
    if (payload == NULL) return -ENOMEM;
    rc = tr_transport_recv(fd, payload, hdr.len, timeout_ms);
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

int tr_conn_hello(int fd, const char *name, int arena_fd, uint32_t arena_size,
                  bool tsc, tr_msg_welcome *welcome, char *err, size_t errsz) {
  char argv[8192];
  if (name == NULL || name[0] == '\0') name = tr_transport_progname();
  tr_msg_hello h = {
      .producer = arena_fd >= 0,
      .pid = (uint64_t)getpid(),
      .ppid = tr_transport_ppid(),
      .argv = argv,
      .argv_len = tr_transport_cmdline(argv, sizeof(argv)),
      .name = tr_msg_cstr(name),
      .now_ns = tr_transport_mono_ns(),
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

/* Appends s (and its NUL) to the argc strings in buf[size] (*used bytes
 * so far); false when it does not fit. */
static bool argv_add(char *buf, size_t size, size_t *used, tr_msg_str s) {
  if (*used + s.len + 1 > size) return false;
  memcpy(buf + *used, s.ptr, s.len);
  *used += s.len;
  buf[(*used)++] = '\0';
  return true;
}

/* The summary's `unjoined` list into x (malformed elements skipped). */
static void summary_children(tr_summary_extra *x,
                             const tr_msg_session_summary *m) {
  x->nunjoined = 0;
  x->unjoined_omitted = m->unjoined_omitted;
  for (uint64_t i = 0; i < m->nunjoined; i++) {
    tr_msg_child c;
    if (tr_msg_child_unpack(&m->unjoined_list[i], &c, NULL) < 0) continue;
    if (x->nunjoined == TR_UNJOINED_MAX) {
      x->unjoined_omitted++;
      continue;
    }
    tr_summary_child *o = &x->unjoined[x->nunjoined++];
    o->pid = (uint32_t)c.pid;
    tr_msg_strcpy(o->path, sizeof(o->path), c.path);
    size_t used = 0;
    o->argc = 0;
    while (o->argc < c.argc && argv_add(o->argv, sizeof(o->argv), &used,
                                        tr_msg_child_arg(&c, o->argc)))
      o->argc++;
  }
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
        summary_children(extra, &m);
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

/* How much of a never-joined process's command line its line shows. */
#define TR_UNJOINED_ARGV_SHOWN 72

static const char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  return slash != NULL ? slash + 1 : path;
}

/* Whether argv runs Python with -S (no site-packages, so no .pth hook):
 * -S alone or among other one-letter flags before the script, -c or -m. */
static bool runs_without_site(const tr_summary_child *c) {
  const char *a = c->argv;
  for (uint32_t i = 0; i < c->argc; i++, a += strlen(a) + 1) {
    if (i == 0) continue;
    if (a[0] != '-' || a[1] == '-' || a[1] == '\0') return false;
    if (a[1] == 'c' || a[1] == 'm') return false;
    if (a[1] == 'X' || a[1] == 'W') {
      if (a[2] == '\0') { /* its value is the next argument */
        if (i + 1 >= c->argc) return false;
        i++;
        a += strlen(a) + 1;
      }
      continue;
    }
    if (strchr(a + 1, 'S') != NULL) return true;
  }
  return false;
}

bool tr_summary_unjoined_text(const tr_summary_extra *x, uint32_t i, char *buf,
                              size_t size) {
  buf[0] = '\0';
  if (i == x->nunjoined && x->unjoined_omitted > 0) {
    snprintf(buf, size,
             "%llu more Python process%s never joined the session (not "
             "listed)",
             (unsigned long long)x->unjoined_omitted,
             x->unjoined_omitted == 1 ? "" : "es");
    return true;
  }
  if (i >= x->nunjoined) return false;
  const tr_summary_child *c = &x->unjoined[i];
  /* The command line, its arguments separated by spaces, shortened; its
   * argv[0] only when it is not the interpreter named before it. */
  char shown[TR_UNJOINED_ARGV_SHOWN + 4];
  size_t n = 0;
  const char *a = c->argv;
  uint32_t k = 0;
  if (c->argc > 0 && strcmp(base_name(a), base_name(c->path)) == 0) {
    a += strlen(a) + 1;
    k++;
  }
  bool cut = false; /* something was left out */
  for (; k < c->argc && !cut; k++, a += strlen(a) + 1) {
    if (n >= TR_UNJOINED_ARGV_SHOWN) {
      cut = true;
      break;
    }
    if (n > 0) shown[n++] = ' ';
    const char *p = a;
    for (; *p != '\0' && n < TR_UNJOINED_ARGV_SHOWN; p++)
      shown[n++] = *p == '\n' || *p == '\t' ? ' ' : *p;
    cut = *p != '\0';
  }
  if (cut) {
    /* Not in the middle of a UTF-8 character: drop a last one that may
     * be incomplete. */
    while (n > 0 && ((unsigned char)shown[n - 1] & 0xC0) == 0x80) n--;
    if (n > 0 && ((unsigned char)shown[n - 1] & 0xC0) == 0xC0) n--;
    memcpy(shown + n, "...", 3);
    n += 3;
  }
  shown[n] = '\0';
  int at =
      snprintf(buf, size, "pid %u never joined the session: %s%s%s%s", c->pid,
               c->path, n > 0 ? " (" : "", shown, n > 0 ? ")" : "");
  if (at < 0 || (size_t)at >= size) return true;
  if (runs_without_site(c))
    snprintf(buf + at, size - (size_t)at,
             " ran without traced: -S leaves out site-packages, where traced "
             "starts from; run it without -S to trace it");
  else
    snprintf(buf + at, size - (size_t)at,
             " ran without traced; install traced in that interpreter: %s -m "
             "pip install traced",
             c->path);
  return true;
}

void tr_conn_child_make(tr_msg_child *c, tr_conn_child_buf *buf, uint32_t pid,
                        const char *path, const char *const *argv, size_t argc,
                        bool failed) {
  memset(c, 0, sizeof(*c));
  c->pid = pid;
  c->failed = failed;
  tr_msg_strcpy(buf->path, sizeof(buf->path), tr_msg_cstr(path));
  c->path = tr_msg_cstr(buf->path);
  size_t used = 0;
  for (size_t i = 0; i < argc && i < TR_CHILD_ARGC_MAX; i++)
    if (!argv_add(buf->argv, sizeof(buf->argv), &used, tr_msg_cstr(argv[i])))
      break;
  c->argv = buf->argv;
  c->argv_len = used;
}

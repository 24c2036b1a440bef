/* ctl.c: `traced status` and `traced stop`, the operator's commands: ask a
 * running daemon what it serves, or make it finalise every session and
 * exit. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "libclient/src/conn.h"
#include "output/json_escape.h"
#include "proto/msg.h"
#include "proto/sockpath.h"
#include "proto/traced_proto.h"

/* `traced stop` waits this long for the sessions to be finalised (the
 * same bound as `traced run` gives SESSION_END). */
#define TR_STOP_TIMEOUT_MS (10 * 60 * 1000)

typedef struct ctl_opts {
  char socket[108];
  bool json;
} ctl_opts;

static void status_usage(FILE *f) {
  fputs(
      "usage: traced status [--socket PATH | --system] [--json]\n"
      "\n"
      "Show the daemon listening on the socket: version, pid, user, mode,\n"
      "uptime, and the sessions you own (root: every session) with their\n"
      "owner, processes, threads, events, events/s, drops, bytes and file.\n"
      "\n"
      "  --socket PATH  the daemon's socket (default: $TRACED_SOCKET, else\n"
      "                 the per-user socket)\n"
      "  --system       the system daemon's socket, " TR_SYSTEM_SOCKET
      "\n"
      "  --json         one JSON object instead of text\n"
      "\n"
      "exit status: 0 shown, 1 no daemon reachable, 2 usage\n",
      f);
}

static void stop_usage(FILE *f) {
  fputs(
      "usage: traced stop [--socket PATH | --system]\n"
      "\n"
      "Stop the daemon gracefully: every open session is finalised (its\n"
      "file complete, its creator answered), then the daemon exits.  Traced\n"
      "programs keep running, untraced.  Only the daemon's own user and\n"
      "root may stop it.\n"
      "\n"
      "  --socket PATH  the daemon's socket (default: $TRACED_SOCKET, else\n"
      "                 the per-user socket)\n"
      "  --system       the system daemon's socket, " TR_SYSTEM_SOCKET
      "\n"
      "\n"
      "exit status: 0 stopped, 1 no daemon reachable, 2 usage, 3 refused\n",
      f);
}

/* Parses the options both commands share; returns -1 after printing
 * usage (exit 2), 1 for --help (exit 0), 0 to go on. */
static int parse(int argc, char **argv, const char *cmd, bool allow_json,
                 void (*usage)(FILE *), ctl_opts *o) {
  static const struct option opts[] = {
      {"socket", required_argument, NULL, 's'},
      {"system", no_argument, NULL, 'S'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof(*o));
  bool sock = false, sys = false;
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
    switch (c) {
      case 's':
        if (strlen(optarg) == 0 || strlen(optarg) >= sizeof(o->socket)) {
          fprintf(stderr, "traced %s: --socket: bad path '%s'\n", cmd, optarg);
          usage(stderr);
          return -1;
        }
        snprintf(o->socket, sizeof(o->socket), "%s", optarg);
        sock = true;
        break;
      case 'S':
        snprintf(o->socket, sizeof(o->socket), "%s", TR_SYSTEM_SOCKET);
        sys = true;
        break;
      case 'j':
        if (!allow_json) goto bad;
        o->json = true;
        break;
      case 'h':
        usage(stdout);
        return 1;
      default:
        goto bad;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "traced %s: unexpected argument '%s'\n", cmd, argv[optind]);
    usage(stderr);
    return -1;
  }
  if (sock && sys) {
    fprintf(stderr, "traced %s: --socket and --system exclude each other\n",
            cmd);
    usage(stderr);
    return -1;
  }
  if (!sock && !sys && tr_sockpath_default(o->socket, sizeof(o->socket)) < 0) {
    fprintf(stderr, "traced %s: the socket path is too long\n", cmd);
    return -1;
  }
  return 0;
bad:
  fprintf(stderr, "traced %s: bad option '%s'\n", cmd, argv[optind - 1]);
  usage(stderr);
  return -1;
}

/* Connects and says HELLO as a control client; prints why not and returns
 * -1 when the daemon cannot be reached. */
static int ctl_connect(const char *cmd, const char *socket) {
  char why[TR_CONN_WHY_MAX];
  int fd = tr_conn_connect(socket, why, sizeof(why));
  if (fd < 0) {
    fprintf(stderr, "traced %s: no traced daemon reachable at %s (%s)\n", cmd,
            socket, why[0] ? why : strerror(-fd));
    return -1;
  }
  char err[256] = "";
  int rc = tr_conn_hello(fd, "traced", -1, 0, false, NULL, err, sizeof(err));
  if (rc < 0) {
    fprintf(stderr, "traced %s: the daemon at %s did not answer (%s)\n", cmd,
            socket, err[0] ? err : strerror(-rc));
    close(fd);
    return -1;
  }
  return fd;
}

/* ---- status -------------------------------------------------------------- */

static const char *user_name(uint64_t uid, char *buf, size_t size) {
  struct passwd *pw = getpwuid((uid_t)uid);
  if (pw != NULL && pw->pw_name != NULL)
    snprintf(buf, size, "%s", pw->pw_name);
  else
    snprintf(buf, size, "%" PRIu64, uid);
  return buf;
}

static void json_str(const char *s, size_t n) { tr_json_put_str(stdout, s, n); }

/* Whether a map key is the string `lit`. */
static bool key_is(const msgpack_object *k, const char *lit) {
  size_t n = strlen(lit);
  return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
         memcmp(k->via.str.ptr, lit, n) == 0;
}

/* Writes a decoded reply as JSON (maps with string keys, arrays, strings,
 * integers and booleans are all a STATUS_REPLY holds), whatever keys the
 * daemon sent; a session's owner and the daemon's uid get their user name
 * next to them. */
static void json_value(const msgpack_object *o) {
  switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      printf("%" PRIu64, o->via.u64);
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      printf("%" PRId64, o->via.i64);
      break;
    case MSGPACK_OBJECT_BOOLEAN:
      fputs(o->via.boolean ? "true" : "false", stdout);
      break;
    case MSGPACK_OBJECT_STR:
      json_str(o->via.str.ptr, o->via.str.size);
      break;
    case MSGPACK_OBJECT_ARRAY:
      putchar('[');
      for (uint32_t i = 0; i < o->via.array.size; i++) {
        if (i > 0) putchar(',');
        json_value(&o->via.array.ptr[i]);
      }
      putchar(']');
      break;
    case MSGPACK_OBJECT_MAP:
      putchar('{');
      for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (i > 0) putchar(',');
        if (kv->key.type == MSGPACK_OBJECT_STR)
          json_str(kv->key.via.str.ptr, kv->key.via.str.size);
        else
          fputs("\"?\"", stdout);
        putchar(':');
        json_value(&kv->val);
        bool owner = key_is(&kv->key, TR_KEY_OWNER);
        if ((owner || key_is(&kv->key, TR_KEY_DAEMON_UID)) &&
            kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
          char name[64];
          printf(",\"%s\":", owner ? "owner_name" : "daemon_user_name");
          user_name(kv->val.via.u64, name, sizeof(name));
          json_str(name, strlen(name));
        }
      }
      putchar('}');
      break;
    default:
      fputs("null", stdout);
  }
}

static void print_duration(uint64_t ns) {
  uint64_t s = ns / 1000000000u;
  if (s < 60)
    printf("%" PRIu64 "s", s);
  else if (s < 3600)
    printf("%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
  else
    printf("%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600, s / 60 % 60,
           s % 60);
}

/* Prints a string some client chose: control characters (C0, DEL, and
 * C1 as UTF-8 encodes them) and backslashes as \xNN / \\, so it can
 * neither move the cursor nor forge a line of its own. */
static void print_escaped(const char *s) {
  for (; *s != '\0'; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == 0xc2 && (unsigned char)s[1] >= 0x80 &&
        (unsigned char)s[1] <= 0x9f) {
      printf("\\x%02x\\x%02x", c, (unsigned char)s[1]);
      s++;
    } else if (c < 0x20 || c == 0x7f)
      printf("\\x%02x", c);
    else if (c == '\\')
      fputs("\\\\", stdout);
    else
      putchar(c);
  }
}

static void print_status(const msgpack_object *map) {
  tr_msg_status_reply m;
  tr_msg_status_reply_unpack(map, &m, NULL);
  char ver[32] = "?", sock[128] = "?", mode[16] = "?", name[64];
  tr_msg_strcpy(ver, sizeof(ver), m.version);
  tr_msg_strcpy(sock, sizeof(sock), m.socket);
  tr_msg_strcpy(mode, sizeof(mode), m.mode);
  printf("traced %s (protocol %" PRIu64 "): pid %" PRIu64
         ", user %s, %s mode, up ",
         ver, m.protocol, m.daemon_pid,
         user_name(m.daemon_uid, name, sizeof(name)), mode);
  print_duration(m.uptime_ns);
  printf("\nsocket: %s\n", sock);
  printf("connections: %" PRIu64 "%s\n", m.connections,
         m.viewer_uid == 0 ? "" : " (yours)");
  if (m.record_rate_per_uid > 0)
    printf("record rate limit: %" PRIu64 " per second per user\n",
           m.record_rate_per_uid);
  uint32_t n = m.nsessions;
  printf("sessions: %" PRIu64 " running, %u shown", m.sessions_total, n);
  if (m.viewer_uid != 0 && m.sessions_total > n)
    printf(" (the others belong to other users)");
  if (m.sessions_omitted > 0)
    printf(" (%" PRIu64 " more did not fit)", m.sessions_omitted);
  putchar('\n');
  for (uint32_t i = 0; i < n; i++) {
    tr_msg_status_session s;
    tr_msg_status_session_unpack(&m.sessions[i], &s, NULL);
    char path[1024] = "";
    tr_msg_strcpy(path, sizeof(path), s.path);
    printf("  session %" PRIu64 ": owner %s (uid %" PRIu64 "), %" PRIu64
           " processes (%" PRIu64 " connected), %" PRIu64 " threads, %" PRIu64
           " events (%" PRIu64 "/s), %" PRIu64 " dropped, %" PRIu64
           " bytes, age ",
           s.id, user_name(s.owner, name, sizeof(name)), s.owner, s.processes,
           s.members, s.threads, s.events, s.events_per_s, s.dropped, s.bytes);
    print_duration(s.age_ns);
    /* The path is what the session's client said: it may hold anything,
     * terminal escapes included. */
    fputs(", path as given by its client: ", stdout);
    if (path[0] != '\0')
      print_escaped(path);
    else
      fputs("(none)", stdout);
    putchar('\n');
  }
}

/* Sends `type` with an empty map and waits for `want` into *reply (which
 * the caller destroys, whatever the result); the daemon's refusal text goes
 * to err. */
static int ctl_request(int fd, uint16_t type, uint16_t want,
                       msgpack_unpacked *reply, char *err, size_t errlen) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  tr_msg_empty_pack(&pk);
  msgpack_unpacked_init(reply);
  int rc = tr_conn_request(fd, type, &sb, NULL, 0, want, reply,
                           TR_CONN_TIMEOUT_MS, err, errlen);
  msgpack_sbuffer_destroy(&sb);
  return rc;
}

int tr_cmd_status(int argc, char **argv) {
  ctl_opts o;
  int rc = parse(argc, argv, "status", true, status_usage, &o);
  if (rc != 0) return rc < 0 ? 2 : 0;
  int fd = ctl_connect("status", o.socket);
  if (fd < 0) return 1;
  msgpack_unpacked reply;
  char err[256] = "";
  rc = ctl_request(fd, TR_MSG_STATUS, TR_MSG_STATUS_REPLY, &reply, err,
                   sizeof(err));
  close(fd);
  if (rc < 0 || reply.data.type != MSGPACK_OBJECT_MAP) {
    fprintf(stderr, "traced status: the daemon at %s did not answer (%s)\n",
            o.socket, err[0] ? err : strerror(rc < 0 ? -rc : EPROTO));
    msgpack_unpacked_destroy(&reply);
    return 1;
  }
  if (o.json) {
    json_value(&reply.data);
    putchar('\n');
  } else {
    print_status(&reply.data);
  }
  msgpack_unpacked_destroy(&reply);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- stop ---------------------------------------------------------------- */

/* Whether pid has exited (gone, or a zombie its parent has not reaped). */
static bool exited(long pid) {
  char path[64], buf[512];
  snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
  FILE *f = fopen(path, "re");
  if (f == NULL) return true;
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')');
  return rp == NULL || rp[1] == '\0' || rp[2] == 'Z' || rp[2] == 'X';
}

int tr_cmd_stop(int argc, char **argv) {
  ctl_opts o;
  int rc = parse(argc, argv, "stop", false, stop_usage, &o);
  if (rc != 0) return rc < 0 ? 2 : 0;
  int fd = ctl_connect("stop", o.socket);
  if (fd < 0) return 1;
  msgpack_unpacked reply;
  char err[256] = "";
  rc = ctl_request(fd, TR_MSG_STOP, TR_MSG_STOPPING, &reply, err, sizeof(err));
  if (rc < 0) {
    close(fd);
    msgpack_unpacked_destroy(&reply);
    if (rc == -EPERM) {
      fprintf(stderr, "traced stop: refused: %s\n", err[0] ? err : "EPERM");
      return 3;
    }
    fprintf(stderr, "traced stop: the daemon at %s did not answer (%s)\n",
            o.socket, err[0] ? err : strerror(-rc));
    return 1;
  }
  tr_msg_stopping st;
  tr_msg_stopping_unpack(&reply.data, &st, NULL);
  uint64_t pid = st.daemon_pid, sessions = st.sessions;
  msgpack_unpacked_destroy(&reply);
  /* The daemon closes this connection once every session is finalised. */
  msgpack_unpacked_init(&reply);
  rc = tr_conn_recv(fd, &reply, TR_STOP_TIMEOUT_MS, NULL, 0);
  msgpack_unpacked_destroy(&reply);
  close(fd);
  if (rc != -ECONNRESET) {
    fprintf(stderr,
            "traced stop: the daemon (pid %" PRIu64
            ") did not finish stopping (%s)\n",
            pid, rc < 0 ? strerror(-rc) : "unexpected message");
    return 1;
  }
  /* Then it closes its loop and exits; give it a moment to be gone, so a
   * new daemon can start on the socket right after we return. */
  for (int i = 0; i < 1000 && pid > 0 && !exited((long)pid); i++) {
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  printf("traced: stopped the daemon (pid %" PRIu64 ") on %s; %" PRIu64
         " session(s) finalised\n",
         pid, o.socket, sessions);
  return 0;
}

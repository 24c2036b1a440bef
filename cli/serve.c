/* serve.c: `traced serve`: its flags (the limits from one table), the help
 * they print, detaching, signals, and the daemon's event loop. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "cli.h"
#include "common/log.h"
#include "daemon/server.h"
#include "libclient/src/options.h"
#include "privdrop.h"
#include "proto/sockpath.h"
#include "proto/traced_proto.h"
#include "serveos.h"

/* ---- the limit flags ----------------------------------------------------- */

/* One flag per tr_limits field: its parsing, the values it accepts and its
 * line in the help all come from this table.  A field is 32 or 64 bits
 * wide; a 32-bit one keeps the low bits of a value above UINT32_MAX. */
typedef struct limit_flag {
  const char *name;  /* the long option, without "--" */
  const char *arg;   /* its argument's name in the help */
  size_t offset;     /* the field in tr_limits */
  size_t size;       /* sizeof the field */
  uint64_t min, max; /* the values accepted */
  bool zero_is_none; /* 0 means no limit (stored as UINT64_MAX) */
  const char *bad;   /* the error: "--NAME: 'VALUE' is not <bad>" */
  const char *help;  /* later lines are indented under the first */
} limit_flag;

/* Designates .offset and .size; the members after them follow in order. */
#define FIELD(f) \
  .offset = offsetof(tr_limits, f), .size = sizeof(((tr_limits *)0)->f)
#define POSITIVE "a positive number"
/* The `bad` of a flag whose value is a size, read as `traced run
 * --max-size` reads one (100M, 2G). */
#define SIZE_FLAG NULL

static const limit_flag limit_flags[] = {
    {"max-conns-per-uid", "N", FIELD(conns_per_uid), 1, UINT32_MAX, false,
     POSITIVE, "open connections per user (1024)"},
    {"max-conns", "N", FIELD(conns_max), 1, UINT32_MAX, false, POSITIVE,
     "open connections in all (16384)"},
    {"max-sessions-per-uid", "N", FIELD(sessions_per_uid), 1, UINT32_MAX, false,
     POSITIVE, "open sessions per user (64)"},
    {"max-ring-slots", "N", FIELD(ring_slots_max), 1, UINT32_MAX, false,
     POSITIVE, "largest ring, in 16-byte slots (16777216)"},
    {"max-arena-bytes", "N", FIELD(arena_bytes_max), 1, UINT32_MAX, false,
     POSITIVE, "largest string table (268435456)"},
    {"max-rings-per-process", "N", FIELD(rings_per_proc), 1, UINT32_MAX, false,
     POSITIVE, "threads recording at once per process\n(4096)"},
    {"max-rings-per-uid", "N", FIELD(rings_per_uid), 1, UINT32_MAX, false,
     POSITIVE, "rings mapped at once per user (8192)"},
    {"max-ring-bytes-per-uid", "N", FIELD(ring_bytes_per_uid), 1, UINT64_MAX,
     false, POSITIVE, "bytes of rings mapped per user (4 GiB)"},
    {"max-open-calls-per-uid", "N", FIELD(open_calls_per_uid), 1, UINT64_MAX,
     false, POSITIVE, "open calls tracked per user, 16 bytes\neach (16777216)"},
    /* The protocol's own bounds: a frame under 4 KiB could not carry a
     * HELLO with a long command line, one over 64 KiB is never sent. */
    {"max-frame-bytes", "N", FIELD(frame_bytes_max), 4096, TR_FRAME_MAX_PAYLOAD,
     false, "a number from 4096 to 65536",
     "largest control message (4096..65536,\n65536)"},
    /* The timeout is multiplied by 1000 into a 32-bit count of ms. */
    {"hello-timeout", "SECONDS", FIELD(hello_timeout_s), 1, UINT_MAX / 1000u,
     false, "a positive number of seconds",
     "drop a connection that sends no HELLO\nwithin this long (30)"},
    {"max-record-rate-per-uid", "N", FIELD(record_rate_per_uid), 0, UINT64_MAX,
     true, "a number (0: no limit)",
     "ring records drained per second per\nuser, 0: none (system mode "
     "4000000,\nprivate none); beyond it the user's\nproducers drop and "
     "count in its trace"},
    {"max-size", "SIZE", FIELD(trace_bytes_max), 0, UINT64_MAX, false,
     SIZE_FLAG,
     "bound every trace to SIZE bytes (100M,\n2G; 0: none, the default);"
     " a client's\nsmaller --max-size holds"},
};
#define NLIMITS (sizeof(limit_flags) / sizeof(limit_flags[0]))

/* Sets the limit `l` names from the flag's argument `s`; prints why and
 * returns -EINVAL when s is not a number within the flag's bounds. */
static int set_limit(tr_limits *limits, const limit_flag *l, const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (l->bad == SIZE_FLAG) {
    char why[160];
    uint64_t bytes;
    if (tr_option_parse(&tr_options[TR_OPTION_MAX_SIZE], s, &bytes, why,
                        sizeof(why)) < 0) {
      fprintf(stderr, "traced serve: --%s: '%s' is %s\n", l->name, s, why);
      return -EINVAL;
    }
    v = bytes;
  } else if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
             v < l->min || v > l->max) {
    fprintf(stderr, "traced serve: --%s: '%s' is not %s\n", l->name, s, l->bad);
    return -EINVAL;
  }
  uint64_t value = v == 0 && l->zero_is_none ? UINT64_MAX : (uint64_t)v;
  char *field = (char *)limits + l->offset;
  if (l->size == sizeof(uint32_t)) {
    uint32_t narrow = (uint32_t)value;
    memcpy(field, &narrow, sizeof(narrow));
  } else {
    memcpy(field, &value, sizeof(value));
  }
  return 0;
}

static void serve_usage(FILE *f) {
  fputs(
      "usage: traced serve [--socket PATH]\n"
      "                    [--system [--group NAME] [--user "
      "NAME|--allow-root]]\n"
      "                    [--idle-exit SECONDS] [--daemon] [--threads N]\n"
      "                    [--log-file PATH] [--verbose|--quiet] [limits]\n"
      "\n"
      "  --socket PATH        listen here (default: " TR_SYSTEM_SOCKET
      "\n"
      "                       with --system, else $TRACED_SOCKET, else the\n"
      "                       per-user socket, its directory created 0700)\n"
      "  --system             one daemon for every local user: the socket\n"
      "                       is 0666 in a 0755 directory; sessions stay\n"
      "                       their creator's (kernel credentials)\n"
      "  --group NAME         with --system: only this group may connect\n"
      "                       (socket 0660, owned by the group)\n"
      "  --user NAME          with --system, started as root: serve as this\n"
      "                       user (default: " TR_SERVICE_USER
      "; docs/service.md)\n"
      "  --allow-root         with --system: keep serving as root (its\n"
      "                       writes bypass users' quotas: not advised)\n"
      "  --idle-exit SECONDS  exit after this long with no connection and no\n"
      "                       session (default 0: never)\n"
      "  --daemon             detach once listening; logs go to --log-file\n"
      "                       (default: the socket path + \".log\")\n"
      "  --threads N          drain workers: threads that empty the rings\n"
      "                       and format the events (default: one per CPU;\n"
      "                       1..256, docs/pipeline.md)\n"
      "  --log-file PATH      append log lines to PATH instead of stderr\n"
      "  -v, --verbose        log connections and handshakes too\n"
      "  -q, --quiet          log only warnings and errors\n"
      "\n"
      "limits (a peer over one gets an error naming it; see "
      "docs/hostile.md):\n",
      f);
  for (size_t i = 0; i < NLIMITS; i++) {
    const limit_flag *l = &limit_flags[i];
    char flag[64];
    snprintf(flag, sizeof(flag), "--%s %s", l->name, l->arg);
    fprintf(f, "  %-26s ", flag);
    /* A help text's later lines line up under its first. */
    for (const char *p = l->help; *p != '\0'; p++) {
      fputc(*p, f);
      if (*p == '\n') fprintf(f, "%29s", "");
    }
    fputc('\n', f);
  }
  fputs(
      "\n"
      "Started by systemd with one listening socket (LISTEN_FDS=1), it\n"
      "serves that socket.\n"
      "\n"
      "  --clock auto|monotonic     auto (default): producers on a host with\n"
      "                             an invariant TSC that the kernel uses as\n"
      "                             its clocksource record raw TSC ticks,\n"
      "                             which the daemon converts to\n"
      "                             CLOCK_MONOTONIC; monotonic: they call\n"
      "                             clock_gettime (docs/clock.md)\n"
      "\n"
      "SIGINT/SIGTERM finalise every open session and exit 0.\n",
      f);
}

/* ---- the daemon ---------------------------------------------------------- */

/* The watchers of the requests to stop (serveos.h's signals); each
 * carries the server, set once it exists. */
typedef struct stop_watch {
  uv_signal_t h[TR_SERVEOS_NSIGNALS];
  int n;
  tr_server *srv;
} stop_watch;

static void on_signal(uv_signal_t *h, int signum) {
  stop_watch *w = h->data;
  const char *name = "?";
  for (const tr_serveos_signal *s = tr_serveos_stop_signals; s->name; s++)
    if (s->signum == signum) name = s->name;
  tr_log(TR_LOG_INFO, "event=signal signal=%s", name);
  if (w->srv != NULL) tr_server_stop(w->srv);
}

/* Starts the watchers on `loop`; they do not keep the loop alive. */
static void stop_watch_start(uv_loop_t *loop, stop_watch *w) {
  w->srv = NULL;
  w->n = 0;
  for (const tr_serveos_signal *s = tr_serveos_stop_signals; s->name; s++) {
    uv_signal_t *h = &w->h[w->n++];
    uv_signal_init(loop, h);
    h->data = w;
    uv_signal_start(h, on_signal, s->signum);
    uv_unref((uv_handle_t *)h);
  }
}

/* Closes the watchers (their memory is free once the loop ran). */
static void stop_watch_close(stop_watch *w) {
  for (int i = 0; i < w->n; i++) uv_close((uv_handle_t *)&w->h[i], NULL);
  w->n = 0;
}

static int parse_seconds(const char *s, unsigned *out) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
      v > UINT_MAX / 1000u)
    return -1;
  *out = (unsigned)v;
  return 0;
}

/* Option values past any character: OPT_LIMIT + i is limit_flags[i].
 * Each limit has a value of its own so that getopt_long still reports an
 * ambiguous abbreviation (--max-ring) instead of picking one. */
enum {
  OPT_CLOCK = 256,
  OPT_THREADS = 257,
  OPT_USER = 258,
  OPT_ALLOW_ROOT = 259,
  OPT_LIMIT = 512
};

static const struct option fixed_opts[] = {
    {"socket", required_argument, NULL, 's'},
    {"idle-exit", required_argument, NULL, 'i'},
    {"daemon", no_argument, NULL, 'd'},
    {"log-file", required_argument, NULL, 'l'},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"system", no_argument, NULL, 'S'},
    {"group", required_argument, NULL, 'g'},
    {"clock", required_argument, NULL, OPT_CLOCK},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"user", required_argument, NULL, OPT_USER},
    {"allow-root", no_argument, NULL, OPT_ALLOW_ROOT},
};
#define NFIXED (sizeof(fixed_opts) / sizeof(fixed_opts[0]))

int tr_cmd_serve(int argc, char **argv) {
  struct option opts[NFIXED + NLIMITS + 1];
  memcpy(opts, fixed_opts, sizeof(fixed_opts));
  for (size_t i = 0; i < NLIMITS; i++)
    opts[NFIXED + i] = (struct option){limit_flags[i].name, required_argument,
                                       NULL, OPT_LIMIT + (int)i};
  opts[NFIXED + NLIMITS] = (struct option){NULL, 0, NULL, 0};
  const char *socket_path = NULL, *log_file = NULL, *group = NULL, *user = NULL;
  bool allow_root = false;
  unsigned idle_exit = 0, threads = 0;
  tr_limits limits = {0};
  bool detach = false, system_mode = false, no_tsc = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+vqh", opts, NULL)) != -1) {
    if (c >= OPT_LIMIT && c < OPT_LIMIT + (int)NLIMITS) {
      if (set_limit(&limits, &limit_flags[c - OPT_LIMIT], optarg) < 0) {
        serve_usage(stderr);
        return 2;
      }
      continue;
    }
    switch (c) {
      case 's':
        socket_path = optarg;
        break;
      case 'i':
        if (parse_seconds(optarg, &idle_exit) < 0) {
          fprintf(stderr,
                  "traced serve: --idle-exit: '%s' is not a number of "
                  "seconds\n",
                  optarg);
          serve_usage(stderr);
          return 2;
        }
        break;
      case 'd':
        detach = true;
        break;
      case 'l':
        log_file = optarg;
        break;
      case 'v':
        tr_log_set_level(TR_LOG_DEBUG);
        break;
      case 'q':
        tr_log_set_level(TR_LOG_WARN);
        break;
      case 'h':
        serve_usage(stdout);
        return 0;
      case 'S':
        system_mode = true;
        break;
      case 'g':
        group = optarg;
        break;
      case OPT_USER:
        user = optarg;
        break;
      case OPT_ALLOW_ROOT:
        allow_root = true;
        break;
      case OPT_THREADS: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(optarg, &end, 10);
        if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' ||
            v < 1 || v > TR_THREADS_MAX) {
          fprintf(stderr,
                  "traced serve: --threads: '%s' is not a number of threads "
                  "between 1 and %u\n",
                  optarg, TR_THREADS_MAX);
          serve_usage(stderr);
          return 2;
        }
        threads = (unsigned)v;
        break;
      }
      case OPT_CLOCK:
        if (strcmp(optarg, "monotonic") == 0) {
          no_tsc = true;
        } else if (strcmp(optarg, "auto") != 0) {
          fprintf(stderr,
                  "traced serve: --clock: '%s' is not auto or monotonic\n",
                  optarg);
          serve_usage(stderr);
          return 2;
        }
        break;
      default:
        fprintf(stderr, "traced serve: bad option '%s'\n", argv[optind - 1]);
        serve_usage(stderr);
        return 2;
    }
  }
  if (optind != argc) {
    fprintf(stderr, "traced serve: unexpected argument '%s'\n", argv[optind]);
    serve_usage(stderr);
    return 2;
  }

  tr_server_opts so = {.limits = limits,
                       .system = system_mode,
                       .idle_exit_s = idle_exit,
                       .threads = threads,
                       .activated_fd = -1};
  if (group != NULL) {
    if (!system_mode) {
      fprintf(stderr, "traced serve: --group needs --system\n");
      serve_usage(stderr);
      return 2;
    }
    if (tr_serveos_group(group, &so.group) < 0) {
      serve_usage(stderr);
      return 2;
    }
    so.has_group = true;
  }
  tr_privdrop priv;
  if (tr_privdrop_resolve(system_mode, user, allow_root, &priv) < 0) return 1;
  /* systemd socket activation: the socket is already listening. */
  so.activated_fd = tr_serveos_activated();
  if (so.activated_fd == -EINVAL) return 1;

  char def[PATH_MAX];
  if (socket_path == NULL && system_mode) {
    /* The system daemon's place is fixed; a user's $TRACED_SOCKET does
     * not move it. */
    socket_path = TR_SYSTEM_SOCKET;
  } else if (socket_path == NULL) {
    if (tr_sockpath_default(def, sizeof(def)) < 0) {
      fprintf(stderr, "traced serve: the default socket path is too long\n");
      return 1;
    }
    socket_path = def;
  }
  /* The per-user location gets its private directory however it was named
   * (`traced run` passes it with --socket when it starts a daemon). */
  char own[PATH_MAX];
  bool make_dir = !system_mode && so.activated_fd < 0 &&
                  tr_sockpath_user(own, sizeof(own)) == 0 &&
                  strcmp(own, socket_path) == 0;
  char logdef[PATH_MAX + 8];
  if (detach && log_file == NULL) {
    tr_serveos_default_log(socket_path, logdef, sizeof(logdef));
    log_file = logdef;
  }

  int ready_fd = -1;
  /* The default directory first: the daemon's log may go there. */
  if (tr_serveos_prepare(socket_path, make_dir) < 0) return 1;
  if (detach)
    ready_fd = tr_serveos_daemonize(log_file, socket_path);
  else if (log_file != NULL && tr_serveos_open_log(log_file) < 0)
    return 1;
  /* Root's system daemon becomes its service user before it listens: the
   * log stays open, the socket is bound by the service user. */
  if (tr_privdrop_apply(&priv, socket_path, so.has_group, so.group,
                        so.activated_fd >= 0) < 0) {
    tr_serveos_ready(ready_fd, '1');
    return 1;
  }

  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc < 0) {
    tr_log(TR_LOG_ERROR,
           "event=error reason=\"cannot create the event loop: %s\"",
           uv_strerror(rc));
    tr_serveos_ready(ready_fd, '1');
    return 1;
  }
  tr_server *srv = NULL;
  stop_watch sig;
  so.socket_path = socket_path;
  so.make_dir = make_dir;
  so.no_tsc = no_tsc;
  /* The signal watchers come first: once the socket accepts, a client may
   * stop us at once (SIGTERM before the handler exists would kill the
   * daemon instead of finalising).  A signal is dispatched by uv_run, so
   * the server exists by then.  They do not keep the loop alive: it ends
   * when the server has closed its handles (signal, or --idle-exit). */
  stop_watch_start(&loop, &sig);
  rc = tr_server_start(&loop, &so, &srv);
  sig.srv = srv;
  if (rc < 0) {
    if (rc == -EADDRINUSE && !detach)
      fprintf(stderr, "traced serve: a daemon is already running on %s\n",
              socket_path);
    tr_serveos_ready(ready_fd, rc == -EADDRINUSE ? 'A' : '1');
    stop_watch_close(&sig);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  tr_serveos_ready(ready_fd, '0');

  uv_run(&loop, UV_RUN_DEFAULT);

  stop_watch_close(&sig);
  uv_run(&loop, UV_RUN_DEFAULT);
  tr_server_free(srv);
  rc = uv_loop_close(&loop);
  if (rc < 0)
    tr_log(TR_LOG_WARN,
           "event=error reason=\"event loop not closed cleanly: %s\"",
           uv_strerror(rc));
  uv_library_shutdown();
  tr_log(TR_LOG_INFO, "event=exit");
  return 0;
}

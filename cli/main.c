/* main.c: the `traced` command line: subcommands, options, and the daemon's
 * event loop with its signal handling. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "cli.h"
#include "common/log.h"
#include "common/version.h"
#include "daemon/listen.h"
#include "daemon/server.h"
#include "libclient/src/client.h"
#include "proto/traced_proto.h"
#include "report/report.h"

static void usage(FILE *f) {
  fputs(
      "usage: traced <command> [options]\n"
      "\n"
      "commands:\n"
      "  run [-o FILE] [--socket PATH] [-q] [--report] [RECORDING OPTIONS]\n"
      "      -- CMD [ARGS...]\n"
      "        trace CMD and every Python process it starts into FILE\n"
      "        (traced run --help lists the recording options)\n"
      "  report [--sort KEY] [--top N] [--pid PID] [--json] FILE\n"
      "        print a trace's profile: per process and overall, each\n"
      "        function's calls, self and total time (like cProfile)\n"
      "  serve [--socket PATH] [--system [--group NAME]] [--idle-exit S]\n"
      "        [--daemon] [--log-file PATH] [--verbose|--quiet] [limits]\n"
      "        run the collector daemon (in the foreground, logging to\n"
      "        stderr, unless --daemon); --system: one daemon for every\n"
      "        user of the machine (traced serve --help for the limits)\n"
      "  status [--socket PATH | --system] [--json]\n"
      "        show the daemon and your sessions (root: every session)\n"
      "  stop [--socket PATH | --system]\n"
      "        finalise every session and stop the daemon (its user and\n"
      "        root only)\n"
      "\n"
      "Each command takes --help.  The manual page is traced(1).\n"
      "\n"
      "options:\n"
      "  -h, --help     show this help and exit\n"
      "  -V, --version  print the version and exit\n"
      "\n"
      "environment:\n"
      "  TRACED_SOCKET  the daemon's socket (default:\n"
      "                 $XDG_RUNTIME_DIR/traced/traced.sock, else\n"
      "                 /tmp/traced-$UID/traced.sock); users of a system\n"
      "                 daemon set " TR_SYSTEM_SOCKET
      "\n"
      "\n"
      "exit status: run: the command's; serve: 0, 1 cannot start;\n"
      "status/stop: 0, 1 no daemon reachable, 3 stop refused; 2 usage\n",
      f);
}

static void serve_usage(FILE *f) {
  fputs(
      "usage: traced serve [--socket PATH] [--system [--group NAME]]\n"
      "                    [--idle-exit SECONDS] [--daemon]\n"
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
      "  --idle-exit SECONDS  exit after this long with no connection and no\n"
      "                       session (default 0: never)\n"
      "  --daemon             detach once listening; logs go to --log-file\n"
      "                       (default: the socket path + \".log\")\n"
      "  --log-file PATH      append log lines to PATH instead of stderr\n"
      "  -v, --verbose        log connections and handshakes too\n"
      "  -q, --quiet          log only warnings and errors\n"
      "  --threads N          drain threads, 1..256 (default: one per CPU):\n"
      "                       they empty the rings and format the events\n"
      "\n"
      "limits (a peer over one gets an error naming it; see docs/hostile.md):\n"
      "  --max-conns-per-uid N      open connections per user (1024)\n"
      "  --max-conns N              open connections in all (16384)\n"
      "  --max-sessions-per-uid N   open sessions per user (64)\n"
      "  --max-ring-slots N         largest ring, in 16-byte slots (16777216)\n"
      "  --max-arena-bytes N        largest string table (268435456)\n"
      "  --max-rings-per-process N  threads recording at once per process\n"
      "                             (4096)\n"
      "  --max-rings-per-uid N      rings mapped at once per user (8192)\n"
      "  --max-ring-bytes-per-uid N bytes of rings mapped per user (4 GiB)\n"
      "  --max-open-calls-per-uid N open calls tracked per user, 16 bytes\n"
      "                             each (16777216)\n"
      "  --max-frame-bytes N        largest control message (4096..65536,\n"
      "                             65536)\n"
      "  --hello-timeout SECONDS    drop a connection that sends no HELLO\n"
      "                             within this long (30)\n"
      "  --max-record-rate-per-uid N ring records drained per second per\n"
      "                             user, 0: none (system mode 4000000,\n"
      "                             private none); beyond it the user's\n"
      "                             producers drop and count in its trace\n"
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

/* ---- serve ------------------------------------------------------------------
 */

typedef struct serve_state {
  tr_server *srv;
  uv_signal_t sigint;
  uv_signal_t sigterm;
} serve_state;

static void on_signal(uv_signal_t *h, int signum) {
  serve_state *st = h->data;
  tr_log(TR_LOG_INFO, "event=signal signal=%s",
         signum == SIGINT ? "SIGINT" : "SIGTERM");
  tr_server_stop(st->srv);
}

static int open_log(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) {
    fprintf(stderr, "traced serve: cannot open log file %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  if (dup2(fd, STDERR_FILENO) < 0) {
    close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

/* Detaches (fork, setsid, fork) with stdin/stdout on /dev/null and stderr
 * appended to log_path.  The original process waits on a pipe until the
 * daemon reports one status byte: '0' listening, 'A' another daemon serves
 * the socket, anything else (or nothing) a failure described in the log.
 * Returns the pipe's write end in the daemon; does not return in the
 * original process. */
static int daemonize(const char *log_path, const char *socket_path) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    perror("traced serve: pipe");
    exit(1);
  }
  pid_t pid = fork();
  if (pid < 0) {
    perror("traced serve: fork");
    exit(1);
  }
  if (pid > 0) {
    close(p[1]);
    char c = '1';
    ssize_t n;
    do {
      n = read(p[0], &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && c == '0') exit(0);
    if (n == 1 && c == 'A')
      fprintf(stderr, "traced serve: a daemon is already running on %s\n",
              socket_path);
    else
      fprintf(stderr, "traced serve: the daemon failed to start; see %s\n",
              log_path);
    exit(1);
  }
  close(p[0]);
  if (setsid() < 0) _exit(1);
  pid = fork();
  if (pid < 0) _exit(1);
  if (pid > 0) _exit(0);
  if (chdir("/") < 0) _exit(1);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null >= 0) {
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    close(null);
  }
  if (open_log(log_path) < 0) _exit(1);
  return p[1];
}

static void report_ready(int fd, char status) {
  if (fd < 0) return;
  ssize_t n;
  do {
    n = write(fd, &status, 1);
  } while (n < 0 && errno == EINTR);
  close(fd);
}

/* The per-user default socket, ignoring $TRACED_SOCKET (the same rule as
 * tr_client_default_socket otherwise). */
static int per_user_socket(char *buf, size_t size) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  int n;
  if (xdg != NULL && xdg[0] == '/')
    n = snprintf(buf, size, "%s/traced/traced.sock", xdg);
  else
    n = snprintf(buf, size, "/tmp/traced-%u/traced.sock", (unsigned)getuid());
  return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
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

static int cmd_serve(int argc, char **argv) {
  static const struct option opts[] = {
      {"socket", required_argument, NULL, 's'},
      {"idle-exit", required_argument, NULL, 'i'},
      {"daemon", no_argument, NULL, 'd'},
      {"log-file", required_argument, NULL, 'l'},
      {"verbose", no_argument, NULL, 'v'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {"max-conns-per-uid", required_argument, NULL, 1000},
      {"max-conns", required_argument, NULL, 1001},
      {"max-sessions-per-uid", required_argument, NULL, 1002},
      {"max-ring-slots", required_argument, NULL, 1003},
      {"max-arena-bytes", required_argument, NULL, 1004},
      {"max-rings-per-process", required_argument, NULL, 1005},
      {"max-rings-per-uid", required_argument, NULL, 1006},
      {"max-ring-bytes-per-uid", required_argument, NULL, 1007},
      {"max-open-calls-per-uid", required_argument, NULL, 1008},
      {"max-frame-bytes", required_argument, NULL, 1009},
      {"hello-timeout", required_argument, NULL, 1010},
      {"max-record-rate-per-uid", required_argument, NULL, 1011},
      {"system", no_argument, NULL, 'S'},
      {"group", required_argument, NULL, 'g'},
      {"clock", required_argument, NULL, 1100},
      {"threads", required_argument, NULL, 1101},
      {NULL, 0, NULL, 0},
  };
  const char *socket_path = NULL, *log_file = NULL, *group = NULL;
  unsigned idle_exit = 0;
  tr_limits limits = {0};
  bool detach = false, system_mode = false, no_tsc = false;
  unsigned threads = 0;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "+vqh", opts, NULL)) != -1) {
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
      case 1011: {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(optarg, &end, 10);
        if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
          fprintf(stderr,
                  "traced serve: --max-record-rate-per-uid: '%s' is not a "
                  "number (0: no limit)\n",
                  optarg);
          serve_usage(stderr);
          return 2;
        }
        limits.record_rate_per_uid = v == 0 ? UINT64_MAX : v;
        break;
      }
      case 1010:
        if (parse_seconds(optarg, &limits.hello_timeout_s) < 0 ||
            limits.hello_timeout_s == 0) {
          fprintf(stderr,
                  "traced serve: --hello-timeout: '%s' is not a positive "
                  "number of seconds\n",
                  optarg);
          serve_usage(stderr);
          return 2;
        }
        break;
      case 1100:
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
      case 1101: {
        char *end;
        errno = 0;
        unsigned long v = strtoul(optarg, &end, 10);
        if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' ||
            v < 1 || v > TR_THREADS_MAX) {
          fprintf(stderr,
                  "traced serve: --threads: '%s' is not a number of drain "
                  "threads from 1 to %u\n",
                  optarg, TR_THREADS_MAX);
          serve_usage(stderr);
          return 2;
        }
        threads = (unsigned)v;
        break;
      }
      case 1000:
      case 1001:
      case 1002:
      case 1003:
      case 1004:
      case 1005:
      case 1006:
      case 1007:
      case 1008:
      case 1009: {
        uint32_t *field[] = {&limits.conns_per_uid,
                             &limits.conns_max,
                             &limits.sessions_per_uid,
                             &limits.ring_slots_max,
                             &limits.arena_bytes_max,
                             &limits.rings_per_proc,
                             &limits.rings_per_uid,
                             NULL,
                             NULL,
                             &limits.frame_bytes_max};
        char *end;
        errno = 0;
        unsigned long long v = strtoull(optarg, &end, 10);
        bool wide = c >= 1007; /* byte and slot budgets are 64-bit */
        if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-' ||
            v == 0 || (!wide && v > UINT32_MAX)) {
          fprintf(stderr, "traced serve: --%s: '%s' is not a positive number\n",
                  opts[c - 1000 + 7].name, optarg);
          serve_usage(stderr);
          return 2;
        }
        if (c == 1007)
          limits.ring_bytes_per_uid = v;
        else if (c == 1008)
          limits.open_calls_per_uid = v;
        else
          *field[c - 1000] = (uint32_t)v;
        break;
      }
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
                       .activated_fd = -1,
                       .threads = threads};
  if (group != NULL) {
    if (!system_mode) {
      fprintf(stderr, "traced serve: --group needs --system\n");
      serve_usage(stderr);
      return 2;
    }
    struct group *gr = getgrnam(group);
    if (gr == NULL) {
      fprintf(stderr, "traced serve: --group: no group named '%s'\n", group);
      serve_usage(stderr);
      return 2;
    }
    so.has_group = true;
    so.group = gr->gr_gid;
  }
  /* systemd socket activation: the socket is already listening. */
  so.activated_fd = tr_listen_activated_fd();
  if (so.activated_fd == -EINVAL) return 1;

  char def[PATH_MAX];
  if (socket_path == NULL && system_mode) {
    /* The system daemon's place is fixed; a user's $TRACED_SOCKET does
     * not move it. */
    socket_path = TR_SYSTEM_SOCKET;
  } else if (socket_path == NULL) {
    if (tr_client_default_socket(def, sizeof(def)) < 0) {
      fprintf(stderr, "traced serve: the default socket path is too long\n");
      return 1;
    }
    socket_path = def;
  }
  /* The per-user location gets its private directory however it was named
   * (`traced run` passes it with --socket when it starts a daemon). */
  char own[PATH_MAX];
  bool make_dir = !system_mode && so.activated_fd < 0 &&
                  per_user_socket(own, sizeof(own)) == 0 &&
                  strcmp(own, socket_path) == 0;
  char logdef[PATH_MAX + 8];
  if (detach && log_file == NULL) {
    snprintf(logdef, sizeof(logdef), "%.*s.log", PATH_MAX - 1, socket_path);
    log_file = logdef;
  }

  /* Writes to the trace files and sockets must never kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
  int ready_fd = -1;
  /* The default directory first: the daemon's log may go there. */
  if (make_dir && tr_listen_make_private_dir(socket_path) < 0) return 1;
  if (detach)
    ready_fd = daemonize(log_file, socket_path);
  else if (log_file != NULL && open_log(log_file) < 0)
    return 1;

  uv_loop_t loop;
  int rc = uv_loop_init(&loop);
  if (rc < 0) {
    tr_log(TR_LOG_ERROR,
           "event=error reason=\"cannot create the event loop: %s\"",
           uv_strerror(rc));
    report_ready(ready_fd, '1');
    return 1;
  }
  serve_state st;
  memset(&st, 0, sizeof(st));
  so.socket_path = socket_path;
  so.make_dir = make_dir;
  so.no_tsc = no_tsc;
  /* The signal watchers come first: once the socket accepts, a client may
   * stop us at once (SIGTERM before the handler exists would kill the
   * daemon instead of finalising).  A signal is dispatched by uv_run, so
   * the server exists by then.  They do not keep the loop alive: it ends
   * when the server has closed its handles (signal, or --idle-exit). */
  uv_signal_init(&loop, &st.sigint);
  uv_signal_init(&loop, &st.sigterm);
  st.sigint.data = st.sigterm.data = &st;
  uv_signal_start(&st.sigint, on_signal, SIGINT);
  uv_signal_start(&st.sigterm, on_signal, SIGTERM);
  uv_unref((uv_handle_t *)&st.sigint);
  uv_unref((uv_handle_t *)&st.sigterm);
  rc = tr_server_start(&loop, &so, &st.srv);
  if (rc < 0) {
    if (rc == -EADDRINUSE && !detach)
      fprintf(stderr, "traced serve: a daemon is already running on %s\n",
              socket_path);
    report_ready(ready_fd, rc == -EADDRINUSE ? 'A' : '1');
    uv_close((uv_handle_t *)&st.sigint, NULL);
    uv_close((uv_handle_t *)&st.sigterm, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 1;
  }
  report_ready(ready_fd, '0');

  uv_run(&loop, UV_RUN_DEFAULT);

  uv_close((uv_handle_t *)&st.sigint, NULL);
  uv_close((uv_handle_t *)&st.sigterm, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  tr_server_free(st.srv);
  rc = uv_loop_close(&loop);
  if (rc < 0)
    tr_log(TR_LOG_WARN,
           "event=error reason=\"event loop not closed cleanly: %s\"",
           uv_strerror(rc));
  uv_library_shutdown();
  tr_log(TR_LOG_INFO, "event=exit");
  return 0;
}

/* ---- run --------------------------------------------------------------------
 */

/* TODO(lead): `traced run` lives in cli/run.c (it needs libclient's
 * connection helpers); this only dispatches to it. */
static int cmd_run(int argc, char **argv) { return tr_cmd_run(argc, argv); }

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
      strcmp(cmd, "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
    printf("traced %s (protocol %u)\n", TRACED_VERSION, TR_PROTO_VERSION);
    return 0;
  }
  if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 1, argv + 1);
  if (strcmp(cmd, "run") == 0) return cmd_run(argc - 1, argv + 1);
  if (strcmp(cmd, "status") == 0) return tr_cmd_status(argc - 1, argv + 1);
  if (strcmp(cmd, "stop") == 0) return tr_cmd_stop(argc - 1, argv + 1);
  if (strcmp(cmd, "report") == 0) return tr_cmd_report(argc - 1, argv + 1);
  fprintf(stderr, "traced: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}

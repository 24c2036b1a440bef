/* run.c: `traced run`: create a session, run a command with the
 * environment that makes its Python processes join it, wait for the
 * command and for the daemon to finalise the file, report, and exit with
 * the command's status. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "libclient/src/conn.h"
#include "proto/sockpath.h"
#include "report/report.h"
#include "runcmd.h"
#include "runopts.h"

/* How long a private daemon started by `traced run` stays up with nothing
 * to do (documented in the README). */
#define TR_AUTOSTART_IDLE_SECONDS "300"
#define TR_END_TIMEOUT_MS (10 * 60 * 1000)
/* sun_path's size. */
#define TR_SOCKET_MAX 108

static void run_usage(FILE *out) {
  fprintf(out,
          "usage: traced run [OPTIONS] [--] CMD [ARGS...]\n"
          "       traced run [OPTIONS] SCRIPT.py [ARGS...]\n"
          "       traced run [OPTIONS] -m MODULE [ARGS...]\n"
          "\n"
          "Run CMD with every Python process it starts traced into FILE\n"
          "(default: traced-YYYYmmdd-HHMMSS.json in the current directory).\n"
          "Options end at the first word that is not one (or at --): the\n"
          "rest is the command and its own arguments.  SCRIPT.py and -m\n"
          "MODULE run with the Python traced is installed in ($TRACED_PYTHON,\n"
          "else python3).\n"
          "Starts a private daemon if none listens on the socket; exits with\n"
          "CMD's exit status (128+N if CMD was killed by signal N).\n"
          "\n"
          "  -o, --output FILE   trace file to write\n"
          "      --socket PATH   daemon socket (default: $TRACED_SOCKET,\n"
          "                      $XDG_RUNTIME_DIR/traced/traced.sock or\n"
          "                      /tmp/traced-$UID/traced.sock)\n"
          "  -m MODULE           run the module (like python -m MODULE)\n"
          "  -q, --quiet         no summary line\n"
          "      --report        when the trace is complete, print its\n"
          "                      profile (traced report FILE) on stderr\n"
          "\n"
          "Recording options (docs/options.md); each sets the environment\n"
          "variable shown, which every traced process reads, so they reach\n"
          "child processes too:\n");
  tr_runopts_usage(out);
  fprintf(out,
          "\nDUR is 500ns, 10us, 2ms, 1s... (a plain number is in us).\n"
          "--include-files and --exclude-files may be repeated or hold a\n"
          "':'-separated list; relative paths start at the current\n"
          "directory.\n");
}

/* Starts `traced serve --daemon` on `socket` and waits until it is ready
 * (the serving process detaches; the one we wait for exits when the socket
 * is listening). */
static int autostart(const char *socket) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n < 0) return -errno;
  self[n] = '\0';
  pid_t pid = fork();
  if (pid < 0) return -errno;
  if (pid == 0) {
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      dup2(devnull, STDOUT_FILENO);
    }
    execl(self, self, "serve", "--daemon", "--idle-exit",
          TR_AUTOSTART_IDLE_SECONDS, "--socket", socket, (char *)NULL);
    _exit(127);
  }
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -errno;
  return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -ECHILD;
}

/* A private daemon is started only where it is this user's to start: never
 * on the system socket, nor in a directory another user owns (a shared
 * daemon's place: if it is down, the program runs untraced instead of
 * under a daemon nobody else can reach).  docs/service.md. */
static bool private_place(const char *socket) {
  if (strcmp(socket, TR_SYSTEM_SOCKET) == 0) return false;
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", socket);
  char *slash = strrchr(dir, '/');
  if (slash == NULL) return true; /* in the current directory */
  if (slash == dir)
    slash[1] = '\0';
  else
    *slash = '\0';
  struct stat st;
  return stat(dir, &st) < 0 || st.st_uid == getuid();
}

/* A control connection: HELLO as "control".  Returns the fd or -errno;
 * a refusal (-EPERM) leaves its reason in `why` (TR_CONN_WHY_MAX). */
static int control_connect(const char *socket, bool *started, char *why) {
  int fd = tr_conn_connect(socket, why, TR_CONN_WHY_MAX);
  const char *no_auto = getenv("TRACED_NO_AUTOSTART");
  bool may_start =
      (no_auto == NULL || strcmp(no_auto, "1") != 0) && private_place(socket);
  /* A socket whose directory is missing (`why` says so) cannot be served
   * either. */
  if ((fd == -ENOENT || fd == -ECONNREFUSED) && may_start && why[0] == '\0') {
    if (autostart(socket) == 0) {
      *started = true;
      fd = tr_conn_connect(socket, why, TR_CONN_WHY_MAX);
    }
  }
  if (fd < 0) return fd;
  int rc =
      tr_conn_hello(fd, "traced run", -1, 0, false, NULL, why, TR_CONN_WHY_MAX);
  if (rc < 0) {
    close(fd);
    return rc;
  }
  return fd;
}

static volatile sig_atomic_t g_child = 0;

static void forward_signal(int sig) {
  if (g_child > 0) kill(g_child, sig);
}

/* Runs argv as a child with `token` exported (NULL: untraced) and returns
 * its wait status. */
static int run_child(char **argv, const char *socket, const char *token) {
  pid_t pid = fork();
  if (pid < 0) {
    fprintf(stderr, "traced: cannot fork: %s\n", strerror(errno));
    return -1;
  }
  if (pid == 0) {
    signal(SIGINT, SIG_DFL);
    signal(SIGQUIT, SIG_DFL);
    if (token != NULL) {
      char pid[24];
      snprintf(pid, sizeof(pid), "%d", (int)getpid());
      setenv(TR_ENV_ROOT_PID, pid, 1);
      setenv(TR_ENV_SESSION, token, 1);
      setenv(TR_ENV_SOCKET, socket, 1);
    }
    unsetenv(TR_ENV_OUTPUT);
    execvp(argv[0], argv);
    fprintf(stderr, "traced: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  g_child = pid;
  /* Like a shell: the terminal's ^C and ^\ go to the child's process
   * group; we keep waiting for it.  TERM and HUP are passed on. */
  struct sigaction ign = {.sa_handler = SIG_IGN},
                   fwd = {.sa_handler = forward_signal};
  sigaction(SIGINT, &ign, NULL);
  sigaction(SIGQUIT, &ign, NULL);
  sigaction(SIGTERM, &fwd, NULL);
  sigaction(SIGHUP, &fwd, NULL);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      status = 0;
      break;
    }
  }
  g_child = 0;
  return status;
}

static int exit_code(int status) {
  if (status < 0) return 127;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

static int run_cmd(char **cmd, const char *output, char *socket, bool quiet,
                   bool report, tr_runopts *ro);

static int run_main(int argc, char **argv, const struct option *opts,
                    tr_runopts *ro) {
  const char *output = NULL;
  char socket[TR_SOCKET_MAX] = "";
  bool quiet = false, report = false;
  const char *module = NULL;
  optind = 1;
  int c;
  /* "+": stop at the first non-option, which starts the command (like
   * time, nice or strace); "--" is accepted before it.  -m MODULE ends
   * the options too: the rest are the module's arguments. */
  while (module == NULL &&
         (c = getopt_long(argc, argv, "+o:m:qh", opts, NULL)) != -1) {
    if (c >= TR_RUNOPT_BASE) {
      if (tr_runopts_take(ro, c, optarg) < 0) {
        run_usage(stderr);
        return 2;
      }
      continue;
    }
    switch (c) {
      case 'o':
        output = optarg;
        break;
      case 's':
        if (strlen(optarg) >= TR_SOCKET_MAX) {
          fprintf(stderr, "traced run: socket path too long: %s\n", optarg);
          return 2;
        }
        snprintf(socket, TR_SOCKET_MAX, "%s", optarg);
        break;
      case 'm':
        module = optarg;
        break;
      case 'q':
        quiet = true;
        break;
      case 'r':
        report = true;
        break;
      case 'h':
        run_usage(stdout);
        return 0;
      default:
        run_usage(stderr);
        return 2;
    }
  }
  if (optind >= argc && module == NULL) {
    fprintf(stderr, "traced run: no command given\n");
    run_usage(stderr);
    return 2;
  }
  if (output != NULL && output[0] == '\0') {
    fprintf(stderr, "traced run: empty output path\n");
    run_usage(stderr);
    return 2;
  }
  char **cmd = tr_runcmd_build(argc - optind, argv + optind, module);
  if (cmd == NULL) {
    fprintf(stderr, "traced run: out of memory\n");
    return 2;
  }
  int code = run_cmd(cmd, output, socket, quiet, report, ro);
  free(cmd);
  return code;
}

/* Runs `cmd` traced into `output` (NULL: a default name). */
static int run_cmd(char **cmd, const char *output, char *socket, bool quiet,
                   bool report, tr_runopts *ro) {
  char defname[64];
  if (output == NULL) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(defname, sizeof(defname), "traced-%Y%m%d-%H%M%S.json", &tm);
    output = defname;
  }
  if (socket[0] == '\0' && tr_sockpath_default(socket, TR_SOCKET_MAX) < 0) {
    fprintf(stderr, "traced run: socket path too long\n");
    return 2;
  }
  char abspath[PATH_MAX];
  if (output[0] == '/') {
    snprintf(abspath, sizeof(abspath), "%s", output);
  } else {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == NULL) cwd[0] = '\0';
    int n = snprintf(abspath, sizeof(abspath), "%s/%s", cwd, output);
    if (n < 0 || (size_t)n >= sizeof(abspath)) {
      fprintf(stderr, "traced run: output path too long: %s\n", output);
      return 2;
    }
  }

  /* The command's processes read the options from their environment. */
  tr_runopts_apply(ro);
  bool started = false;
  char why[TR_CONN_WHY_MAX] = "";
  int fd = control_connect(socket, &started, why);
  char token[TR_TOKEN_HEX_LEN + 1] = "";
  if (fd < 0) {
    fprintf(stderr,
            "traced: warning: cannot reach the traced daemon at %s (%s); "
            "running untraced\n",
            socket, why[0] ? why : strerror(-fd));
    return exit_code(run_child(cmd, socket, NULL));
  }
  int out_fd = tr_conn_open_output(output);
  if (out_fd < 0) {
    fprintf(stderr, "traced run: cannot write %s: %s\n", output,
            out_fd == -ENXIO    ? "it is a FIFO with no reader; traces are "
                                  "written to regular files only"
            : out_fd == -EINVAL ? "not a regular file; traces are written "
                                  "to regular files only"
                                : strerror(-out_fd));
    close(fd);
    return 2;
  }
  char err[256] = "";
  int rc = tr_conn_session_create(fd, abspath, out_fd, ro->min_duration_ns,
                                  ro->max_size, token, err, sizeof(err));
  if (rc < 0) {
    close(out_fd);
    fprintf(stderr,
            "traced: warning: the daemon refused the session (%s); running "
            "untraced\n",
            err[0] ? err : strerror(-rc));
    close(fd);
    return exit_code(run_child(cmd, socket, NULL));
  }

  int status = run_child(cmd, socket, token);
  traced_summary s;
  bool stopped = false;
  tr_summary_extra x = {0};
  rc = tr_conn_end_session(fd, &s, &x, &stopped, TR_END_TIMEOUT_MS);
  close(fd);
  /* Our copy of the output's descriptor tells whether its name still
   * leads to it: a trace written into a deleted file is lost. */
  struct stat ost;
  if (fstat(out_fd, &ost) == 0 && ost.st_nlink == 0)
    fprintf(stderr,
            "traced: warning: %s was deleted during the run: the trace "
            "written to it is lost\n",
            abspath);
  close(out_fd);
  /* A session nobody joined is never silent, even with -q; said before
   * the summary, which stays the last line. */
  if (rc >= 0 && s.processes == 0) tr_runcmd_explain_empty(cmd, stderr);
  /* Python processes that never joined are named, even with -q: a trace
   * without them must not look complete. */
  char note[1536];
  for (uint32_t i = 0;
       rc >= 0 && tr_summary_unjoined_text(&x, i, note, sizeof(note)); i++)
    fprintf(stderr, "traced: %s\n", note);
  if (rc < 0) {
    fprintf(stderr,
            "traced: warning: the session did not end cleanly (%s); "
            "%s may be incomplete\n",
            strerror(-rc), abspath);
  } else if (!quiet) {
    if (stopped)
      fprintf(stderr,
              "traced: the daemon was stopped during the run: the trace "
              "ends there and the rest of the run was not traced\n");
    tr_runcmd_size_note(s.bytes, s.events, s.path[0] ? s.path : abspath,
                        stderr);
    /* A trace cut short (--max-size, a failed write) says why. */
    char cut[512];
    if (tr_summary_cut_text(&x, cut, sizeof(cut))[0] != '\0')
      fprintf(stderr, "traced: %s: %s\n", s.path[0] ? s.path : abspath, cut);
    /* Appended after the path, so that the line's beginning keeps the
     * shape scripts parse. */
    char shorter[96] = "";
    if (ro->min_duration_ns > 0)
      snprintf(shorter, sizeof(shorter),
               " (%llu calls shorter than --min-duration left out)",
               (unsigned long long)x.filtered);
    fprintf(stderr,
            "traced: %llu processes, %llu threads, %llu events, %llu dropped, "
            "%llu bytes -> %s%s\n",
            (unsigned long long)s.processes, (unsigned long long)s.threads,
            (unsigned long long)s.events, (unsigned long long)s.dropped,
            (unsigned long long)s.bytes, s.path[0] ? s.path : abspath, shorter);
  }
  /* On stderr: stdout belongs to the program.  A report that fails says
   * why and changes nothing else, the exit status included. */
  if (report) tr_report_file(abspath, stderr, stderr, "traced run");
  return exit_code(status);
}

int tr_cmd_run(int argc, char **argv) {
  struct option opts[8 + TR_OPTION_COUNT] = {
      {"output", required_argument, NULL, 'o'},
      {"socket", required_argument, NULL, 's'},
      {"quiet", no_argument, NULL, 'q'},
      {"report", no_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
  };
  tr_runopts_longopts(opts, 5, sizeof(opts) / sizeof(opts[0]));
  tr_runopts ro;
  memset(&ro, 0, sizeof(ro));
  int rc = run_main(argc, argv, opts, &ro);
  tr_runopts_free(&ro);
  return rc;
}

/* run.c: `traced run`: create a session, run a command with the
 * environment that makes its Python processes join it, wait for the
 * command and for the daemon to finalise the file, report, and exit with
 * the command's status. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "common/platform.h"
#include "libclient/src/conn.h"
#include "proto/sockpath.h"
#include "report/report.h"
#include "runcmd.h"
#include "runopts.h"
#include "runproc.h"

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

/* A control connection: HELLO as "control".  Returns the fd or -errno;
 * a refusal (-EPERM) leaves its reason in `why` (TR_CONN_WHY_MAX). */
static int control_connect(const char *socket, bool *started, char *why) {
  int fd = tr_conn_connect(socket, why, TR_CONN_WHY_MAX);
  const char *no_auto = getenv("TRACED_NO_AUTOSTART");
  bool may_start = (no_auto == NULL || strcmp(no_auto, "1") != 0) &&
                   tr_runproc_private_place(socket);
  /* A socket whose directory is missing (`why` says so) cannot be served
   * either. */
  if ((fd == -ENOENT || fd == -ECONNREFUSED) && may_start && why[0] == '\0') {
    if (tr_runproc_autostart(socket, TR_AUTOSTART_IDLE_SECONDS) == 0) {
      *started = true;
      fd = tr_conn_connect(socket, why, TR_CONN_WHY_MAX);
    }
  }
  if (fd < 0) return fd;
  int rc =
      tr_conn_hello(fd, "traced run", -1, 0, false, NULL, why, TR_CONN_WHY_MAX);
  if (rc < 0) {
    tr_conn_close(fd);
    return rc;
  }
  return fd;
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
  if (tr_path_absolute(output, abspath, sizeof(abspath)) < 0) {
    fprintf(stderr, "traced run: output path too long: %s\n", output);
    return 2;
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
    return tr_runproc_run(cmd, socket, NULL);
  }
  int out_fd = tr_conn_open_output(output);
  if (out_fd < 0) {
    fprintf(stderr, "traced run: cannot write %s: %s\n", output,
            out_fd == -ENXIO    ? "it is a FIFO with no reader; traces are "
                                  "written to regular files only"
            : out_fd == -EINVAL ? "not a regular file; traces are written "
                                  "to regular files only"
                                : strerror(-out_fd));
    tr_conn_close(fd);
    return 2;
  }
  char err[256] = "";
  int rc = tr_conn_session_create(fd, abspath, out_fd, ro->min_duration_ns,
                                  ro->max_size, token, err, sizeof(err));
  if (rc < 0) {
    tr_conn_close(out_fd);
    fprintf(stderr,
            "traced: warning: the daemon refused the session (%s); running "
            "untraced\n",
            err[0] ? err : strerror(-rc));
    tr_conn_close(fd);
    return tr_runproc_run(cmd, socket, NULL);
  }

  int code = tr_runproc_run(cmd, socket, token);
  traced_summary s;
  bool stopped = false;
  tr_summary_extra x = {0};
  rc = tr_conn_end_session(fd, &s, &x, &stopped, TR_END_TIMEOUT_MS);
  tr_conn_close(fd);
  /* Our copy of the output's descriptor tells whether its name still
   * leads to it: a trace written into a deleted file is lost. */
  if (tr_runproc_output_deleted(out_fd))
    fprintf(stderr,
            "traced: warning: %s was deleted during the run: the trace "
            "written to it is lost\n",
            abspath);
  tr_conn_close(out_fd);
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
  return code;
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

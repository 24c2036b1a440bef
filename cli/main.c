/* main.c: the `traced` command line: one table of subcommands that both
 * dispatch and the help read. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common/version.h"
#include "proto/traced_proto.h"

/* A subcommand: its function, and its entry in `traced --help` (the
 * synopsis after the name, then what it does; later lines of `help` are
 * indented under the first). */
typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *synopsis;
  const char *help;
} command;

static const command commands[] = {
    {"run", tr_cmd_run,
     "[-o FILE] [--socket PATH] [-q] [--report] [RECORDING OPTIONS]\n"
     "      [--] CMD [ARGS...] | SCRIPT.py [ARGS...] | -m MODULE [ARGS...]",
     "trace CMD and every Python process it starts into FILE\n"
     "(traced run --help lists the recording options)"},
    {"report", tr_cmd_report,
     "[--sort KEY] [--top N] [--pid PID] [--json] FILE",
     "print a trace's profile: per process and overall, each\n"
     "function's calls, self and total time (like cProfile)"},
    {"serve", tr_cmd_serve,
     "[--socket PATH] [--system [--group NAME]] [--idle-exit S]\n"
     "        [--daemon] [--log-file PATH] [--verbose|--quiet] [limits]",
     "run the collector daemon (in the foreground, logging to\n"
     "stderr, unless --daemon); --system: one daemon for every\n"
     "user of the machine (traced serve --help for the limits)"},
    {"status", tr_cmd_status, "[--socket PATH | --system] [--json]",
     "show the daemon and your sessions (root: every session)"},
    {"stop", tr_cmd_stop, "[--socket PATH | --system]",
     "finalise every session and stop the daemon (its user and\n"
     "root only)"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f) {
  fputs("usage: traced <command> [options]\n\ncommands:\n", f);
  for (size_t i = 0; i < NCOMMANDS; i++) {
    fprintf(f, "  %s %s\n        ", commands[i].name, commands[i].synopsis);
    for (const char *p = commands[i].help; *p != '\0'; p++) {
      fputc(*p, f);
      if (*p == '\n') fputs("        ", f);
    }
    fputc('\n', f);
  }
  fputs(
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
  for (size_t i = 0; i < NCOMMANDS; i++)
    if (strcmp(cmd, commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "traced: unknown command '%s'\n\n", cmd);
  usage(stderr);
  return 2;
}

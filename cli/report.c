/* report.c: `traced report` on the command line: its options, reading the
 * trace through report/, and the exit status. */
#include "report/report.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void report_usage(FILE *f) {
  fputs(
      "usage: traced report [--sort total|self|calls|name] [--top N]\n"
      "                     [--pid PID] [--json] FILE\n"
      "\n"
      "Prints the profile of a trace written by traced (or another Chrome\n"
      "JSON or Perfetto producer): per process and over all of them, each\n"
      "function's calls, self time (tottime) and total time (cumtime), as\n"
      "cProfile does.  FILE may be JSON, gzip-compressed JSON or a Perfetto\n"
      "protobuf trace (recognised from its content); - reads standard\n"
      "input.  A file cut short (its writer was killed) is reported as far\n"
      "as it goes.\n"
      "\n"
      "  -s, --sort KEY  order rows by total, self, calls or name (default:\n"
      "                  two tables, by total and by self time)\n"
      "  -n, --top N     rows per table (default 20; 0: all; with --json,\n"
      "                  all unless given)\n"
      "  -p, --pid PID   only this process\n"
      "      --json      machine-readable output, times in nanoseconds\n",
      f);
}

static bool parse_i64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0') return false;
  *out = v;
  return true;
}

int tr_cmd_report(int argc, char **argv) {
  static const struct option opts[] = {
      {"sort", required_argument, NULL, 's'},
      {"top", required_argument, NULL, 'n'},
      {"pid", required_argument, NULL, 'p'},
      {"json", no_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  tr_report_opts o = {.sort = TR_SORT_BOTH, .top = 20};
  bool json = false, top_given = false;
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "s:n:p:h", opts, NULL)) != -1) {
    switch (c) {
      case 's':
        if (strcmp(optarg, "total") == 0 || strcmp(optarg, "cumtime") == 0)
          o.sort = TR_SORT_TOTAL;
        else if (strcmp(optarg, "self") == 0 || strcmp(optarg, "tottime") == 0)
          o.sort = TR_SORT_SELF;
        else if (strcmp(optarg, "calls") == 0 || strcmp(optarg, "ncalls") == 0)
          o.sort = TR_SORT_CALLS;
        else if (strcmp(optarg, "name") == 0)
          o.sort = TR_SORT_NAME;
        else {
          fprintf(stderr,
                  "traced report: --sort: '%s' is not total, self, calls or "
                  "name\n",
                  optarg);
          report_usage(stderr);
          return 2;
        }
        break;
      case 'n': {
        int64_t v;
        if (!parse_i64(optarg, &v) || v < 0 || v > UINT32_MAX) {
          fprintf(stderr, "traced report: --top: '%s' is not a count\n",
                  optarg);
          report_usage(stderr);
          return 2;
        }
        o.top = (unsigned)v;
        top_given = true;
        break;
      }
      case 'p':
        if (!parse_i64(optarg, &o.pid)) {
          fprintf(stderr, "traced report: --pid: '%s' is not a pid\n", optarg);
          report_usage(stderr);
          return 2;
        }
        o.has_pid = true;
        break;
      case 'j':
        json = true;
        break;
      case 'h':
        report_usage(stdout);
        return 0;
      default:
        if (optopt != 0 && strchr("snp", optopt) != NULL)
          fprintf(stderr, "traced report: option '%s' needs a value\n",
                  argv[optind - 1]);
        else
          fprintf(stderr, "traced report: bad option '%s'\n", argv[optind - 1]);
        report_usage(stderr);
        return 2;
    }
  }
  if (optind >= argc) {
    fprintf(stderr, "traced report: no trace file given\n");
    report_usage(stderr);
    return 2;
  }
  if (argc - optind > 1) {
    fprintf(stderr, "traced report: one trace file at a time ('%s' too)\n",
            argv[optind + 1]);
    report_usage(stderr);
    return 2;
  }
  if (json && !top_given) o.top = 0;
  tr_report *r;
  if (tr_report_load(argv[optind], stderr, "traced report", &r) < 0) return 1;
  if (o.has_pid && !tr_report_has_pid(r, o.pid)) {
    fprintf(stderr, "traced report: %s: no process with pid %" PRId64 "\n",
            argv[optind], o.pid);
    tr_report_free(r);
    return 1;
  }
  int rc = json ? tr_report_print_json(r, stdout, &o)
                : tr_report_print_text(r, stdout, &o);
  tr_report_free(r);
  if (rc < 0) {
    fprintf(stderr, "traced report: writing the report failed: %s\n",
            strerror(-rc));
    return 1;
  }
  return 0;
}

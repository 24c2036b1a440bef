/* options.h: traced's one set of recording options (docs/options.md): what
 * every traced process reads from TRACED_* environment variables, what
 * `traced run` takes as flags and the Python API as keyword arguments, with
 * the one parser for their values that all three use.
 *
 * The table is the single source of names: `traced run --help` and the
 * Python package (traced._traced.options()) are generated from it. */
#ifndef TRACED_OPTIONS_H
#define TRACED_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum tr_opt_kind {
  TR_OPT_PATHS = 0,    /* path prefixes; env: separated by ':' (os.pathsep) */
  TR_OPT_COUNT = 1,    /* an integer within [lo, hi] */
  TR_OPT_FLAG = 2,     /* on/off: 1/0, true/false, yes/no, on/off */
  TR_OPT_DURATION = 3, /* 500ns, 10us, 2ms, 1s; a plain number is in us */
  TR_OPT_CHOICE = 4,   /* one of the words of `metavar` ("wait|drop"); the
                          value is the word's index */
  TR_OPT_SIZE = 5,     /* bytes: 100M, 2G, 512K (powers of 1024; KB, MB,
                          GB: of 1000), a plain number; within [lo, hi], or
                          0 for none */
} tr_opt_kind;

typedef struct tr_option {
  const char *env;   /* "TRACED_MAX_DEPTH" */
  const char *flag;  /* "max-depth": traced run --max-depth */
  const char *kwarg; /* "max_depth": traced.session(max_depth=...) */
  tr_opt_kind kind;
  const char *metavar; /* "N" in usage; NULL for flags */
  uint64_t lo, hi;     /* TR_OPT_COUNT bounds (inclusive) */
  uint64_t def;        /* the value when unset (COUNT, FLAG, DURATION) */
  const char *help;    /* one line for `traced run --help` */
} tr_option;

/* Indexes into tr_options[]. */
enum tr_option_id {
  TR_OPTION_INCLUDE_FILES,
  TR_OPTION_EXCLUDE_FILES,
  TR_OPTION_MAX_DEPTH,
  TR_OPTION_IGNORE_C_FUNCTIONS,
  TR_OPTION_MIN_DURATION,
  TR_OPTION_LOG_ARGS,
  TR_OPTION_LOG_RETURN,
  TR_OPTION_REPR_LIMIT,
  TR_OPTION_LOG_PRINT,
  TR_OPTION_LOG_GC,
  TR_OPTION_ON_FULL,
  TR_OPTION_FULL_WAIT_MS,
  TR_OPTION_MAX_SIZE,
  TR_OPTION_COUNT
};

/* Default and bounds of the repr limit, in bytes of UTF-8. */
#define TR_REPR_LIMIT_DEFAULT 128u
#define TR_REPR_LIMIT_MIN 8u
#define TR_REPR_LIMIT_MAX 4000u
/* --on-full's values (the index of the word in its metavar). */
#define TR_ON_FULL_WAIT 0u
#define TR_ON_FULL_DROP 1u
/* --full-wait-ms: how long a full ring waits in the drop mode. */
#define TR_FULL_WAIT_MS_DEFAULT 10u
#define TR_FULL_WAIT_MS_MAX 60000u

/* --max-size: the smallest bound (room for a trace's head, a few events
 * and its ending) and the largest. */
#define TR_MAX_SIZE_MIN (16u * 1024u)
#define TR_MAX_SIZE_MAX (1ull << 60)

/* Longest minimum duration accepted: one day. */
#define TR_MIN_DURATION_MAX_NS (86400ull * 1000000000ull)

extern const tr_option tr_options[TR_OPTION_COUNT];

/* Parses `text` as a value of option o (not TR_OPT_PATHS, whose value is
 * the text itself).  On success stores a count, 0/1 for a flag,
 * nanoseconds for a duration, or the index of a choice in *out and returns
 * 0; otherwise returns
 * -EINVAL and writes why (e.g. "not a positive integer") into err. */
int tr_option_parse(const tr_option *o, const char *text, uint64_t *out,
                    char *err, size_t errsz);

/* A size in bytes as the shortest text tr_option_parse reads back as it:
 * "100M", "2G", "16K", else the number ("123456"). */
const char *tr_option_size_text(uint64_t bytes, char *buf, size_t size);

/* The word of choice `value` of a TR_OPT_CHOICE option, copied into buf
 * (NUL-terminated); "" when out of range. */
const char *tr_option_choice(const tr_option *o, uint64_t value, char *buf,
                             size_t size);

/* The value of option `id`'s environment variable, or 0 when it is unset
 * or invalid (those who warn about it have: `traced run`, the Python
 * package). */
uint64_t tr_option_env(enum tr_option_id id);

/* The option whose env name, flag or kwarg is `name`, or NULL. */
const tr_option *tr_option_find(const char *name);

#endif

/* options.c: the table of traced's recording options and the parser of
 * their values, shared by `traced run`, libtraced and the Python shim. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "producer.h"

const tr_option tr_options[TR_OPTION_COUNT] = {
    [TR_OPTION_INCLUDE_FILES] = {"TRACED_INCLUDE_FILES", "include-files",
                                 "include_files", TR_OPT_PATHS, "PATHS", 0, 0,
                                 0,
                                 "record only functions in files under these "
                                 "prefixes"},
    [TR_OPTION_EXCLUDE_FILES] = {"TRACED_EXCLUDE_FILES", "exclude-files",
                                 "exclude_files", TR_OPT_PATHS, "PATHS", 0, 0,
                                 0,
                                 "do not record functions in files under "
                                 "these prefixes"},
    [TR_OPTION_MAX_DEPTH] = {"TRACED_MAX_DEPTH", "max-depth", "max_depth",
                             TR_OPT_COUNT, "N", 1, TR_STACK_MAX, 0,
                             "record at most N nested levels per thread"},
    [TR_OPTION_IGNORE_C_FUNCTIONS] = {"TRACED_IGNORE_C_FUNCTIONS",
                                      "ignore-c-functions",
                                      "ignore_c_functions", TR_OPT_FLAG, NULL,
                                      0, 1, 0,
                                      "do not record calls of C functions"},
    [TR_OPTION_MIN_DURATION] = {"TRACED_MIN_DURATION", "min-duration",
                                "min_duration", TR_OPT_DURATION, "DUR", 0,
                                TR_MIN_DURATION_MAX_NS, 0,
                                "do not write calls shorter than DUR"},
    [TR_OPTION_LOG_ARGS] = {"TRACED_LOG_ARGS", "log-args", "log_args",
                            TR_OPT_FLAG, NULL, 0, 1, 0,
                            "record repr() of Python functions' arguments"},
    [TR_OPTION_LOG_RETURN] = {"TRACED_LOG_RETURN", "log-return", "log_return",
                              TR_OPT_FLAG, NULL, 0, 1, 0,
                              "record repr() of Python functions' return "
                              "values"},
    [TR_OPTION_REPR_LIMIT] = {"TRACED_REPR_LIMIT", "repr-limit", "repr_limit",
                              TR_OPT_COUNT, "N", TR_REPR_LIMIT_MIN,
                              TR_REPR_LIMIT_MAX, TR_REPR_LIMIT_DEFAULT,
                              "cut each repr() to N bytes (default 128)"},
    [TR_OPTION_LOG_PRINT] = {"TRACED_LOG_PRINT", "log-print", "log_print",
                             TR_OPT_FLAG, NULL, 0, 1, 0,
                             "record each print() as an instant event"},
    [TR_OPTION_LOG_GC] = {"TRACED_LOG_GC", "log-gc", "log_gc", TR_OPT_FLAG,
                          NULL, 0, 1, 0,
                          "record garbage collections as slices"},
    [TR_OPTION_ON_FULL] = {"TRACED_ON_FULL", "on-full", "on_full",
                           TR_OPT_CHOICE, "wait|drop", 0, 1, TR_ON_FULL_WAIT,
                           "when a ring is full: wait for the daemon (no "
                           "event lost) or drop after --full-wait-ms"},
    [TR_OPTION_FULL_WAIT_MS] = {"TRACED_FULL_WAIT_MS", "full-wait-ms",
                                "full_wait_ms", TR_OPT_COUNT, "MS", 0,
                                TR_FULL_WAIT_MS_MAX, TR_FULL_WAIT_MS_DEFAULT,
                                "with --on-full drop: wait at most MS for "
                                "room (default 10)"},
    [TR_OPTION_MAX_SIZE] = {"TRACED_MAX_SIZE", "max-size", "max_size",
                            TR_OPT_SIZE, "SIZE", TR_MAX_SIZE_MIN,
                            TR_MAX_SIZE_MAX, 0,
                            "stop writing events once the trace holds SIZE "
                            "bytes (100M, 2G)"},
};

uint64_t tr_option_env(enum tr_option_id id) {
  const tr_option *o = &tr_options[id];
  const char *s = getenv(o->env);
  uint64_t v;
  if (s == NULL || *s == '\0' || tr_option_parse(o, s, &v, NULL, 0) < 0)
    return 0;
  return v;
}

const tr_option *tr_option_find(const char *name) {
  for (size_t i = 0; i < TR_OPTION_COUNT; i++) {
    const tr_option *o = &tr_options[i];
    if (strcmp(name, o->env) == 0 || strcmp(name, o->flag) == 0 ||
        strcmp(name, o->kwarg) == 0)
      return o;
  }
  return NULL;
}

const char *tr_option_choice(const tr_option *o, uint64_t value, char *buf,
                             size_t size) {
  const char *w = o->metavar;
  for (uint64_t i = 0; i < value && w != NULL; i++) {
    w = strchr(w, '|');
    if (w != NULL) w++;
  }
  size_t n = w == NULL ? 0 : strcspn(w, "|");
  if (n >= size) n = size - 1;
  if (n > 0) memcpy(buf, w, n);
  buf[n] = '\0';
  return buf;
}

static int fail(char *err, size_t errsz, const char *why) {
  if (err != NULL && errsz > 0) snprintf(err, errsz, "%s", why);
  return -EINVAL;
}

/* A decimal integer of at most 19 digits with nothing after it. */
static int parse_uint(const char *s, uint64_t *out) {
  if (*s == '\0' || strlen(s) > 19) return -EINVAL;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -EINVAL;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  *out = v;
  return 0;
}

/* "12", "1.5", ".5" followed by an optional unit.  Parsed by hand, in
 * integers, so that "0.1ms" is exactly 100000 ns whatever the locale. */
static int parse_duration(const char *s, uint64_t *out) {
  uint64_t whole = 0, frac = 0, frac_scale = 1;
  int digits = 0;
  for (; *s >= '0' && *s <= '9'; s++, digits++) {
    if (whole > UINT64_MAX / 100) return -EINVAL;
    whole = whole * 10 + (uint64_t)(*s - '0');
  }
  if (*s == '.') {
    s++;
    for (; *s >= '0' && *s <= '9'; s++, digits++) {
      /* Digits beyond nanosecond precision of seconds are ignored. */
      if (frac_scale < 1000000000ull) {
        frac = frac * 10 + (uint64_t)(*s - '0');
        frac_scale *= 10;
      }
    }
  }
  if (digits == 0) return -EINVAL;
  uint64_t unit;
  if (*s == '\0' || strcmp(s, "us") == 0) {
    unit = 1000;
  } else if (strcmp(s, "ns") == 0) {
    unit = 1;
  } else if (strcmp(s, "ms") == 0) {
    unit = 1000000;
  } else if (strcmp(s, "s") == 0) {
    unit = 1000000000;
  } else {
    return -EINVAL;
  }
  if (whole > TR_MIN_DURATION_MAX_NS / unit) return -ERANGE;
  /* Fractions of a nanosecond round down. */
  *out = whole * unit + frac * unit / frac_scale;
  return 0;
}

/* A whole number with an optional unit: K, M, G, T (and KiB...) are powers
 * of 1024, KB, MB, GB, TB powers of 1000, as in coreutils; B is bytes. */
static int parse_size(const char *s, uint64_t *out) {
  uint64_t v = 0;
  int digits = 0;
  for (; *s >= '0' && *s <= '9'; s++, digits++) {
    if (v > UINT64_MAX / 10) return -ERANGE;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (digits == 0) return -EINVAL;
  static const char units[] = "KMGT";
  uint64_t scale = 1;
  if (*s != '\0') {
    const char *u = strchr(units, s[0] & ~0x20); /* ASCII upper case */
    if (u == NULL && strcasecmp(s, "B") != 0) return -EINVAL;
    if (u != NULL) {
      uint64_t base = strcasecmp(s + 1, "B") == 0 ? 1000 : 1024;
      if (s[1] != '\0' && base == 1024 && strcasecmp(s + 1, "iB") != 0)
        return -EINVAL;
      for (long i = 0; i <= u - units; i++) scale *= base;
    }
  }
  if (v > UINT64_MAX / scale) return -ERANGE;
  *out = v * scale;
  return 0;
}

const char *tr_option_size_text(uint64_t bytes, char *buf, size_t size) {
  static const char units[] = "KMGT";
  int i = -1;
  uint64_t v = bytes;
  while (i < 3 && v != 0 && v % 1024 == 0) {
    v /= 1024;
    i++;
  }
  if (i < 0)
    snprintf(buf, size, "%llu", (unsigned long long)bytes);
  else
    snprintf(buf, size, "%llu%c", (unsigned long long)v, units[i]);
  return buf;
}

int tr_option_parse(const tr_option *o, const char *text, uint64_t *out,
                    char *err, size_t errsz) {
  uint64_t v;
  switch (o->kind) {
    case TR_OPT_COUNT:
      if (parse_uint(text, &v) < 0)
        return fail(err, errsz, "not a whole number");
      if (v < o->lo || v > o->hi) {
        char why[96];
        snprintf(why, sizeof(why), "not between %llu and %llu",
                 (unsigned long long)o->lo, (unsigned long long)o->hi);
        return fail(err, errsz, why);
      }
      *out = v;
      return 0;
    case TR_OPT_FLAG:
      if (strcmp(text, "1") == 0 || strcasecmp(text, "true") == 0 ||
          strcasecmp(text, "yes") == 0 || strcasecmp(text, "on") == 0) {
        *out = 1;
        return 0;
      }
      if (strcmp(text, "0") == 0 || strcasecmp(text, "false") == 0 ||
          strcasecmp(text, "no") == 0 || strcasecmp(text, "off") == 0) {
        *out = 0;
        return 0;
      }
      return fail(err, errsz, "not one of 1, 0, true, false, yes, no, on, off");
    case TR_OPT_DURATION: {
      int rc = parse_duration(text, &v);
      if (rc == -ERANGE || (rc == 0 && v > TR_MIN_DURATION_MAX_NS))
        return fail(err, errsz, "longer than a day");
      if (rc < 0)
        return fail(err, errsz,
                    "not a duration such as 500ns, 10us, 2ms, 1s or a "
                    "number of microseconds");
      *out = v;
      return 0;
    }
    case TR_OPT_CHOICE: {
      const char *w = o->metavar;
      for (uint64_t i = 0; w != NULL; i++) {
        size_t n = strcspn(w, "|");
        if (strlen(text) == n && strncmp(text, w, n) == 0) {
          *out = i;
          return 0;
        }
        w = w[n] == '|' ? w + n + 1 : NULL;
      }
      char why[96];
      snprintf(why, sizeof(why), "not one of %s", o->metavar);
      return fail(err, errsz, why);
    }
    case TR_OPT_SIZE: {
      int rc = parse_size(text, &v);
      if (rc == -EINVAL)
        return fail(err, errsz,
                    "not a size such as 100M, 2G, 512K or a number of bytes");
      if (rc == 0 && v == 0) {
        *out = 0; /* no bound */
        return 0;
      }
      if (rc < 0 || v < o->lo || v > o->hi) {
        char why[96], lo[24], hi[24];
        snprintf(why, sizeof(why), "not between %s and %s (0: no limit)",
                 tr_option_size_text(o->lo, lo, sizeof(lo)),
                 tr_option_size_text(o->hi, hi, sizeof(hi)));
        return fail(err, errsz, why);
      }
      *out = v;
      return 0;
    }
    case TR_OPT_PATHS:
    default:
      return fail(err, errsz, "takes path prefixes, not a value");
  }
}

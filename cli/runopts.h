/* runopts.h: the recording options of `traced run` (libclient/src/options.h
 * lists them): taken as flags, checked, and handed to the command's
 * processes through their TRACED_* environment variables. */
#ifndef TRACED_RUNOPTS_H
#define TRACED_RUNOPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "libclient/src/options.h"

/* getopt_long values of the recording flags: TR_RUNOPT_BASE + option id. */
#define TR_RUNOPT_BASE 0x1000

typedef struct tr_runopts {
  bool given[TR_OPTION_COUNT];
  char value[TR_OPTION_COUNT][32]; /* canonical text of a given value */
  char *paths[TR_OPTION_COUNT];    /* PATHS options: ':'-joined, absolute */
  uint64_t min_duration_ns;        /* for SESSION_CREATE (0: none) */
  uint64_t max_size;               /* for SESSION_CREATE (0: none) */
} tr_runopts;

/* Appends the recording flags to a getopt_long table of `used` entries
 * (not counting its terminator) with room for `cap`; returns the new count
 * and terminates the table. */
size_t tr_runopts_longopts(struct option *opts, size_t used, size_t cap);

/* Takes one recording flag (val as returned by getopt_long).  Returns 0, or
 * -EINVAL after printing what is wrong with it. */
int tr_runopts_take(tr_runopts *r, int val, const char *arg);

/* Sets the environment the command inherits: a flag's value replaces the
 * variable; a variable already in the environment with an invalid value
 * gets one warning and is removed, so that no process of the command warns
 * again and all of them ignore it.  Then knows min_duration_ns and
 * max_size. */
void tr_runopts_apply(tr_runopts *r);

/* The usage lines of the recording options. */
void tr_runopts_usage(FILE *out);

void tr_runopts_free(tr_runopts *r);

#endif

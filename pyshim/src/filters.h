/* filters.h: what the profile hooks record: the process's recording
 * options, and which code objects the file filters and traced's own
 * package leave out (filters.c). */
#ifndef TRACED_FILTERS_H
#define TRACED_FILTERS_H

#include "shim.h"

/* The hook's recording options, the same for every thread of the process
 * (set by traced._traced.configure() before a session's hook is
 * installed; docs/options.md).  Read on every event, written only by
 * configure() and tr_filters_set_files(), with the GIL. */
typedef struct tr_hook_opts {
  bool any;            /* one of the per-event options below is on */
  bool trace_c;        /* record C function calls */
  bool log_args;       /* arguments of Python calls */
  bool log_return;     /* return values of Python calls */
  bool file_filters;   /* include/exclude lists are set */
  uint32_t max_depth;  /* recorded levels per thread, 0: unlimited */
  uint32_t repr_limit; /* bytes of each repr() */
} tr_hook_opts;

extern TR_HIDDEN tr_hook_opts tr_hook_options;

/* Recomputes tr_hook_options.any after options were set. */
void tr_hook_options_changed(void);

/* Sets the include and exclude path prefixes (tuples of str, or None).
 * Returns 1 when they changed (every cached decision is stale: the
 * caller tells names.c), 0 when they are the ones already set, -1 with
 * an exception. */
int tr_filters_set_files(PyObject *include, PyObject *exclude);

/* Code from files under `prefix` (traced's own package) is not recorded. */
void tr_filters_set_skip_prefix(PyObject *prefix);

/* What traced's own code records as: TR_ID_OWN (a skip-tree), or
 * TR_ID_THROUGH for its wrappers around the program's functions; 0 when
 * `code` is not traced's.  May leave an exception set: the caller, which
 * saved the one in flight, clears it. */
uint32_t tr_filters_own(PyCodeObject *code);

/* Whether the file filters leave `code` out (docs/options.md).  Never
 * raises. */
bool tr_filters_file_out(PyCodeObject *code);

#endif

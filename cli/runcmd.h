/* runcmd.h: what `traced run` runs (a command, a script, a module) and why
 * a run that traced nothing traced nothing. */
#ifndef TRACED_CLI_RUNCMD_H
#define TRACED_CLI_RUNCMD_H

#include <stdio.h>

/* Where the `traced` Python command (traced/__main__.py) says which
 * interpreter it runs in. */
#define TR_ENV_PYTHON "TRACED_PYTHON"

/* The interpreter a script or module is run with: $TRACED_PYTHON (the one
 * traced is installed in, when started by the `traced` Python command),
 * else "python3" from PATH.  The string is static or the environment's. */
const char *tr_runcmd_python(void);

/* The command to run for `traced run ... ARGV` (argc words, NULL-ended):
 * ARGV itself, except that NAME.py runs as `PYTHON NAME.py ...` and a
 * non-NULL `module` as `PYTHON -m MODULE ARGV...`.  Returns a NULL-ended
 * vector the caller frees (its strings are borrowed), or NULL when out of
 * memory. */
char **tr_runcmd_build(int argc, char **argv, const char *module);

/* Called when the traced command ended and no process joined the session:
 * writes one line to `err` saying so, naming the likely cause that can be
 * detected (the command's Python interpreter cannot import traced, or the
 * command is not Python at all) and what to do. */
void tr_runcmd_explain_empty(char **cmd, FILE *err);

/* Traces past this many bytes get a note on what makes them smaller;
 * $TRACED_SIZE_NOTE (bytes) overrides it. */
#define TR_SIZE_NOTE_BYTES (256ull << 20)

/* When a finished trace of `bytes` bytes and `events` events is past the
 * size worth noticing, one line to `err`: its size, bytes per event, and
 * what makes it smaller (.pftrace unless it is one, the filters). */
void tr_runcmd_size_note(unsigned long long bytes, unsigned long long events,
                         const char *path, FILE *err);

#endif

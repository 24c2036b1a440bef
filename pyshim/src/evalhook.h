/* evalhook.h: the frame-evaluation hook (evalhook.c), for the CPython
 * versions with TR_HAVE_EVAL_HOOK (shim.h). */
#ifndef TRACED_EVALHOOK_H
#define TRACED_EVALHOOK_H

#include "shim.h"

/* Installs the frame-evaluation hook for the whole interpreter (Python
 * calls only, no C functions) and gives the calling thread a ring named
 * `name`; other threads get theirs on their first frame.  0, or -1 with an
 * exception set (NotImplementedError where the version has no hook).
 * tr_eval_uninstall restores the previous evaluator. */
int tr_eval_install(PyTypeObject *thread_type, const char *name);
void tr_eval_uninstall(void);

#endif

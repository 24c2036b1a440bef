/* shim.h: declarations shared by the Python extension's files. */
#ifndef TRACED_SHIM_H
#define TRACED_SHIM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdbool.h>

#include "client.h"
#include "producer.h"

/* The profile hook's argument: one per traced thread.  Owned by the
 * thread state (PyEval_SetProfile keeps a reference); its dealloc closes
 * the ring. */
typedef struct TracedThread {
  PyObject_HEAD tr_producer p;
  bool trace_c; /* record C function calls */
} TracedThread;

extern PyType_Spec tr_thread_spec;

/* The frame-evaluation hook (hook.c) exists for the CPython versions whose
 * frame layout it knows: 3.11 for now.  Elsewhere tr_eval_install fails
 * and the profile hook serves every mode. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define TR_HAVE_EVAL_HOOK 1
#else
#define TR_HAVE_EVAL_HOOK 0
#endif

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

/* Installs the frame-evaluation hook for the whole interpreter (Python
 * calls only, no C functions) and gives the calling thread a ring named
 * `name`; other threads get theirs on their first frame.  0, or -1 with an
 * exception set.  tr_eval_uninstall restores the previous evaluator. */
int tr_eval_install(PyTypeObject *thread_type, const char *name);
void tr_eval_uninstall(void);
int tr_hook_init(void);
int tr_hook_set_skip_prefix(PyObject *prefix);
TracedThread *tr_thread_new(PyTypeObject *type, const char *name, bool trace_c);

#endif

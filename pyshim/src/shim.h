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
} TracedThread;

/* The hook's recording options, the same for every thread of the process
 * (set by traced._traced.configure() before a session's hook is
 * installed; docs/options.md). */
typedef struct tr_hook_opts {
  bool trace_c; /* record C function calls */
} tr_hook_opts;

extern tr_hook_opts tr_hook_options;
extern PyType_Spec tr_thread_spec;

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
int tr_hook_init(void);
int tr_hook_set_skip_prefix(PyObject *prefix);
TracedThread *tr_thread_new(PyTypeObject *type, const char *name);

#endif

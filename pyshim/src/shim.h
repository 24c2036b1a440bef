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

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
int tr_hook_init(void);
int tr_hook_set_skip_prefix(PyObject *prefix);
TracedThread *tr_thread_new(PyTypeObject *type, const char *name, bool trace_c);

#endif

/* shim.h: declarations shared by the Python extension's files. */
#ifndef TRACED_SHIM_H
#define TRACED_SHIM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdbool.h>

#include "libclient/src/client.h"
#include "libclient/src/producer.h"

/* The profile hook's argument: one per traced thread.  Owned by the
 * thread state (PyEval_SetProfile keeps a reference); its dealloc closes
 * the ring. */
struct tr_argbuf;

typedef struct TracedThread {
  PyObject_HEAD tr_producer p;
  /* Set while the hook runs Python code (repr() of arguments): traced's
   * API then records nothing on this thread, so that the shadow stack and
   * the half-built record stay consistent. */
  bool busy;
  bool redispatch;        /* see tr_hook() */
  struct tr_argbuf *args; /* argument payload scratch, allocated on use */
} TracedThread;

/* The hook's recording options, the same for every thread of the process
 * (set by traced._traced.configure() before a session's hook is
 * installed; docs/options.md).  File filters are kept in hook.c. */
typedef struct tr_hook_opts {
  bool any;            /* one of the per-event options below is on */
  bool trace_c;        /* record C function calls */
  bool log_args;       /* arguments of Python calls */
  bool log_return;     /* return values of Python calls */
  bool file_filters;   /* include/exclude lists are set */
  uint32_t max_depth;  /* recorded levels per thread, 0: unlimited */
  uint32_t repr_limit; /* bytes of each repr() */
} tr_hook_opts;

extern tr_hook_opts tr_hook_options;
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
int tr_hook_full(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
/* The profile function for the current options. */
Py_tracefunc tr_hook_func(void);

/* Installs the frame-evaluation hook for the whole interpreter (Python
 * calls only, no C functions) and gives the calling thread a ring named
 * `name`; other threads get theirs on their first frame.  0, or -1 with an
 * exception set.  tr_eval_uninstall restores the previous evaluator. */
int tr_eval_install(PyTypeObject *thread_type, const char *name);
void tr_eval_uninstall(void);
int tr_hook_init(void);
int tr_hook_set_skip_prefix(PyObject *prefix);
/* Sets the include and exclude path prefixes (tuples of str, or None). */
int tr_hook_set_file_filters(PyObject *include, PyObject *exclude);
/* Recomputes tr_hook_options.any after options were set. */
void tr_hook_options_changed(void);
TracedThread *tr_thread_new(PyTypeObject *type, const char *name);
/* The calling thread's hook object when the profile hook is installed on
 * it (borrowed), else NULL. */
TracedThread *tr_thread_current(void);
/* The thread's argument scratch buffer, or NULL (out of memory). */
struct tr_argbuf *tr_thread_argbuf(TracedThread *t);

/* events.c: the custom-event functions of traced._traced. */
extern PyMethodDef tr_event_methods[];
/* Names the calling thread in the trace (no-op when not recording). */
void tr_events_thread_name(const char *name);

#endif

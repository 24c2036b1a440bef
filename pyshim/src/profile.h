/* profile.h: the C profile hook (profile.c): the hot path of a traced
 * Python program. */
#ifndef TRACED_PROFILE_H
#define TRACED_PROFILE_H

#include "shim.h"
#include "thread.h"

/* The two profile functions: tr_hook when no per-event option is on,
 * tr_hook_full otherwise.  `obj` is the thread's TracedThread. */
int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);
int tr_hook_full(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg);

/* A Python call whose arguments are recorded (--log-args), and one whose
 * return value is (--log-return): the slow paths of both back ends, the
 * profile hook's and sys.monitoring's (monitor.c). */
void tr_enter_with_args(TracedThread *t, uint64_t ts, uint32_t id,
                        PyFrameObject *frame);
void tr_exit_with_return(TracedThread *t, uint64_t ts, PyObject *value);

/* The profile function for the current options. */
Py_tracefunc tr_hook_func(void);

/* Installs the profile hook on the calling thread with a new
 * TracedThread of `type` whose ring is named `name`.  Returns it,
 * borrowed (the thread state owns it), or NULL with an exception. */
TracedThread *tr_profile_install(PyTypeObject *type, const char *name);

#endif

/* compat.h: the few CPython APIs the shim needs that differ between
 * versions, each behind one small helper. */
#ifndef TRACED_COMPAT_H
#define TRACED_COMPAT_H

#include "shim.h"

/* The exception being raised, if any, taken out of the thread state and
 * put back: code that may raise (repr(), name formatting) runs in
 * between without clobbering it.  3.12 holds one exception object;
 * 3.11 a (type, value, traceback) triple. */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct tr_exc {
  PyObject *exc;
} tr_exc;
static inline tr_exc tr_exc_save(void) {
  tr_exc s = {PyErr_GetRaisedException()};
  return s;
}
static inline void tr_exc_restore(tr_exc s) { PyErr_SetRaisedException(s.exc); }
#else
typedef struct tr_exc {
  PyObject *type, *value, *tb;
} tr_exc;
static inline tr_exc tr_exc_save(void) {
  tr_exc s;
  PyErr_Fetch(&s.type, &s.value, &s.tb);
  return s;
}
static inline void tr_exc_restore(tr_exc s) {
  PyErr_Restore(s.type, s.value, s.tb);
}
#endif

/* Clears the exception being raised; returns its type (borrowed from the
 * type object, which outlives the call) for messages. */
static inline PyTypeObject *tr_exc_clear_type(void) {
  tr_exc e = tr_exc_save();
#if PY_VERSION_HEX >= 0x030C0000
  PyTypeObject *tp = e.exc != NULL ? Py_TYPE(e.exc) : NULL;
  Py_XDECREF(e.exc);
#else
  PyTypeObject *tp =
      (e.type != NULL && PyType_Check(e.type)) ? (PyTypeObject *)e.type : NULL;
  Py_XDECREF(e.type);
  Py_XDECREF(e.value);
  Py_XDECREF(e.tb);
#endif
  return tp;
}

/* CPython renamed the code-extra API in 3.12 (old names remain aliases). */
#if PY_VERSION_HEX >= 0x030C0000
#define TR_RequestCodeExtraIndex PyUnstable_Eval_RequestCodeExtraIndex
#define TR_CodeGetExtra PyUnstable_Code_GetExtra
#define TR_CodeSetExtra PyUnstable_Code_SetExtra
#else
#define TR_RequestCodeExtraIndex _PyEval_RequestCodeExtraIndex
#define TR_CodeGetExtra _PyCode_GetExtra
#define TR_CodeSetExtra _PyCode_SetExtra
#endif

/* The value of the frame's i-th local variable (an argument when i is
 * below the code's argument count), a new reference, or NULL without an
 * exception when it has none (e.g. it was deleted).  It is read in place:
 * building frame.f_locals would keep every local alive as long as the
 * frame and change what the program's own locals() shows. */
PyObject *tr_frame_local(PyFrameObject *frame, PyCodeObject *code,
                         Py_ssize_t i);

#if PY_VERSION_HEX < 0x030C0000
/* The same for an interpreter frame (struct _PyInterpreterFrame *), which
 * the frame-evaluation hook has instead of a frame object.  Both read
 * 3.11's internal frame layout, so they live in evalhook.c; 3.12's
 * tr_frame_local uses PyFrame_GetVar (args.c). */
PyObject *tr_iframe_local(void *iframe, PyCodeObject *code, Py_ssize_t i);
#endif

#endif

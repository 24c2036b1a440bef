/* probes.c: reading what the program just told the interpreter (this
 * process's multiprocessing name, a thread's new name) from inside the
 * calls that say it.  Each keeps the exception in flight and raises
 * nothing. */
#include "probes.h"

#include <string.h>

#include "compat.h"
#include "libclient/src/client.h"
#include "thread.h"

/* The frame's i-th local (tr_frame_local), a new reference or NULL. */
static PyObject *fref_local(tr_fref f, PyCodeObject *code, Py_ssize_t i) {
  if (f.obj != NULL) return tr_frame_local(f.obj, code, i);
#if TR_HAVE_EVAL_HOOK
  if (f.iframe != NULL) return tr_iframe_local(f.iframe, code, i);
#endif
  return NULL;
}

bool tr_probe_is_process_name(PyCodeObject *code) {
  if (PyUnicode_CompareWithASCIIString(code->co_name, "_after_fork") != 0)
    return false;
  const char *f = PyUnicode_AsUTF8(code->co_filename);
  if (f == NULL) {
    PyErr_Clear();
    return false;
  }
  return strstr(f, "/multiprocessing/") != NULL;
}

bool tr_probe_is_thread_name(PyCodeObject *code) {
  if (code->co_argcount != 2 ||
      PyUnicode_CompareWithASCIIString(code->co_qualname, "Thread.name") != 0)
    return false;
  PyObject *suffix = PyUnicode_FromString("/threading.py");
  int r = suffix != NULL ? (int)PyUnicode_Tailmatch(code->co_filename, suffix,
                                                    0, PY_SSIZE_T_MAX, 1)
                         : 0;
  Py_XDECREF(suffix);
  if (r < 0) PyErr_Clear();
  return r == 1;
}

/* Read from the setter's arguments as it is called; another thread's ring
 * is not ours to write. */
void tr_probe_thread_name(tr_fref frame, PyCodeObject *code) {
  tr_exc saved = tr_exc_save();
  PyObject *self = fref_local(frame, code, 0);
  PyObject *name = fref_local(frame, code, 1);
  PyObject *ident =
      self != NULL ? PyObject_GetAttrString(self, "_ident") : NULL;
  PyObject *str = name != NULL ? PyObject_Str(name) : NULL;
  if (ident != NULL && str != NULL && PyLong_Check(ident) &&
      PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident()) {
    const char *u = PyUnicode_AsUTF8(str);
    if (u != NULL) tr_thread_set_name(u);
  }
  Py_XDECREF(str);
  Py_XDECREF(ident);
  Py_XDECREF(name);
  Py_XDECREF(self);
  PyErr_Clear();
  tr_exc_restore(saved);
}

void tr_probe_process_name(void) {
  tr_thread_cache g = tr_thread_slow_enter();
  tr_exc saved = tr_exc_save();
  PyObject *key = PyUnicode_FromString("multiprocessing.process");
  PyObject *mod = key != NULL ? PyImport_GetModule(key) : NULL;
  Py_XDECREF(key);
  PyObject *cur = NULL, *name = NULL;
  if (mod != NULL) cur = PyObject_GetAttrString(mod, "_current_process");
  if (cur != NULL) name = PyObject_GetAttrString(cur, "name");
  if (name != NULL && PyUnicode_Check(name)) {
    const char *u = PyUnicode_AsUTF8(name);
    if (u != NULL) tr_client_process_info(u);
  }
  Py_XDECREF(name);
  Py_XDECREF(cur);
  Py_XDECREF(mod);
  PyErr_Clear();
  tr_exc_restore(saved);
  tr_thread_slow_leave(g);
}

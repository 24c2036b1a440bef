/* args.c: bounded repr() of a Python call's arguments and return value,
 * and of custom events' values, into ARGS payloads; nothing here raises
 * into the traced program or leaves an exception behind. */
#include "args.h"

#include <signal.h>
#include <string.h>

#include "compat.h"

/* Reading a frame's locals in place (compat.h): 3.12's PyFrame_GetVar();
 * 3.11 needs CPython's internal frame layout, so its version lives with
 * the other code that does, in evalhook.c. */
#if PY_VERSION_HEX >= 0x030C0000
PyObject *tr_frame_local(PyFrameObject *frame, PyCodeObject *code,
                         Py_ssize_t i) {
  PyObject *names = PyCode_GetVarnames(code); /* new ref */
  if (names == NULL) {
    PyErr_Clear();
    return NULL;
  }
  PyObject *v = NULL;
  if (i < PyTuple_GET_SIZE(names))
    v = PyFrame_GetVar(frame, PyTuple_GET_ITEM(names, i));
  Py_DECREF(names);
  if (v == NULL) PyErr_Clear();
  return v;
}
#endif

/* repr() failed: "<repr failed: ValueError>".  A KeyboardInterrupt that
 * arrived while repr() ran is not the repr's to swallow: it is raised
 * again at the program's next opportunity. */
static void add_failure(tr_argbuf *b, const char *key, size_t klen) {
  PyTypeObject *tp = tr_exc_clear_type();
  if (tp != NULL &&
      PyType_IsSubtype(tp, (PyTypeObject *)PyExc_KeyboardInterrupt))
    PyErr_SetInterrupt();
  char msg[160];
  const char *name = tp != NULL ? tp->tp_name : "?";
  const char *dot = strrchr(name, '.');
  int n = snprintf(msg, sizeof(msg), "<repr failed: %s>", dot ? dot + 1 : name);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof(msg)) n = sizeof(msg) - 1;
  tr_argbuf_add_str(b, key, klen, msg, (size_t)n, sizeof(msg));
}

/* Appends str `s` cut to `limit` bytes of UTF-8.  Only the first `limit`
 * characters are ever converted, however long the string. */
static bool add_unicode(tr_argbuf *b, const char *key, size_t klen, PyObject *s,
                        uint32_t limit) {
  PyObject *cut = NULL;
  if (PyUnicode_GET_LENGTH(s) > (Py_ssize_t)limit) {
    cut = PyUnicode_Substring(s, 0, limit + 1);
    if (cut == NULL) return false;
    s = cut;
  }
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(s, &n);
  bool ok;
  if (u == NULL) {
    /* Lone surrogates have no UTF-8 form. */
    PyErr_Clear();
    static const char bad[] = "<repr not UTF-8>";
    ok = tr_argbuf_add_str(b, key, klen, bad, sizeof(bad) - 1, limit);
  } else {
    ok = tr_argbuf_add_str(b, key, klen, u, (size_t)n, limit);
  }
  Py_XDECREF(cut);
  return ok;
}

bool tr_args_add_repr(tr_argbuf *b, const char *key, size_t klen, PyObject *v,
                      uint32_t limit) {
  PyObject *r = PyObject_Repr(v);
  if (r == NULL) {
    add_failure(b, key, klen);
    return true;
  }
  bool ok = add_unicode(b, key, klen, r, limit);
  Py_DECREF(r);
  if (PyErr_Occurred()) PyErr_Clear();
  return ok;
}

bool tr_args_add_value(tr_argbuf *b, const char *key, size_t klen, PyObject *v,
                       uint32_t limit) {
  if (PyBool_Check(v)) return tr_argbuf_add_bool(b, key, klen, v == Py_True);
  if (PyLong_CheckExact(v)) {
    int overflow;
    long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow == 0 && !(x == -1 && PyErr_Occurred()))
      return tr_argbuf_add_i64(b, key, klen, (int64_t)x);
    PyErr_Clear();
    if (overflow > 0) {
      unsigned long long u = PyLong_AsUnsignedLongLong(v);
      if (!(u == (unsigned long long)-1 && PyErr_Occurred()))
        return tr_argbuf_add_u64(b, key, klen, (uint64_t)u);
      PyErr_Clear();
    }
  } else if (PyFloat_CheckExact(v)) {
    return tr_argbuf_add_double(b, key, klen, PyFloat_AS_DOUBLE(v));
  } else if (PyUnicode_CheckExact(v)) {
    /* A str is shown as itself, not quoted. */
    if (add_unicode(b, key, klen, v, limit)) return true;
    PyErr_Clear();
    return false;
  }
  return tr_args_add_repr(b, key, klen, v, limit);
}

void tr_args_of_frame(tr_argbuf *b, PyFrameObject *frame, uint32_t limit) {
  tr_argbuf_init(b);
  tr_exc saved = tr_exc_save();
  PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
  Py_ssize_t n = code->co_argcount + code->co_kwonlyargcount;
  if (code->co_flags & CO_VARARGS) n++;
  if (code->co_flags & CO_VARKEYWORDS) n++;
  /* Arguments come first among a code object's local names. */
  PyObject *names = code->co_localsplusnames;
  if (n > PyTuple_GET_SIZE(names)) n = PyTuple_GET_SIZE(names);
  for (Py_ssize_t i = 0; i < n; i++) {
    Py_ssize_t klen;
    const char *key =
        PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(names, i), &klen);
    if (key == NULL) {
      PyErr_Clear();
      continue;
    }
    PyObject *v = tr_frame_local(frame, code, i);
    if (v == NULL) continue; /* deleted before a generator resumed */
    bool ok = tr_args_add_repr(b, key, (size_t)klen, v, limit);
    Py_DECREF(v);
    if (!ok) break; /* the payload is full */
  }
  Py_DECREF(code);
  tr_exc_restore(saved);
}

void tr_args_of_return(tr_argbuf *b, PyObject *value, uint32_t limit) {
  tr_argbuf_init(b);
  tr_exc saved = tr_exc_save();
  static const char key[] = "return_value";
  tr_args_add_repr(b, key, sizeof(key) - 1, value, limit);
  tr_exc_restore(saved);
}

int tr_args_of_dict(tr_argbuf *b, PyObject *dict, uint32_t limit) {
  tr_argbuf_init(b);
  if (dict == NULL || dict == Py_None) return 0;
  if (!PyDict_Check(dict)) {
    PyErr_Format(PyExc_TypeError, "traced: args must be a dict, not %.100s",
                 Py_TYPE(dict)->tp_name);
    return -1;
  }
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &k, &v)) {
    PyObject *ks = PyUnicode_Check(k) ? (Py_INCREF(k), k) : PyObject_Str(k);
    if (ks == NULL) return -1;
    Py_ssize_t klen;
    const char *key = PyUnicode_AsUTF8AndSize(ks, &klen);
    if (key == NULL) {
      Py_DECREF(ks);
      return -1;
    }
    bool ok = tr_args_add_value(b, key, (size_t)klen, v, limit);
    Py_DECREF(ks);
    if (!ok) break;
  }
  return 0;
}

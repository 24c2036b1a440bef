/* names.c: deciding, on first sight, what a code object or a C function
 * records as (its interned name, or a skip id from the filters), and
 * caching it where the hot path finds it (names.h). */
#include "names.h"

#include "filters.h"
#include "libclient/src/client.h"
#include "thread.h"

tr_names_state tr_names = {.extra_index = -1};

int tr_names_init(void) {
  if (tr_names.extra_index < 0) {
    tr_names.extra_index = TR_RequestCodeExtraIndex(NULL);
    if (tr_names.extra_index < 0) return -1;
  }
  return 0;
}

void tr_names_filters_changed(void) {
  tr_names.extra_tag =
      (tr_names.extra_tag + ((uintptr_t)1 << TR_EXTRA_GEN_SHIFT)) &
      TR_EXTRA_GEN_MASK;
}

static uint32_t intern_utf8(PyObject *s) {
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(s, &n);
  if (u == NULL) {
    PyErr_Clear();
    return TR_STRING_UNKNOWN;
  }
  return tr_client_intern(u, (size_t)n);
}

/* ---- code objects ------------------------------------------------------- */

uint32_t tr_names_code_slow(tr_fref frame, PyCodeObject *code, uintptr_t v) {
  bool called = frame.obj != NULL || frame.iframe != NULL;
  if (v != 0 && (v & TR_EXTRA_GEN_MASK) == tr_names.extra_tag) {
    /* Decided under these filters; only a probe flag brought us here. */
    if (called && (v & TR_EXTRA_NAME_PROBE)) tr_probe_process_name();
    if (called && (v & TR_EXTRA_THREAD_PROBE))
      tr_probe_thread_name(frame, code);
    return (uint32_t)((v & TR_EXTRA_ID_MASK) - 1);
  }
  tr_thread_cache g = tr_thread_slow_enter();
  tr_exc saved = tr_exc_save();
  /* A name interned under earlier filters is still the name. */
  uint32_t old = v != 0 ? (uint32_t)((v & TR_EXTRA_ID_MASK) - 1) : TR_ID_SKIP;
  uint32_t id = TR_STRING_UNKNOWN;
  uint32_t own = tr_filters_own(code);
  if (own != 0) {
    id = own;
  } else if (tr_filters_file_out(code)) {
    id = TR_ID_SKIP;
  } else if (old < TR_ID_OVERFLOW) {
    id = old;
  } else {
    PyObject *name =
        PyUnicode_FromFormat("%U (%U:%d)", code->co_qualname, code->co_filename,
                             code->co_firstlineno);
    if (name != NULL) {
      id = intern_utf8(name);
      Py_DECREF(name);
    }
  }
  PyErr_Clear();
  v = ((uintptr_t)id + 1) | tr_names.extra_tag;
  if (tr_probe_is_process_name(code)) v |= TR_EXTRA_NAME_PROBE;
  if (tr_probe_is_thread_name(code)) v |= TR_EXTRA_THREAD_PROBE;
  if (TR_CodeSetExtra((PyObject *)code, tr_names.extra_index, (void *)v) < 0)
    PyErr_Clear();
  tr_exc_restore(saved);
  tr_thread_slow_leave(g);
  if (called && (v & TR_EXTRA_NAME_PROBE)) tr_probe_process_name();
  if (called && (v & TR_EXTRA_THREAD_PROBE)) tr_probe_thread_name(frame, code);
  return id;
}

/* ---- C functions -------------------------------------------------------- */

int tr_names_cfunc_grow(void) {
  size_t cap = tr_names.cfuncs_cap ? tr_names.cfuncs_cap * 2 : 1024;
  tr_cfunc_entry *n = PyMem_RawCalloc(cap, sizeof(*n));
  if (n == NULL) return -1;
  for (size_t i = 0; i < tr_names.cfuncs_cap; i++) {
    tr_cfunc_entry *e = &tr_names.cfuncs[i];
    if (e->def == NULL) continue;
    size_t j = tr_names_cfunc_hash(e->def, e->tp) & (cap - 1);
    while (n[j].def != NULL) j = (j + 1) & (cap - 1);
    n[j] = *e;
  }
  PyMem_RawFree(tr_names.cfuncs);
  tr_names.cfuncs = n;
  tr_names.cfuncs_cap = cap;
  return 0;
}

uint32_t tr_names_cfunc_slow(const void *def, PyTypeObject *tp, PyObject *func,
                             PyObject *self, size_t slot) {
  tr_exc saved = tr_exc_save();
  PyObject *name = NULL;
  /* A method descriptor is named as the builtin method it makes when
   * bound to `self` (what the profile hook sees), and only here. */
  PyObject *bound = NULL;
  if (self != NULL && Py_IS_TYPE(func, &PyMethodDescr_Type)) {
    bound = Py_TYPE(func)->tp_descr_get(func, self, (PyObject *)Py_TYPE(self));
    if (bound == NULL)
      PyErr_Clear();
    else
      func = bound;
  }
  if (PyCFunction_Check(func)) {
    PyCFunctionObject *f = (PyCFunctionObject *)func;
    const char *meth = f->m_ml->ml_name;
    if (tp != NULL) {
      name = PyUnicode_FromFormat("%s.%s", tp->tp_name, meth);
    } else if (f->m_module != NULL && PyUnicode_Check(f->m_module)) {
      name = PyUnicode_FromFormat("%U.%s", f->m_module, meth);
    } else {
      name = PyUnicode_FromString(meth);
    }
  } else {
    name = PyUnicode_FromString(Py_TYPE(func)->tp_name);
  }
  uint32_t id = TR_STRING_UNKNOWN;
  if (PyCFunction_Check(func) && ((PyCFunctionObject *)func)->m_module &&
      PyUnicode_Check(((PyCFunctionObject *)func)->m_module) &&
      PyUnicode_CompareWithASCIIString(((PyCFunctionObject *)func)->m_module,
                                       "traced._traced") == 0) {
    id = TR_ID_OWN;
  } else if (name != NULL) {
    id = intern_utf8(name);
  } else if (name == NULL) {
    PyErr_Clear();
  }
  Py_XDECREF(name);
  Py_XDECREF(bound);
  /* Keep heap types alive while the table names them, so a new type at
   * the same address can never inherit this name. */
  if (tp != NULL && (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) Py_INCREF(tp);
  tr_names.cfuncs[slot].def = def;
  tr_names.cfuncs[slot].tp = tp;
  tr_names.cfuncs[slot].id = id;
  tr_names.cfuncs_len++;
  tr_exc_restore(saved);
  return id;
}

uint32_t tr_names_cfunc_filtered(PyFrameObject *caller, uint32_t id) {
  if (caller == NULL) return id;
  PyCodeObject *code = PyFrame_GetCode(caller); /* new ref */
  id = tr_names_cfunc_filtered_code(code, id);
  Py_DECREF(code);
  return id;
}

uint32_t tr_names_cfunc_filtered_code(PyCodeObject *code, uint32_t id) {
  void *extra = NULL;
  if (TR_CodeGetExtra((PyObject *)code, tr_names.extra_index, &extra) < 0) {
    PyErr_Clear();
    extra = NULL;
  }
  tr_fref none = {NULL, NULL};
  uint32_t cid = tr_names_code_slow(none, code, (uintptr_t)extra);
  return cid == TR_ID_SKIP ? TR_ID_SKIP : id;
}

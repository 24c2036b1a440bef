/* names.h: what a call records as: the string id of a code object's or a
 * C function's name, or a filter's skip id (names.c).  The lookups are
 * inline, on the hot path; first sightings are out of line.
 *
 * Python functions cost no hash lookup: their id lives in the code
 * object's PEP 523 extra slot after the first call.  C functions are
 * keyed by their PyMethodDef and bound type in an open-addressing table.
 * Both are serialised by the GIL (3.11; a free-threaded build will need
 * per-thread caches). */
#ifndef TRACED_NAMES_H
#define TRACED_NAMES_H

#include "compat.h"
#include "probes.h"
#include "shim.h"

/* A code object's extra slot holds (id + 1) | tag, where id is what the
 * hook records for it (its name's string id, or TR_ID_SKIP / TR_ID_OWN)
 * and tag the file filters' generation: when the filters change (a new
 * session with other options), every cached decision is stale and is
 * made again on the code object's next call, for the price of comparing
 * the tag in the same test that finds the slot filled.  The probe flags
 * (probes.h) make a call of the code object take the slow path too. */
_Static_assert(sizeof(uintptr_t) == 8, "64-bit code-extra values");
#define TR_EXTRA_ID_MASK (((uintptr_t)1 << 33) - 1)
#define TR_EXTRA_GEN_SHIFT 34
#define TR_EXTRA_GEN_MASK ((((uintptr_t)1 << 27) - 1) << TR_EXTRA_GEN_SHIFT)
/* Calling it means "this process has just been given its multiprocessing
 * name". */
#define TR_EXTRA_NAME_PROBE ((uintptr_t)1 << 62)
/* Calling it renames a threading.Thread (the Thread.name setter). */
#define TR_EXTRA_THREAD_PROBE ((uintptr_t)1 << 63)
#define TR_EXTRA_PROBES (TR_EXTRA_NAME_PROBE | TR_EXTRA_THREAD_PROBE)

/* One C function: open addressing on (method def, owner type). */
typedef struct tr_cfunc_entry {
  const void *def;  /* PyMethodDef*, or the callable's type for others */
  PyTypeObject *tp; /* type of the bound self, NULL for module functions */
  uint32_t id;
} tr_cfunc_entry;

/* This file's mutable state, written with the GIL held (which every
 * reader holds too). */
typedef struct tr_names_state {
  Py_ssize_t extra_index; /* the code-extra slot, -1 before tr_names_init */
  uintptr_t extra_tag;    /* filters' generation << TR_EXTRA_GEN_SHIFT */
  tr_cfunc_entry *cfuncs; /* the C-function table, cfuncs_cap entries */
  size_t cfuncs_cap, cfuncs_len;
} tr_names_state;

extern TR_HIDDEN tr_names_state tr_names;

/* Reserves the code-extra slot; -1 when none is left. */
int tr_names_init(void);

/* The file filters changed: every code object decides again on its next
 * call. */
void tr_names_filters_changed(void);

/* The first call of a code object (or the first under new filters, or a
 * call of a probe): decides what it records as and caches that.  `v` is
 * what the slot held (0: nothing).  frame both NULL: only the decision is
 * wanted, the code object is not being called (no probe runs). */
uint32_t tr_names_code_slow(tr_fref frame, PyCodeObject *code, uintptr_t v);

/* What a call of `code` in `frame` records as. */
static inline uint32_t tr_names_code_of(tr_fref frame, PyCodeObject *code) {
  void *extra = NULL;
  /* One test: filled, decided under the current filters, no probe. */
  if (__builtin_expect(
          TR_CodeGetExtra((PyObject *)code, tr_names.extra_index, &extra) ==
                  0 &&
              extra != NULL &&
              ((uintptr_t)extra & ~TR_EXTRA_ID_MASK) == tr_names.extra_tag,
          1))
    return (uint32_t)(((uintptr_t)extra & TR_EXTRA_ID_MASK) - 1);
  return tr_names_code_slow(frame, code, (uintptr_t)extra);
}

/* The same for the code object the calling thread has just started or
 * resumed running (sys.monitoring's PY_START): its frame object is made
 * only when a slow path (a probe) needs it. */
static inline uint32_t tr_names_code_running(PyCodeObject *code) {
  void *extra = NULL;
  if (__builtin_expect(
          TR_CodeGetExtra((PyObject *)code, tr_names.extra_index, &extra) ==
                  0 &&
              extra != NULL &&
              ((uintptr_t)extra & ~TR_EXTRA_ID_MASK) == tr_names.extra_tag,
          1))
    return (uint32_t)(((uintptr_t)extra & TR_EXTRA_ID_MASK) - 1);
  tr_fref fr = {PyEval_GetFrame(), NULL};
  return tr_names_code_slow(fr, code, (uintptr_t)extra);
}

/* The same for the profile hook's frame object. */
static inline uint32_t tr_names_code(PyFrameObject *frame) {
  PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
  tr_fref fr = {frame, NULL};
  uint32_t id = tr_names_code_of(fr, code);
  Py_DECREF(code);
  return id;
}

/* A C function seen for the first time: names it into table slot `slot`.
 * `func` is the callable (a builtin function or method, or, from
 * sys.monitoring's CALL event, a method descriptor called on `self`). */
uint32_t tr_names_cfunc_slow(const void *def, PyTypeObject *tp, PyObject *func,
                             PyObject *self, size_t slot);
/* Doubles the table; -1 when out of memory. */
int tr_names_cfunc_grow(void);

static inline size_t tr_names_cfunc_hash(const void *def, const void *tp) {
  uintptr_t h = (uintptr_t)def * 0x9E3779B97F4A7C15ull ^
                (uintptr_t)tp * 0xC2B2AE3D27D4EB4Full;
  return (size_t)(h ^ (h >> 29));
}

/* The type a C method is named after: the bound self's (a type for class
 * methods), none for module functions. */
static inline PyTypeObject *tr_names_self_type(PyObject *self) {
  if (self == NULL || PyModule_Check(self)) return NULL;
  return PyType_Check(self) ? (PyTypeObject *)self : Py_TYPE(self);
}

/* The table lookup of (def, tp); `func` and `self` name it on a miss. */
static inline uint32_t tr_names_cfunc_find(const void *def, PyTypeObject *tp,
                                           PyObject *func, PyObject *self) {
  if (__builtin_expect((tr_names.cfuncs_len + 1) * 2 > tr_names.cfuncs_cap,
                       0)) {
    if (tr_names_cfunc_grow() < 0) return TR_STRING_UNKNOWN;
  }
  size_t mask = tr_names.cfuncs_cap - 1;
  size_t j = tr_names_cfunc_hash(def, tp) & mask;
  for (;;) {
    tr_cfunc_entry *e = &tr_names.cfuncs[j];
    if (e->def == def && e->tp == tp) return e->id;
    if (e->def == NULL) return tr_names_cfunc_slow(def, tp, func, self, j);
    j = (j + 1) & mask;
  }
}

/* What a call of the C function `func` (a PyTrace_C_CALL's arg) records
 * as. */
static inline uint32_t tr_names_cfunc(PyObject *func) {
  if (PyCFunction_Check(func)) {
    PyCFunctionObject *f = (PyCFunctionObject *)func;
    return tr_names_cfunc_find(f->m_ml, tr_names_self_type(f->m_self), func,
                               NULL);
  }
  return tr_names_cfunc_find(Py_TYPE(func), NULL, func, NULL);
}

/* The same for a method descriptor called on `self` (sys.monitoring's
 * CALL of `list.append` with arg0 the list): the same entry, and so the
 * same name, as the bound method the profile hook is given. */
static inline uint32_t tr_names_cfunc_descr(PyObject *descr, PyObject *self) {
  return tr_names_cfunc_find(((PyMethodDescrObject *)descr)->d_method,
                             tr_names_self_type(self), descr, self);
}

/* A C function called by a Python function that the file filters leave
 * out is left out too (TR_ID_SKIP instead of `id`): it is that function's
 * work (docs/options.md).  The caller is the frame the event comes with,
 * known by its cached id even when its own call was never seen (entered
 * before recording began). */
uint32_t tr_names_cfunc_filtered(PyFrameObject *caller, uint32_t id);

/* The same with the caller's code object (sys.monitoring's CALL). */
uint32_t tr_names_cfunc_filtered_code(PyCodeObject *caller, uint32_t id);

#endif

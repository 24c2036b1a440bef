/* hook.c: the C profile hook that turns CPython call events into ring
 * records, and the per-thread object that carries each thread's ring.
 *
 * Invariants of the hot path (tr_hook):
 *  - the enabled check comes first (tr_producer_ready: one relaxed load);
 *  - Python functions cost no hash lookup: their name id lives in the code
 *    object's PEP 523 extra slot after the first call;
 *  - C functions are keyed by their PyMethodDef in a GIL-protected table;
 *  - no exception escapes and none is clobbered: slow paths that call into
 *    Python save and restore the in-flight exception;
 *  - the hook runs with the GIL held, which is what serialises the name
 *    caches (3.11; a free-threaded build will need per-thread caches). */
#include <string.h>

#include "shim.h"

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

static Py_ssize_t g_extra_index = -1;

/* Extra-slot values are id + 1, optionally with this flag: calling the
 * code object means "this process has just been given its multiprocessing
 * name" (BaseProcess._after_fork runs right after a child's
 * _current_process is set, in every start method and in loky). */
#define TR_EXTRA_NAME_PROBE ((uintptr_t)1 << 62)
#define TR_EXTRA_ID_MASK (((uintptr_t)1 << 33) - 1)
/* Code from files under this prefix (traced's own package) is not
 * recorded. */
static PyObject *g_skip_prefix;

/* ---- names ---------------------------------------------------------------
 * Extra slots store id + 1 so that NULL means "not interned yet". */

static uint32_t intern_utf8(PyObject *s) {
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(s, &n);
  if (u == NULL) {
    PyErr_Clear();
    return TR_STRING_UNKNOWN;
  }
  return tr_client_intern(u, (size_t)n);
}

static bool is_name_probe(PyCodeObject *code) {
  /* BaseProcess._after_fork (multiprocessing/process.py) or an override
   * in multiprocessing/context.py (SpawnProcess, ForkServerProcess). */
  if (PyUnicode_CompareWithASCIIString(code->co_name, "_after_fork") != 0)
    return false;
  const char *f = PyUnicode_AsUTF8(code->co_filename);
  if (f == NULL) {
    PyErr_Clear();
    return false;
  }
  return strstr(f, "/multiprocessing/") != NULL;
}

/* Tells the daemon this process's multiprocessing name. */
static void __attribute__((noinline)) name_probe(void) {
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
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
  PyErr_Restore(et, ev, tb);
}

static uint32_t __attribute__((noinline)) intern_code(PyCodeObject *code) {
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  uint32_t id = TR_STRING_UNKNOWN;
  if (g_skip_prefix != NULL &&
      PyUnicode_Tailmatch(code->co_filename, g_skip_prefix, 0, PY_SSIZE_T_MAX,
                          -1) == 1) {
    /* traced's own code, and what it calls, is not recorded; except the
     * decorator's wrapper, whose callee is the user's function. */
    id = PyUnicode_CompareWithASCIIString(code->co_name,
                                          "_traced_call_through") == 0
             ? TR_ID_SKIP
             : TR_ID_SKIP_TREE;
    goto cache;
  }
  PyObject *name = PyUnicode_FromFormat(
      "%U (%U:%d)", code->co_qualname, code->co_filename, code->co_firstlineno);
  if (name != NULL) {
    id = intern_utf8(name);
    Py_DECREF(name);
  } else {
    PyErr_Clear();
  }
cache:;
  uintptr_t v = (uintptr_t)id + 1;
  if (is_name_probe(code)) v |= TR_EXTRA_NAME_PROBE;
  if (TR_CodeSetExtra((PyObject *)code, g_extra_index, (void *)v) < 0)
    PyErr_Clear();
  if (v & TR_EXTRA_NAME_PROBE) name_probe();
  PyErr_Restore(et, ev, tb);
  return id;
}

static inline uint32_t code_id(PyFrameObject *frame) {
  PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
  void *extra = NULL;
  uint32_t id;
  if (TR_CodeGetExtra((PyObject *)code, g_extra_index, &extra) == 0 &&
      extra != NULL) {
    uintptr_t v = (uintptr_t)extra;
    if (__builtin_expect(v & TR_EXTRA_NAME_PROBE, 0)) name_probe();
    id = (uint32_t)((v & TR_EXTRA_ID_MASK) - 1);
  } else {
    id = intern_code(code);
  }
  Py_DECREF(code);
  return id;
}

/* C functions: open addressing on (method def, owner type). */
typedef struct cfunc_entry {
  const void *def;  /* PyMethodDef*, or the callable's type for others */
  PyTypeObject *tp; /* type of the bound self, NULL for module functions */
  uint32_t id;
} cfunc_entry;

static cfunc_entry *g_cfuncs;
static size_t g_cfuncs_cap, g_cfuncs_len;

static inline size_t cfunc_hash(const void *def, const void *tp) {
  uintptr_t h = (uintptr_t)def * 0x9E3779B97F4A7C15ull ^
                (uintptr_t)tp * 0xC2B2AE3D27D4EB4Full;
  return (size_t)(h ^ (h >> 29));
}

static int cfunc_grow(void) {
  size_t cap = g_cfuncs_cap ? g_cfuncs_cap * 2 : 1024;
  cfunc_entry *n = PyMem_RawCalloc(cap, sizeof(*n));
  if (n == NULL) return -1;
  for (size_t i = 0; i < g_cfuncs_cap; i++) {
    cfunc_entry *e = &g_cfuncs[i];
    if (e->def == NULL) continue;
    size_t j = cfunc_hash(e->def, e->tp) & (cap - 1);
    while (n[j].def != NULL) j = (j + 1) & (cap - 1);
    n[j] = *e;
  }
  PyMem_RawFree(g_cfuncs);
  g_cfuncs = n;
  g_cfuncs_cap = cap;
  return 0;
}

static uint32_t __attribute__((noinline))
intern_cfunc(const void *def, PyTypeObject *tp, PyObject *func, size_t slot) {
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  PyObject *name = NULL;
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
    id = TR_ID_SKIP_TREE;
  } else if (name != NULL) {
    id = intern_utf8(name);
  } else if (name == NULL) {
    PyErr_Clear();
  }
  Py_XDECREF(name);
  /* Keep heap types alive while the table names them, so a new type at
   * the same address can never inherit this name. */
  if (tp != NULL && (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) Py_INCREF(tp);
  g_cfuncs[slot].def = def;
  g_cfuncs[slot].tp = tp;
  g_cfuncs[slot].id = id;
  g_cfuncs_len++;
  PyErr_Restore(et, ev, tb);
  return id;
}

static inline uint32_t cfunc_id(PyObject *func) {
  const void *def;
  PyTypeObject *tp = NULL;
  if (PyCFunction_Check(func)) {
    PyCFunctionObject *f = (PyCFunctionObject *)func;
    def = f->m_ml;
    PyObject *self = f->m_self;
    if (self != NULL && !PyModule_Check(self))
      tp = PyType_Check(self) ? (PyTypeObject *)self : Py_TYPE(self);
  } else {
    def = Py_TYPE(func);
  }
  if (__builtin_expect((g_cfuncs_len + 1) * 2 > g_cfuncs_cap, 0)) {
    if (cfunc_grow() < 0) return TR_STRING_UNKNOWN;
  }
  size_t mask = g_cfuncs_cap - 1;
  size_t j = cfunc_hash(def, tp) & mask;
  for (;;) {
    cfunc_entry *e = &g_cfuncs[j];
    if (e->def == def && e->tp == tp) return e->id;
    if (e->def == NULL) return intern_cfunc(def, tp, func, j);
    j = (j + 1) & mask;
  }
}

/* ---- the hook ----------------------------------------------------------- */

tr_hook_opts tr_hook_options = {.trace_c = true};

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  /* With C functions ignored, their events cost this one test (a profile
   * function cannot ask CPython not to deliver them). */
  if (what >= PyTrace_C_CALL && !tr_hook_options.trace_c) return 0;
  tr_producer *p = &((TracedThread *)obj)->p;
  if (!tr_producer_ready(p)) return 0;
  uint64_t ts = tr_now_ns();
  switch (what) {
    case PyTrace_CALL:
      tr_producer_enter(p, ts, code_id(frame), TR_REC_PY_CALL);
      break;
    case PyTrace_RETURN:
      tr_producer_exit(p, ts, TR_REC_PY_RETURN);
      break;
    case PyTrace_C_CALL:
      tr_producer_enter(p, ts, cfunc_id(arg), TR_REC_C_CALL);
      break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
      tr_producer_exit(p, ts, TR_REC_C_RETURN);
      break;
    default:
      break;
  }
  return 0;
}

/* ---- per-thread object ----------------------------------------------------
 */

static void thread_dealloc(TracedThread *self) {
  PyTypeObject *tp = Py_TYPE(self);
  tr_client_thread_close(&self->p);
  tp->tp_free((PyObject *)self);
  Py_DECREF(tp);
}

static PyType_Slot thread_slots[] = {
    {Py_tp_dealloc, thread_dealloc},
    {Py_tp_doc, "A thread's ring; the profile hook's argument."},
    {0, NULL},
};

PyType_Spec tr_thread_spec = {
    .name = "traced._traced.Thread",
    .basicsize = sizeof(TracedThread),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = thread_slots,
};

TracedThread *tr_thread_new(PyTypeObject *type, const char *name) {
  TracedThread *t = PyObject_New(TracedThread, type);
  if (t == NULL) return NULL;
  tr_client_thread_init(&t->p);
  snprintf(t->p.name, sizeof(t->p.name), "%s", name ? name : "");
  return t;
}

int tr_hook_set_skip_prefix(PyObject *prefix) {
  Py_XINCREF(prefix);
  Py_XSETREF(g_skip_prefix, prefix);
  return 0;
}

int tr_hook_init(void) {
  if (g_extra_index < 0) {
    g_extra_index = TR_RequestCodeExtraIndex(NULL);
    if (g_extra_index < 0) return -1;
  }
  return 0;
}

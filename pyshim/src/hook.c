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

#if TR_HAVE_EVAL_HOOK
/* The frame-evaluation hook needs the interpreter frame's layout (3.11:
 * f_code, localsplus), which only the internal headers give. */
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#endif

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

/* ---- the frame-evaluation hook's thread cache --------------------------
 * (used by the slow paths below, so declared first; see "frame evaluation"
 * further down). */

static PyThreadState *g_eval_ts;    /* the thread whose TracedThread... */
static TracedThread *g_eval_thread; /* ...this is (borrowed) */
static PyThreadState *g_eval_busy;  /* thread inside a slow path */

/* The slow paths below may run Python code (a property getter, a repr):
 * under the frame-evaluation hook those frames would be recorded in the
 * middle of recording another.  While one runs, the thread's cache entry
 * is cleared, so its frames take the slow lookup, which sees g_eval_busy
 * and lets them run unrecorded, as the profile hook's own re-entrancy
 * guard (tstate->tracing) does for it. */
typedef struct slow_guard {
  PyThreadState *ts, *busy;
  TracedThread *thread;
} slow_guard;

static slow_guard slow_enter(void) {
  slow_guard g = {g_eval_ts, g_eval_busy, g_eval_thread};
  g_eval_busy = PyThreadState_Get();
  g_eval_ts = NULL;
  return g;
}

static void slow_leave(slow_guard g) {
  g_eval_busy = g.busy;
  g_eval_ts = g.ts;
  g_eval_thread = g.thread;
}

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
  slow_guard g = slow_enter();
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
  slow_leave(g);
}

static uint32_t __attribute__((noinline)) intern_code(PyCodeObject *code) {
  slow_guard g = slow_enter();
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
  slow_leave(g);
  return id;
}

static inline uint32_t code_id_of(PyCodeObject *code) {
  void *extra = NULL;
  if (TR_CodeGetExtra((PyObject *)code, g_extra_index, &extra) == 0 &&
      extra != NULL) {
    uintptr_t v = (uintptr_t)extra;
    if (__builtin_expect(v & TR_EXTRA_NAME_PROBE, 0)) name_probe();
    return (uint32_t)((v & TR_EXTRA_ID_MASK) - 1);
  }
  return intern_code(code);
}

static inline uint32_t code_id(PyFrameObject *frame) {
  PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
  uint32_t id = code_id_of(code);
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

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  tr_producer *p = &((TracedThread *)obj)->p;
  if (!tr_producer_ready(p)) return 0;
  uint64_t ts = tr_now();
  switch (what) {
    case PyTrace_CALL:
      tr_producer_enter(p, ts, code_id(frame), TR_REC_PY_CALL);
      break;
    case PyTrace_RETURN:
      tr_producer_exit(p, ts, TR_REC_PY_RETURN);
      break;
    case PyTrace_C_CALL:
      if (((TracedThread *)obj)->trace_c)
        tr_producer_enter(p, ts, cfunc_id(arg), TR_REC_C_CALL);
      break;
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
      if (((TracedThread *)obj)->trace_c)
        tr_producer_exit(p, ts, TR_REC_C_RETURN);
      break;
    default:
      break;
  }
  return 0;
}

/* ---- frame evaluation ------------------------------------------------------
 * When C functions are not recorded, Python calls are seen through the
 * interpreter's frame-evaluation function (PEP 523) instead of the profile
 * hook: every Python frame (calls, generator and coroutine resumptions)
 * is evaluated through eval_hook, which records its enter and exit around
 * CPython's own evaluator.  A profile hook makes 3.11 run every
 * instruction on its tracing path (deoptimised) and build a frame object
 * per call; this does neither, so a recorded call costs a fraction
 * (docs/benchmarks.md).  It sees no C function calls, which is why it
 * serves only that mode.
 *
 * The hook is interpreter-wide, so it also reaches threads that were
 * running before tracing began.  Each thread's TracedThread lives in its
 * thread-state dict (created on the thread's first frame) and is found
 * through a one-entry cache; the GIL serialises all of it. */

#if TR_HAVE_EVAL_HOOK

#define TR_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)

static _PyFrameEvalFunction g_eval_prev; /* the evaluator we wrap */
static PyTypeObject *g_thread_type;      /* strong, while installed */
static PyObject *g_thread_key;           /* "traced.thread", strong */
static bool g_eval_installed;

/* The name of the thread running `f`: threading's record of it, else (a
 * thread still starting up, inside Thread._bootstrap) the Thread object
 * that is the frame's `self`; "" when neither is found. */
static void thread_name_for(_PyInterpreterFrame *f, char *out, size_t size) {
  out[0] = '\0';
  PyObject *key = PyUnicode_FromString("threading");
  PyObject *threading = key != NULL ? PyImport_GetModule(key) : NULL;
  Py_XDECREF(key);
  if (threading == NULL) {
    PyErr_Clear();
    return;
  }
  PyObject *thr = NULL;
  PyObject *active = PyObject_GetAttrString(threading, "_active");
  PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
  if (active != NULL && ident != NULL && PyDict_Check(active)) {
    thr = PyDict_GetItemWithError(active, ident); /* borrowed */
    Py_XINCREF(thr);
  }
  Py_XDECREF(ident);
  Py_XDECREF(active);
  if (thr == NULL && f->f_code->co_argcount > 0 && f->localsplus[0] != NULL) {
    PyObject *cls = PyObject_GetAttrString(threading, "Thread");
    if (cls != NULL && PyType_Check(cls) &&
        PyObject_TypeCheck(f->localsplus[0], (PyTypeObject *)cls)) {
      thr = f->localsplus[0];
      Py_INCREF(thr);
    }
    Py_XDECREF(cls);
  }
  if (thr != NULL) {
    /* `_name`, not the `name` property: no Python code runs. */
    PyObject *name = PyObject_GetAttrString(thr, "_name");
    if (name != NULL && PyUnicode_Check(name)) {
      const char *u = PyUnicode_AsUTF8(name);
      if (u != NULL) snprintf(out, size, "%s", u);
    }
    Py_XDECREF(name);
    Py_DECREF(thr);
  }
  Py_DECREF(threading);
  PyErr_Clear();
}

/* Finds (or creates) the calling thread's TracedThread and caches it.
 * NULL: this thread records nothing now. */
static TracedThread *__attribute__((noinline))
eval_thread_slow(PyThreadState *ts, _PyInterpreterFrame *f) {
  if (g_eval_busy == ts || !g_eval_installed) return NULL;
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  TracedThread *t = NULL;
  PyObject *dict = PyThreadState_GetDict(); /* borrowed */
  if (dict != NULL) {
    PyObject *o = PyDict_GetItemWithError(dict, g_thread_key); /* borrowed */
    if (o != NULL && Py_IS_TYPE(o, g_thread_type)) {
      t = (TracedThread *)o;
    } else if (o == NULL && !PyErr_Occurred()) {
      slow_guard g = slow_enter();
      char name[64];
      thread_name_for(f, name, sizeof(name));
      t = tr_thread_new(g_thread_type, name, false);
      if (t != NULL) {
        if (PyDict_SetItem(dict, g_thread_key, (PyObject *)t) < 0) {
          Py_DECREF(t);
          t = NULL;
        } else {
          Py_DECREF(t); /* the dict keeps it */
        }
      }
      slow_leave(g);
    }
  }
  PyErr_Clear();
  PyErr_Restore(et, ev, tb);
  if (t != NULL) {
    g_eval_ts = ts;
    g_eval_thread = t;
  }
  return t;
}

static PyObject *eval_hook(PyThreadState *ts, _PyInterpreterFrame *f,
                           int throwflag) {
  /* Calling a generator or coroutine function only creates the object (its
   * frame runs RETURN_GENERATOR and is moved into it): the profile hook
   * sees no call there, only each resumption, so neither do we. */
  if (__builtin_expect(f->f_code->co_flags & TR_GEN_FLAGS, 0) &&
      f->owner != FRAME_OWNED_BY_GENERATOR)
    return g_eval_prev(ts, f, throwflag);
  TracedThread *t = ts == g_eval_ts ? g_eval_thread : eval_thread_slow(ts, f);
  if (t == NULL) return g_eval_prev(ts, f, throwflag);
  /* `t` stays valid while this frame runs: its thread-state dict owns it
   * and is cleared only when the thread has returned from every frame. */
  tr_producer *p = &t->p;
  if (tr_producer_ready(p))
    tr_producer_enter(p, tr_now(), code_id_of(f->f_code), TR_REC_PY_CALL);
  PyObject *res = g_eval_prev(ts, f, throwflag);
  if (tr_producer_ready(p)) tr_producer_exit(p, tr_now(), TR_REC_PY_RETURN);
  return res;
}

int tr_eval_install(PyTypeObject *thread_type, const char *name) {
  PyInterpreterState *interp = PyInterpreterState_Get();
  if (!g_eval_installed) {
    _PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
    if (cur != eval_hook) g_eval_prev = cur;
    if (g_thread_key == NULL) {
      g_thread_key = PyUnicode_InternFromString("traced.thread");
      if (g_thread_key == NULL) return -1;
    }
    Py_INCREF(thread_type);
    Py_XSETREF(g_thread_type, thread_type);
  }
  /* The calling thread gets its ring now, under the name it was given;
   * a previous one (an earlier session) is replaced. */
  PyObject *dict = PyThreadState_GetDict();
  if (dict == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "no thread-state dict");
    return -1;
  }
  TracedThread *t = tr_thread_new(thread_type, name, false);
  if (t == NULL) return -1;
  int rc = PyDict_SetItem(dict, g_thread_key, (PyObject *)t);
  Py_DECREF(t);
  if (rc < 0) return -1;
  g_eval_ts = NULL; /* refill the cache from the dict */
  g_eval_installed = true;
  _PyInterpreterState_SetEvalFrameFunc(interp, eval_hook);
  return 0;
}

void tr_eval_uninstall(void) {
  if (!g_eval_installed) return;
  PyInterpreterState *interp = PyInterpreterState_Get();
  if (_PyInterpreterState_GetEvalFrameFunc(interp) == eval_hook)
    _PyInterpreterState_SetEvalFrameFunc(interp, g_eval_prev);
  /* Frames still running return through eval_hook, which keeps
   * g_eval_prev; the per-thread objects stay with their threads (a
   * later session reuses them) and record nothing while disabled. */
  g_eval_installed = false;
  g_eval_ts = NULL;
}

#else /* !TR_HAVE_EVAL_HOOK */

int tr_eval_install(PyTypeObject *thread_type, const char *name) {
  (void)thread_type;
  (void)name;
  PyErr_SetString(PyExc_NotImplementedError,
                  "no frame-evaluation hook for this Python version");
  return -1;
}

void tr_eval_uninstall(void) {}

#endif /* TR_HAVE_EVAL_HOOK */

/* ---- per-thread object ----------------------------------------------------
 */

static void thread_dealloc(TracedThread *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (g_eval_thread == self) {
    g_eval_ts = NULL;
    g_eval_thread = NULL;
  }
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

TracedThread *tr_thread_new(PyTypeObject *type, const char *name,
                            bool trace_c) {
  TracedThread *t = PyObject_New(TracedThread, type);
  if (t == NULL) return NULL;
  tr_client_thread_init(&t->p);
  snprintf(t->p.name, sizeof(t->p.name), "%s", name ? name : "");
  t->trace_c = trace_c;
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

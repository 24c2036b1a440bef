/* hook.c: the C profile hook that turns CPython call events into ring
 * records, and the per-thread object that carries each thread's ring.
 *
 * Invariants of the hot path (tr_hook):
 *  - the enabled check comes first (tr_producer_ready: one relaxed load);
 *  - Python functions cost no hash lookup: their name id lives in the code
 *    object's PEP 523 extra slot after the first call;
 *  - C functions are keyed by their PyMethodDef in a GIL-protected table;
 *  - filters are decided once per code object and cached with its name
 *    (docs/options.md); options that are off cost one predictable test
 *    each (C events, arguments, return values);
 *  - no exception escapes and none is clobbered: slow paths that call into
 *    Python save and restore the in-flight exception;
 *  - the hook runs with the GIL held, which is what serialises the name
 *    caches (3.11; a free-threaded build will need per-thread caches). */
#include <string.h>

#include "args.h"
#include "compat.h"
#include "libclient/src/options.h"
#include "shim.h"

#if TR_HAVE_EVAL_HOOK
/* The frame-evaluation hook needs the interpreter frame's layout (3.11:
 * f_code, localsplus), which only the internal headers give. */
#define Py_BUILD_CORE 1
#include "internal/pycore_frame.h"
#undef Py_BUILD_CORE
#endif

/* The frame a code object is being called in, as the slow paths need it
 * for probes: the profile hook's frame object, or (the frame-evaluation
 * hook, 3.11) the interpreter frame.  Both NULL: the code object is not
 * being called, only its decision is wanted. */
typedef struct tr_fref {
  PyFrameObject *obj;
  void *iframe; /* struct _PyInterpreterFrame * */
} tr_fref;

/* The frame's i-th local (tr_frame_local), a new reference or NULL. */
static PyObject *fref_local(tr_fref f, PyCodeObject *code, Py_ssize_t i) {
  if (f.obj != NULL) return tr_frame_local(f.obj, code, i);
#if TR_HAVE_EVAL_HOOK
  if (f.iframe != NULL) return tr_iframe_local(f.iframe, code, i);
#endif
  return NULL;
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

static Py_ssize_t g_extra_index = -1;

/* A code object's extra slot holds (id + 1) | tag, where id is what the
 * hook records for it (its name's string id, or TR_ID_SKIP / TR_ID_OWN)
 * and tag the file filters' generation: when the filters change (a new
 * session with other options), every cached decision is stale and is
 * made again on the code object's next call, for the price of comparing
 * the tag in the same test that finds the slot filled.  With this flag
 * too, calling the code object means "this process has just been given
 * its multiprocessing name" (BaseProcess._after_fork runs right after a
 * child's _current_process is set, in every start method and in loky). */
_Static_assert(sizeof(uintptr_t) == 8, "64-bit code-extra values");
#define TR_EXTRA_ID_MASK (((uintptr_t)1 << 33) - 1)
#define TR_EXTRA_GEN_SHIFT 34
#define TR_EXTRA_GEN_MASK ((((uintptr_t)1 << 27) - 1) << TR_EXTRA_GEN_SHIFT)
#define TR_EXTRA_NAME_PROBE ((uintptr_t)1 << 62)
/* Calling it renames a threading.Thread (the Thread.name setter). */
#define TR_EXTRA_THREAD_PROBE ((uintptr_t)1 << 63)
#define TR_EXTRA_PROBES (TR_EXTRA_NAME_PROBE | TR_EXTRA_THREAD_PROBE)
static uintptr_t g_extra_tag; /* generation << TR_EXTRA_GEN_SHIFT */

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

/* --include-files / --exclude-files: absolute path prefixes as UTF-8. */
typedef struct prefix_list {
  char **items;
  size_t *lens;
  size_t n;
} prefix_list;
static prefix_list g_include, g_exclude;

/* ---- names ---------------------------------------------------------------
 */

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

/* threading.Thread.name's setter (threading.py), not its getter. */
static bool is_thread_name_setter(PyCodeObject *code) {
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

/* The program renames a thread (`thread.name = ...`): when it is the
 * calling thread, the trace follows.  Read from the setter's arguments as
 * it is called; another thread's ring is not ours to write. */
static void __attribute__((noinline))
thread_name_probe(tr_fref frame, PyCodeObject *code) {
  tr_exc saved = tr_exc_save();
  PyObject *self = fref_local(frame, code, 0);
  PyObject *name = fref_local(frame, code, 1);
  PyObject *ident =
      self != NULL ? PyObject_GetAttrString(self, "_ident") : NULL;
  PyObject *str = name != NULL ? PyObject_Str(name) : NULL;
  if (ident != NULL && str != NULL && PyLong_Check(ident) &&
      PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident()) {
    const char *u = PyUnicode_AsUTF8(str);
    if (u != NULL) tr_events_thread_name(u);
  }
  Py_XDECREF(str);
  Py_XDECREF(ident);
  Py_XDECREF(name);
  Py_XDECREF(self);
  PyErr_Clear();
  tr_exc_restore(saved);
}

/* Tells the daemon this process's multiprocessing name. */
static void __attribute__((noinline)) name_probe(void) {
  slow_guard g = slow_enter();
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
  slow_leave(g);
}

/* Whether `path` (n bytes) is one of the prefixes or lies under one: a
 * prefix matches whole path components ("/src" matches "/src/a.py", not
 * "/srcx.py"). */
static bool prefix_match(const prefix_list *l, const char *path, size_t n) {
  for (size_t i = 0; i < l->n; i++) {
    size_t k = l->lens[i];
    if (k > n || memcmp(path, l->items[i], k) != 0) continue;
    if (k == n || path[k] == '/' || (k > 0 && l->items[i][k - 1] == '/'))
      return true;
  }
  return false;
}

/* Whether the file filters leave the code object out (docs/options.md). */
static bool file_filtered(PyCodeObject *code) {
  if (g_include.n == 0 && g_exclude.n == 0) return false;
  Py_ssize_t n;
  const char *f = PyUnicode_AsUTF8AndSize(code->co_filename, &n);
  if (f == NULL) {
    PyErr_Clear();
    return g_include.n > 0;
  }
  if (g_include.n > 0 && !prefix_match(&g_include, f, (size_t)n)) return true;
  return prefix_match(&g_exclude, f, (size_t)n);
}

/* The first call of a code object (or the first under new filters, or a
 * call of a probe): decides what it records as and caches that.  `v` is
 * what the slot held (0: nothing).  frame NULL: only the decision is
 * wanted, the code object is not being called (no probe runs). */
static uint32_t __attribute__((noinline))
code_slow(tr_fref frame, PyCodeObject *code, uintptr_t v) {
  bool called = frame.obj != NULL || frame.iframe != NULL;
  if (v != 0 && (v & TR_EXTRA_GEN_MASK) == g_extra_tag) {
    /* Decided under these filters; only a probe flag brought us here. */
    if (called && (v & TR_EXTRA_NAME_PROBE)) name_probe();
    if (called && (v & TR_EXTRA_THREAD_PROBE)) thread_name_probe(frame, code);
    return (uint32_t)((v & TR_EXTRA_ID_MASK) - 1);
  }
  slow_guard g = slow_enter();
  tr_exc saved = tr_exc_save();
  /* A name interned under earlier filters is still the name. */
  uint32_t old = v != 0 ? (uint32_t)((v & TR_EXTRA_ID_MASK) - 1) : TR_ID_SKIP;
  uint32_t id = TR_STRING_UNKNOWN;
  if (g_skip_prefix != NULL &&
      PyUnicode_Tailmatch(code->co_filename, g_skip_prefix, 0, PY_SSIZE_T_MAX,
                          -1) == 1) {
    /* traced's own code, and what it calls, is not recorded; except its
     * wrappers (the decorators', print()'s), whose callee is the user's
     * function. */
    PyObject *pre = PyUnicode_FromString("_traced_call_through");
    bool through = pre != NULL && PyUnicode_Tailmatch(code->co_name, pre, 0,
                                                      PY_SSIZE_T_MAX, -1) == 1;
    Py_XDECREF(pre);
    id = through ? TR_ID_THROUGH : TR_ID_OWN;
  } else if (file_filtered(code)) {
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
  v = ((uintptr_t)id + 1) | g_extra_tag;
  if (is_name_probe(code)) v |= TR_EXTRA_NAME_PROBE;
  if (is_thread_name_setter(code)) v |= TR_EXTRA_THREAD_PROBE;
  if (TR_CodeSetExtra((PyObject *)code, g_extra_index, (void *)v) < 0)
    PyErr_Clear();
  tr_exc_restore(saved);
  slow_leave(g);
  if (called && (v & TR_EXTRA_NAME_PROBE)) name_probe();
  if (called && (v & TR_EXTRA_THREAD_PROBE)) thread_name_probe(frame, code);
  return id;
}

static inline uint32_t code_id_of(tr_fref frame, PyCodeObject *code) {
  void *extra = NULL;
  /* One test: filled, decided under the current filters, no probe. */
  if (__builtin_expect(
          TR_CodeGetExtra((PyObject *)code, g_extra_index, &extra) == 0 &&
              extra != NULL &&
              ((uintptr_t)extra & ~TR_EXTRA_ID_MASK) == g_extra_tag,
          1))
    return (uint32_t)(((uintptr_t)extra & TR_EXTRA_ID_MASK) - 1);
  return code_slow(frame, code, (uintptr_t)extra);
}

static inline uint32_t code_id(PyFrameObject *frame) {
  PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
  tr_fref fr = {frame, NULL};
  uint32_t id = code_id_of(fr, code);
  Py_DECREF(code);
  return id;
}

static void prefix_list_free(prefix_list *l) {
  for (size_t i = 0; i < l->n; i++) PyMem_RawFree(l->items[i]);
  PyMem_RawFree(l->items);
  PyMem_RawFree(l->lens);
  memset(l, 0, sizeof(*l));
}

/* A prefix_list from a tuple of str (or None); -1 with an exception. */
static int prefix_list_from(prefix_list *l, PyObject *seq) {
  memset(l, 0, sizeof(*l));
  if (seq == NULL || seq == Py_None) return 0;
  if (!PyTuple_Check(seq)) {
    PyErr_SetString(PyExc_TypeError, "file filters must be a tuple of str");
    return -1;
  }
  Py_ssize_t n = PyTuple_GET_SIZE(seq);
  if (n == 0) return 0;
  l->items = PyMem_RawCalloc((size_t)n, sizeof(*l->items));
  l->lens = PyMem_RawCalloc((size_t)n, sizeof(*l->lens));
  if (l->items == NULL || l->lens == NULL) goto nomem;
  for (Py_ssize_t i = 0; i < n; i++) {
    PyObject *s = PyTuple_GET_ITEM(seq, i);
    Py_ssize_t k;
    const char *u = PyUnicode_Check(s) ? PyUnicode_AsUTF8AndSize(s, &k) : NULL;
    if (u == NULL) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "file filters must be str");
      prefix_list_free(l);
      return -1;
    }
    l->items[l->n] = PyMem_RawMalloc((size_t)k + 1);
    if (l->items[l->n] == NULL) goto nomem;
    memcpy(l->items[l->n], u, (size_t)k + 1);
    l->lens[l->n++] = (size_t)k;
  }
  return 0;
nomem:
  prefix_list_free(l);
  PyErr_NoMemory();
  return -1;
}

static bool prefix_list_eq(const prefix_list *a, const prefix_list *b) {
  if (a->n != b->n) return false;
  for (size_t i = 0; i < a->n; i++)
    if (a->lens[i] != b->lens[i] ||
        memcmp(a->items[i], b->items[i], a->lens[i]) != 0)
      return false;
  return true;
}

int tr_hook_set_file_filters(PyObject *include, PyObject *exclude) {
  prefix_list inc, exc;
  if (prefix_list_from(&inc, include) < 0) return -1;
  if (prefix_list_from(&exc, exclude) < 0) {
    prefix_list_free(&inc);
    return -1;
  }
  if (prefix_list_eq(&inc, &g_include) && prefix_list_eq(&exc, &g_exclude)) {
    prefix_list_free(&inc);
    prefix_list_free(&exc);
    return 0;
  }
  prefix_list_free(&g_include);
  prefix_list_free(&g_exclude);
  g_include = inc;
  g_exclude = exc;
  tr_hook_options.file_filters = inc.n > 0 || exc.n > 0;
  tr_hook_options_changed();
  /* Every code object decides again on its next call. */
  g_extra_tag =
      (g_extra_tag + ((uintptr_t)1 << TR_EXTRA_GEN_SHIFT)) & TR_EXTRA_GEN_MASK;
  return 0;
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
  tr_exc saved = tr_exc_save();
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
    id = TR_ID_OWN;
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
  tr_exc_restore(saved);
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

tr_hook_opts tr_hook_options = {.trace_c = true,
                                .repr_limit = TR_REPR_LIMIT_DEFAULT};

void tr_hook_options_changed(void) {
  tr_hook_options.any = !tr_hook_options.trace_c || tr_hook_options.log_args ||
                        tr_hook_options.log_return ||
                        tr_hook_options.file_filters;
}

struct tr_argbuf *tr_thread_argbuf(TracedThread *t) {
  if (t->args == NULL) t->args = PyMem_RawMalloc(sizeof(*t->args));
  return t->args;
}

/* A Python call whose arguments are recorded (--log-args).  repr() runs
 * user code: with the GIL possibly released meanwhile, but never this
 * thread's hook (CPython does not profile calls made by a profile
 * function) nor traced's API on this thread (`busy`). */
static void __attribute__((noinline))
enter_with_args(TracedThread *t, uint64_t ts, uint32_t id,
                PyFrameObject *frame) {
  tr_argbuf *b = tr_thread_argbuf(t);
  if (b == NULL || t->busy) {
    tr_producer_enter(&t->p, ts, id, TR_REC_PY_CALL);
    return;
  }
  t->busy = true;
  tr_args_of_frame(b, frame, tr_hook_options.repr_limit);
  t->busy = false;
  tr_producer_enter_args(&t->p, ts, id, TR_REC_PY_CALL, b->data, b->len);
}

/* A Python call returns a value that is recorded (--log-return). */
static void __attribute__((noinline))
exit_with_return(TracedThread *t, uint64_t ts, PyObject *value) {
  tr_argbuf *b = tr_thread_argbuf(t);
  if (b == NULL || t->busy) {
    tr_producer_exit(&t->p, ts, TR_REC_PY_RETURN);
    return;
  }
  t->busy = true;
  tr_args_of_return(b, value, tr_hook_options.repr_limit);
  t->busy = false;
  tr_producer_exit_args(&t->p, ts, TR_REC_PY_RETURN, b->data, b->len);
}

/* A C function called by a Python function that the file filters leave
 * out is left out too: it is that function's work (docs/options.md).  The
 * caller is the frame the event comes with, known by its cached id even
 * when its own call was never seen (entered before recording began). */
static uint32_t __attribute__((noinline))
filter_cfunc(PyFrameObject *caller, uint32_t id) {
  if (caller == NULL) return id;
  PyCodeObject *code = PyFrame_GetCode(caller); /* new ref */
  void *extra = NULL;
  if (TR_CodeGetExtra((PyObject *)code, g_extra_index, &extra) < 0) {
    PyErr_Clear();
    extra = NULL;
  }
  tr_fref none = {NULL, NULL};
  uint32_t cid = code_slow(none, code, (uintptr_t)extra);
  Py_DECREF(code);
  return cid == TR_ID_SKIP ? TR_ID_SKIP : id;
}

/* Two profile functions: tr_hook when no per-event option is on, which
 * pays for none of them, and tr_hook_full, where each option on costs its
 * own test.  A thread switches between them itself, when it starts
 * recording into a session (hook_on_session), so a session's options
 * reach threads that were already running. */
int tr_hook_full(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  /* With C functions ignored, their events cost this one test (a profile
   * function cannot ask CPython not to deliver them). */
  if (what >= PyTrace_C_CALL && !tr_hook_options.trace_c) return 0;
  TracedThread *t = (TracedThread *)obj;
  tr_producer *p = &t->p;
  if (!tr_producer_ready(p)) return 0;
  uint64_t ts = tr_now();
  switch (what) {
    case PyTrace_CALL: {
      uint32_t id = code_id(frame);
      if (tr_hook_options.log_args && tr_producer_would_record(p, id))
        enter_with_args(t, ts, id, frame);
      else
        tr_producer_enter(p, ts, id, TR_REC_PY_CALL);
      break;
    }
    case PyTrace_RETURN:
      /* arg is NULL when the call ends by an exception. */
      if (tr_hook_options.log_return && arg != NULL &&
          tr_producer_top_recorded(p))
        exit_with_return(t, ts, arg);
      else
        tr_producer_exit(p, ts, TR_REC_PY_RETURN);
      break;
    case PyTrace_C_CALL: {
      uint32_t id = cfunc_id(arg);
      if (tr_hook_options.file_filters) id = filter_cfunc(frame, id);
      tr_producer_enter(p, ts, id, TR_REC_C_CALL);
      break;
    }
    case PyTrace_C_RETURN:
    case PyTrace_C_EXCEPTION:
      tr_producer_exit(p, ts, TR_REC_C_RETURN);
      break;
    default:
      break;
  }
  return 0;
}

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  TracedThread *t = (TracedThread *)obj;
  tr_producer *p = &t->p;
  if (!tr_producer_ready(p)) {
    /* The session just begun wants the other profile function, which
     * this thread now has: this event is its first. */
    if (__builtin_expect(t->redispatch, 0)) {
      t->redispatch = false;
      return tr_hook_full(obj, frame, what, arg);
    }
    return 0;
  }
  uint64_t ts = tr_now();
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

Py_tracefunc tr_hook_func(void) {
  return tr_hook_options.any ? tr_hook_full : tr_hook;
}

/* A thread starts recording into a session: it takes the profile
 * function the options need.  Runs in that thread, with the GIL, so
 * changing its own thread state is safe (the profile stays set, so
 * nothing else of CPython's tracing state changes). */
static bool hook_on_session(tr_producer *p) {
  TracedThread *t = (TracedThread *)((char *)p - offsetof(TracedThread, p));
  PyThreadState *ts = PyThreadState_Get();
  Py_tracefunc want = tr_hook_func();
  if (ts->c_profileobj != (PyObject *)t || ts->c_profilefunc == want ||
      (ts->c_profilefunc != tr_hook && ts->c_profilefunc != tr_hook_full))
    return true;
  ts->c_profilefunc = want;
  if (want != tr_hook_full) return true;
  t->redispatch = true;
  return false;
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
      t = tr_thread_new(g_thread_type, name);
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
    tr_producer_enter(p, tr_now(), code_id_of((tr_fref){NULL, f}, f->f_code),
                      TR_REC_PY_CALL);
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
  TracedThread *t = tr_thread_new(thread_type, name);
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
  PyMem_RawFree(self->args);
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
  t->p.max_depth_src = &tr_hook_options.max_depth;
  t->p.on_session = hook_on_session;
  t->redispatch = false;
  snprintf(t->p.name, sizeof(t->p.name), "%s", name ? name : "");
  t->busy = false;
  t->args = NULL;
  return t;
}

TracedThread *tr_thread_current(void) {
  PyThreadState *ts = PyThreadState_Get();
  if ((ts->c_profilefunc != tr_hook && ts->c_profilefunc != tr_hook_full) ||
      ts->c_profileobj == NULL)
    return NULL;
  return (TracedThread *)ts->c_profileobj;
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

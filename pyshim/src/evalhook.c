/* evalhook.c: everything built against CPython's internal headers: the
 * 3.11 frame-evaluation hook, and reading a 3.11 frame's locals in place.
 *
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
 * through a one-entry cache (thread.h); the GIL serialises all of it. */
#include "evalhook.h"

#include "compat.h"
#include "names.h"
#include "thread.h"

#if PY_VERSION_HEX < 0x030C0000
/* The interpreter frame's layout (3.11: f_code, localsplus, owner) and
 * the locals' kinds, which only the internal headers give. */
#define Py_BUILD_CORE 1
#include <internal/pycore_code.h>
#include <internal/pycore_frame.h>
#undef Py_BUILD_CORE

/* Reading a frame's locals in place (compat.h): 3.12 added
 * PyFrame_GetVar() (args.c); before, only the internal layout has them. */
PyObject *tr_frame_local(PyFrameObject *frame, PyCodeObject *code,
                         Py_ssize_t i) {
  return tr_iframe_local(frame->f_frame, code, i);
}

PyObject *tr_iframe_local(void *iframe, PyCodeObject *code, Py_ssize_t i) {
  _PyInterpreterFrame *f = iframe;
  if (f == NULL || i >= code->co_nlocalsplus) return NULL;
  PyObject *v = f->localsplus[i];
  /* An argument that a closure captures lives in a cell once the frame
   * has made it (before its first instruction it is still the value). */
  if (v != NULL &&
      (_PyLocals_GetKind(code->co_localspluskinds, (int)i) & CO_FAST_CELL) &&
      PyCell_Check(v))
    v = PyCell_GET(v);
  Py_XINCREF(v);
  return v;
}
#endif

#if TR_HAVE_EVAL_HOOK

#define TR_GEN_FLAGS (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR)

/* The hook's state while installed (the thread cache is thread.c's),
 * written with the GIL held. */
static struct {
  _PyFrameEvalFunction prev; /* the evaluator we wrap */
  PyTypeObject *thread_type; /* strong, while installed */
  PyObject *thread_key;      /* "traced.thread", strong */
  bool installed;
} g;

/* Finds (or creates) the calling thread's TracedThread and caches it.
 * NULL: this thread records nothing now. */
static TracedThread *__attribute__((noinline))
eval_thread_slow(PyThreadState *ts, _PyInterpreterFrame *f) {
  if (tr_thread_cached.busy == ts || !g.installed) return NULL;
  PyObject *et, *ev, *tb;
  PyErr_Fetch(&et, &ev, &tb);
  TracedThread *t = NULL;
  PyObject *dict = PyThreadState_GetDict(); /* borrowed */
  if (dict != NULL) {
    PyObject *o = PyDict_GetItemWithError(dict, g.thread_key); /* borrowed */
    if (o != NULL && Py_IS_TYPE(o, g.thread_type)) {
      t = (TracedThread *)o;
    } else if (o == NULL && !PyErr_Occurred()) {
      tr_thread_cache saved = tr_thread_slow_enter();
      char name[64];
      tr_thread_name(f->f_code->co_argcount > 0 ? f->localsplus[0] : NULL, name,
                     sizeof(name));
      /* No on_session: the thread's profile function is not ours to
       * switch (the profile hook's is, profile.c). */
      t = tr_thread_new(g.thread_type, name, NULL);
      if (t != NULL) {
        if (PyDict_SetItem(dict, g.thread_key, (PyObject *)t) < 0) {
          Py_DECREF(t);
          t = NULL;
        } else {
          Py_DECREF(t); /* the dict keeps it */
        }
      }
      tr_thread_slow_leave(saved);
    }
  }
  PyErr_Clear();
  PyErr_Restore(et, ev, tb);
  if (t != NULL) {
    tr_thread_cached.ts = ts;
    tr_thread_cached.thread = t;
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
    return g.prev(ts, f, throwflag);
  TracedThread *t = ts == tr_thread_cached.ts ? tr_thread_cached.thread
                                              : eval_thread_slow(ts, f);
  if (t == NULL) return g.prev(ts, f, throwflag);
  /* `t` stays valid while this frame runs: its thread-state dict owns it
   * and is cleared only when the thread has returned from every frame. */
  tr_producer *p = &t->p;
  if (tr_producer_ready(p))
    tr_producer_enter(p, tr_now(),
                      tr_names_code_of((tr_fref){NULL, f}, f->f_code),
                      TR_REC_PY_CALL);
  PyObject *res = g.prev(ts, f, throwflag);
  if (tr_producer_ready(p)) tr_producer_exit(p, tr_now(), TR_REC_PY_RETURN);
  return res;
}

int tr_eval_install(PyTypeObject *thread_type, const char *name) {
  PyInterpreterState *interp = PyInterpreterState_Get();
  if (!g.installed) {
    _PyFrameEvalFunction cur = _PyInterpreterState_GetEvalFrameFunc(interp);
    if (cur != eval_hook) g.prev = cur;
    if (g.thread_key == NULL) {
      g.thread_key = PyUnicode_InternFromString("traced.thread");
      if (g.thread_key == NULL) return -1;
    }
    Py_INCREF(thread_type);
    Py_XSETREF(g.thread_type, thread_type);
  }
  /* The calling thread gets its ring now, under the name it was given;
   * a previous one (an earlier session) is replaced. */
  PyObject *dict = PyThreadState_GetDict();
  if (dict == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "no thread-state dict");
    return -1;
  }
  TracedThread *t = tr_thread_new(thread_type, name, NULL);
  if (t == NULL) return -1;
  int rc = PyDict_SetItem(dict, g.thread_key, (PyObject *)t);
  Py_DECREF(t);
  if (rc < 0) return -1;
  tr_thread_cached.ts = NULL; /* refill the cache from the dict */
  g.installed = true;
  _PyInterpreterState_SetEvalFrameFunc(interp, eval_hook);
  return 0;
}

void tr_eval_uninstall(void) {
  if (!g.installed) return;
  PyInterpreterState *interp = PyInterpreterState_Get();
  if (_PyInterpreterState_GetEvalFrameFunc(interp) == eval_hook)
    _PyInterpreterState_SetEvalFrameFunc(interp, g.prev);
  /* Frames still running return through eval_hook, which keeps g.prev;
   * the per-thread objects stay with their threads (a later session
   * reuses them) and record nothing while disabled. */
  g.installed = false;
  tr_thread_cached.ts = NULL;
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

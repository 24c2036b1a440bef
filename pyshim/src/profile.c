/* profile.c: the C profile hook that turns CPython call events into ring
 * records: two profile functions compiled from one inline body.
 *
 * Invariants of the hot path (profile()):
 *  - the enabled check comes first (tr_producer_ready: one relaxed load);
 *  - names cost no hash lookup for Python functions and one table probe
 *    for C functions (names.h);
 *  - filters are decided once per code object and cached with its name
 *    (docs/options.md); options that are off cost one predictable test
 *    each (C events, arguments, return values), and none at all in
 *    tr_hook, the function used when all are off;
 *  - no exception escapes and none is clobbered: slow paths that call into
 *    Python save and restore the in-flight exception;
 *  - the hook runs with the GIL held, which is what serialises the name
 *    caches (3.11; a free-threaded build will need per-thread caches). */
#include "profile.h"

#include "args.h"
#include "filters.h"
#include "names.h"

/* A Python call whose arguments are recorded (--log-args).  repr() runs
 * user code: with the GIL possibly released meanwhile, but never this
 * thread's hook (CPython does not profile calls made by a profile
 * function) nor traced's API on this thread (`busy`). */
void __attribute__((noinline))
tr_enter_with_args(TracedThread *t, uint64_t ts, uint32_t id,
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
void __attribute__((noinline))
tr_exit_with_return(TracedThread *t, uint64_t ts, PyObject *value) {
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

/* The body of both profile functions.  `full` is a constant in each, so
 * tr_hook compiles to none of the per-event options' tests, and
 * tr_hook_full to one test per option (C events first). */
static inline __attribute__((always_inline)) int profile(PyObject *obj,
                                                         PyFrameObject *frame,
                                                         int what,
                                                         PyObject *arg,
                                                         const bool full) {
  /* With C functions ignored, their events cost this one test (a profile
   * function cannot ask CPython not to deliver them). */
  if (full && what >= PyTrace_C_CALL && !tr_hook_options.trace_c) return 0;
  TracedThread *t = (TracedThread *)obj;
  tr_producer *p = &t->p;
  if (!tr_producer_ready(p)) {
    /* The session just begun wants the other profile function, which
     * this thread now has: this event is its first. */
    if (!full && __builtin_expect(t->redispatch, 0)) {
      t->redispatch = false;
      return tr_hook_full(obj, frame, what, arg);
    }
    return 0;
  }
  uint64_t ts = tr_now();
  switch (what) {
    case PyTrace_CALL: {
      uint32_t id = tr_names_code(frame);
      if (full && tr_hook_options.log_args && tr_producer_would_record(p, id))
        tr_enter_with_args(t, ts, id, frame);
      else
        tr_producer_enter(p, ts, id, TR_REC_PY_CALL);
      break;
    }
    case PyTrace_RETURN:
      /* arg is NULL when the call ends by an exception. */
      if (full && tr_hook_options.log_return && arg != NULL &&
          tr_producer_top_recorded(p))
        tr_exit_with_return(t, ts, arg);
      else
        tr_producer_exit(p, ts, TR_REC_PY_RETURN);
      break;
    case PyTrace_C_CALL: {
      uint32_t id = tr_names_cfunc(arg);
      if (full && tr_hook_options.file_filters)
        id = tr_names_cfunc_filtered(frame, id);
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

int tr_hook_full(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  return profile(obj, frame, what, arg, true);
}

int tr_hook(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg) {
  return profile(obj, frame, what, arg, false);
}

Py_tracefunc tr_hook_func(void) {
  return tr_hook_options.any ? tr_hook_full : tr_hook;
}

/* A thread starts recording into a session: it takes the profile
 * function the options need.  Runs in that thread, with the GIL, so
 * changing its own thread state is safe (the profile stays set, so
 * nothing else of CPython's tracing state changes).  A thread switches
 * itself, when its producer first sees the new session, so a session's
 * options reach threads that were already running. */
static bool on_session(tr_producer *p) {
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

TracedThread *tr_profile_install(PyTypeObject *type, const char *name) {
  TracedThread *t = tr_thread_new(type, name, on_session);
  if (t == NULL) return NULL;
  PyEval_SetProfile(tr_hook_func(), (PyObject *)t);
  Py_DECREF(t);
  return t;
}

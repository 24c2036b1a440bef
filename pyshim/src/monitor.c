/* monitor.c: the sys.monitoring (PEP 669) back end: C callbacks for the
 * interpreter's call events, the hook on CPython 3.12 and later.
 *
 * 3.12 runs a legacy profile function (PyEval_SetProfile) as a
 * sys.monitoring tool of its own, at about 90 ns per call before the
 * function does anything; callbacks registered directly cost a fraction
 * of that (docs/benchmarks.md).  The events map onto the profile hook's
 * as CPython's own emulation maps them (Python/legacy_tracing.c), so a
 * trace has the same names, nesting and kinds as on 3.11:
 *   PY_START, PY_RESUME, PY_THROW   -> a Python call (enter)
 *   PY_RETURN, PY_YIELD, PY_UNWIND  -> its return (exit)
 *   CALL / C_RETURN, C_RAISE        -> a C call and its return, for
 *                                      builtin functions and methods and
 *                                      method descriptors called on a self
 * With C functions ignored, CALL, C_RETURN and C_RAISE are not enabled at
 * all, so that mode costs only the Python events.
 *
 * Monitoring is per interpreter: it reaches every thread, including those
 * running before tracing began.  A thread finds its TracedThread through
 * a thread-local pointer (thread.h), set on its first event from its
 * thread-state dict, which owns the object.  CPython calls no callback
 * while one runs on the same thread (tstate->tracing), so the Python code
 * the slow paths run (names, repr()) is never recorded, as under the
 * profile hook.  The GIL serialises the name caches (names.h). */
#include "monitor.h"

#include "compat.h"
#include "filters.h"
#include "libclient/src/client.h"
#include "names.h"
#include "profile.h"
#include "thread.h"

#if PY_VERSION_HEX >= 0x030C0000

/* The back end's state while installed, written with the GIL held. */
static struct {
  PyObject *monitoring;        /* sys.monitoring, strong */
  PyObject *missing;           /* sys.monitoring.MISSING: CALL with no arg0 */
  PyObject *disable;           /* sys.monitoring.DISABLE */
  PyTypeObject *thread_type;   /* strong */
  PyTypeObject *callback_type; /* strong; made on first use */
  PyObject *thread_key;        /* "traced.thread", strong */
  bool installed;
} g;

/* The name of the calling thread (tr_thread_name), whose running frame's
 * first argument is the Thread of a thread still starting. */
static void thread_name(char *out, size_t size) {
  PyObject *self = NULL;
  PyFrameObject *frame = PyEval_GetFrame(); /* borrowed */
  if (frame != NULL) {
    PyCodeObject *code = PyFrame_GetCode(frame); /* new ref */
    if (code->co_argcount > 0) self = tr_frame_local(frame, code, 0);
    Py_DECREF(code);
  }
  tr_thread_name(self, out, size);
  Py_XDECREF(self);
}

/* The calling thread's first event: finds its TracedThread in the
 * thread-state dict (an earlier session's) or makes it there.  NULL: this
 * thread records nothing now. */
static TracedThread *__attribute__((noinline)) thread_slow(void) {
  if (!g.installed) return NULL;
  tr_exc saved = tr_exc_save();
  TracedThread *t = NULL;
  PyObject *dict = PyThreadState_GetDict(); /* borrowed */
  if (dict != NULL) {
    PyObject *o = PyDict_GetItemWithError(dict, g.thread_key); /* borrowed */
    if (o != NULL && Py_IS_TYPE(o, g.thread_type)) {
      t = (TracedThread *)o;
    } else if (o == NULL && !PyErr_Occurred()) {
      char name[64];
      thread_name(name, sizeof(name));
      /* No on_session: the callbacks read the options every event. */
      t = tr_thread_new(g.thread_type, name, NULL);
      if (t != NULL) {
        if (PyDict_SetItem(dict, g.thread_key, (PyObject *)t) < 0) {
          Py_DECREF(t);
          t = NULL;
        } else {
          Py_DECREF(t); /* the dict keeps it */
        }
      }
    }
  }
  PyErr_Clear();
  tr_exc_restore(saved);
  tr_thread_monitored = t;
  return t;
}

/* The calling thread's producer when it records now, else NULL. */
static inline tr_producer *producer(void) {
  TracedThread *t = tr_thread_monitored;
  if (__builtin_expect(t == NULL, 0)) {
    t = thread_slow();
    if (t == NULL) return NULL;
  }
  return tr_producer_ready(&t->p) ? &t->p : NULL;
}

static inline TracedThread *thread_of(tr_producer *p) {
  return (TracedThread *)((char *)p - offsetof(TracedThread, p));
}

/* Whether a CALL (C_RETURN, C_RAISE) of `callable` on `arg0` is a C
 * function's call to record, exactly as the profile hook's emulation
 * decides it: builtin functions and methods, and method descriptors
 * called with a self. */
static inline bool is_c_call(PyObject *callable, PyObject *arg0) {
  return PyCFunction_Check(callable) ||
         (Py_IS_TYPE(callable, &PyMethodDescr_Type) && arg0 != g.missing);
}

/* ---- the callbacks ----------------------------------------------------------
 * Each is a METH_FASTCALL function whose arguments are sys.monitoring's
 * for its events; `full` is a constant in each of the two sets, so the
 * set used when no per-event option is on has no test for any of them
 * (as tr_hook, profile.c).  None raises or clobbers the exception in
 * flight.
 *
 * A code object the file filters leave out (TR_ID_SKIP, decided once and
 * cached, names.h) records nothing at all: no enter, no exit, nothing on
 * the shadow stack, which records the same trace as the profile hook's
 * silent skip entries (they count in no recorded depth).  So its events
 * can be switched off where they happen: its PY_START, PY_RESUME,
 * PY_RETURN and PY_YIELD return sys.monitoring.DISABLE, and cost nothing
 * from then on until the next session's restart_events(); PY_THROW and
 * PY_UNWIND cannot be disabled and test the cached decision.  Filters
 * exist only in the full set. */

/* Whether the filters leave `code` out: its cached decision (the slow
 * path decides it on first sight, with no probe: it is not being
 * called). */
static inline bool filtered_out(PyObject *code) {
  return tr_hook_options.file_filters &&
         tr_names_code_of((tr_fref){NULL, NULL}, (PyCodeObject *)code) ==
             TR_ID_SKIP;
}

/* PY_START, PY_RESUME (code, offset); PY_THROW (code, offset,
 * exception), which may not return DISABLE (`throw`). */
static inline __attribute__((always_inline)) PyObject *on_enter(
    PyObject *const *args, const bool full, const bool throw) {
  tr_producer *p = producer();
  if (p == NULL) Py_RETURN_NONE;
  uint64_t ts = tr_now();
  uint32_t id = tr_names_code_running((PyCodeObject *)args[0]);
  if (full && id == TR_ID_SKIP && tr_hook_options.file_filters) {
    if (throw) Py_RETURN_NONE;
    return Py_NewRef(g.disable);
  }
  if (full && tr_hook_options.log_args && tr_producer_would_record(p, id)) {
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed */
    if (frame != NULL) {
      tr_enter_with_args(thread_of(p), ts, id, frame);
      Py_RETURN_NONE;
    }
  }
  tr_producer_enter(p, ts, id, TR_REC_PY_CALL);
  Py_RETURN_NONE;
}

/* PY_RETURN, PY_YIELD (code, offset, value). */
static inline __attribute__((always_inline)) PyObject *on_return(
    PyObject *const *args, const bool full) {
  tr_producer *p = producer();
  if (p == NULL) Py_RETURN_NONE;
  if (full && filtered_out(args[0])) return Py_NewRef(g.disable);
  uint64_t ts = tr_now();
  if (full && tr_hook_options.log_return && tr_producer_top_recorded(p))
    tr_exit_with_return(thread_of(p), ts, args[2]);
  else
    tr_producer_exit(p, ts, TR_REC_PY_RETURN);
  Py_RETURN_NONE;
}

/* PY_UNWIND (code, offset, exception): no return value. */
static inline __attribute__((always_inline)) PyObject *on_unwind(
    PyObject *const *args, const bool full) {
  tr_producer *p = producer();
  if (p == NULL || (full && filtered_out(args[0]))) Py_RETURN_NONE;
  tr_producer_exit(p, tr_now(), TR_REC_PY_RETURN);
  Py_RETURN_NONE;
}

/* CALL (code, offset, callable, arg0): `code` is the caller's. */
static inline __attribute__((always_inline)) PyObject *on_call(
    PyObject *const *args, const bool full) {
  PyObject *callable = args[2];
  /* Calls of Python functions are seen by PY_START; those of classes
   * and other callables are not recorded (nor by the profile hook's
   * emulation): neither costs a timestamp. */
  if (Py_IS_TYPE(callable, &PyFunction_Type) || !is_c_call(callable, args[3]))
    Py_RETURN_NONE;
  tr_producer *p = producer();
  if (p == NULL) Py_RETURN_NONE;
  uint64_t ts = tr_now();
  uint32_t id = PyCFunction_Check(callable)
                    ? tr_names_cfunc(callable)
                    : tr_names_cfunc_descr(callable, args[3]);
  if (full && tr_hook_options.file_filters)
    id = tr_names_cfunc_filtered_code((PyCodeObject *)args[0], id);
  tr_producer_enter(p, ts, id, TR_REC_C_CALL);
  Py_RETURN_NONE;
}

/* C_RETURN, C_RAISE (code, offset, callable, arg0). */
static inline __attribute__((always_inline)) PyObject *on_c_return(
    PyObject *const *args) {
  if (!is_c_call(args[2], args[3])) Py_RETURN_NONE;
  tr_producer *p = producer();
  if (p != NULL) tr_producer_exit(p, tr_now(), TR_REC_C_RETURN);
  Py_RETURN_NONE;
}

/* Each callback is a vectorcall function (PEP 590) of a callback object
 * (below), which sys.monitoring calls directly: a METH_FASTCALL builtin
 * would put CPython's cfunction_vectorcall_FASTCALL, its recursion check
 * and one more indirect call in front of every event (measured on fib:
 * docs/benchmarks.md). */
#define TR_CALLBACK(name, call)                                               \
  static PyObject *name(PyObject *self, PyObject *const *args, size_t nargsf, \
                        PyObject *kwnames) {                                  \
    (void)self;                                                               \
    (void)nargsf;                                                             \
    (void)kwnames;                                                            \
    return call;                                                              \
  }
TR_CALLBACK(on_enter_plain, on_enter(args, false, false))
TR_CALLBACK(on_enter_full, on_enter(args, true, false))
TR_CALLBACK(on_throw_plain, on_enter(args, false, true))
TR_CALLBACK(on_throw_full, on_enter(args, true, true))
TR_CALLBACK(on_return_plain, on_return(args, false))
TR_CALLBACK(on_return_full, on_return(args, true))
TR_CALLBACK(on_unwind_plain, on_unwind(args, false))
TR_CALLBACK(on_unwind_full, on_unwind(args, true))
TR_CALLBACK(on_call_plain, on_call(args, false))
TR_CALLBACK(on_call_full, on_call(args, true))
TR_CALLBACK(on_c_return_any, on_c_return(args))
#undef TR_CALLBACK

/* The callback objects' type: a callable whose call is its `fn`. */
typedef struct callback_obj {
  PyObject_HEAD vectorcallfunc fn;
} callback_obj;

static PyMemberDef callback_members[] = {
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(callback_obj, fn),
     Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot callback_slots[] = {
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_members, callback_members},
    {Py_tp_doc, "A sys.monitoring callback of traced."},
    {0, NULL},
};

static PyType_Spec callback_spec = {
    .name = "traced._traced.MonitorCallback",
    .basicsize = sizeof(callback_obj),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL |
             Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = callback_slots,
};

/* A new callback object calling `fn`, or NULL with an exception. */
static PyObject *callback_new(vectorcallfunc fn) {
  if (g.callback_type == NULL) {
    g.callback_type = (PyTypeObject *)PyType_FromSpec(&callback_spec);
    if (g.callback_type == NULL) return NULL;
  }
  callback_obj *o = PyObject_New(callback_obj, g.callback_type);
  if (o != NULL) o->fn = fn;
  return (PyObject *)o;
}

/* One callback per row: the sys.monitoring.events it serves (names), and
 * its function without and with per-event options.  `c` rows are enabled
 * only when C functions are recorded. */
typedef struct callback {
  const char *events[2];
  vectorcallfunc plain, full;
  bool c;
} callback;

static const callback callbacks[] = {
    {{"PY_START", "PY_RESUME"}, on_enter_plain, on_enter_full, false},
    {{"PY_THROW", NULL}, on_throw_plain, on_throw_full, false},
    {{"PY_RETURN", "PY_YIELD"}, on_return_plain, on_return_full, false},
    {{"PY_UNWIND", NULL}, on_unwind_plain, on_unwind_full, false},
    {{"CALL", NULL}, on_call_plain, on_call_full, true},
    {{"C_RETURN", "C_RAISE"}, on_c_return_any, on_c_return_any, true},
};
#define TR_NCALLBACKS (sizeof(callbacks) / sizeof(callbacks[0]))

/* sys.monitoring.events.<name>, or -1 with an exception. */
static long event_bit(PyObject *events, const char *name) {
  PyObject *v = PyObject_GetAttrString(events, name);
  if (v == NULL) return -1;
  long bit = PyLong_AsLong(v);
  Py_DECREF(v);
  return bit;
}

/* Registers `func` (NULL: None, unregisters) for every event of every
 * row, and enables the events of the rows `on` says; -1 with an
 * exception. */
static int register_all(bool full, bool trace_c, bool on) {
  PyObject *events = PyObject_GetAttrString(g.monitoring, "events");
  if (events == NULL) return -1;
  long set = 0;
  int rc = -1;
  for (size_t i = 0; i < TR_NCALLBACKS; i++) {
    const callback *cb = &callbacks[i];
    bool want = on && (trace_c || !cb->c);
    PyObject *fn = Py_None;
    Py_INCREF(fn);
    if (want) {
      Py_DECREF(fn);
      fn = callback_new(full ? cb->full : cb->plain);
      if (fn == NULL) goto out;
    }
    for (int k = 0; k < 2 && cb->events[k] != NULL; k++) {
      long bit = event_bit(events, cb->events[k]);
      PyObject *r =
          bit < 0 ? NULL
                  : PyObject_CallMethod(g.monitoring, "register_callback",
                                        "ilO", TR_MONITOR_TOOL_ID, bit, fn);
      if (r == NULL) {
        Py_DECREF(fn);
        goto out;
      }
      Py_DECREF(r);
      if (want) set |= bit;
    }
    Py_DECREF(fn);
  }
  PyObject *r = PyObject_CallMethod(g.monitoring, "set_events", "il",
                                    TR_MONITOR_TOOL_ID, set);
  if (r == NULL) goto out;
  Py_DECREF(r);
  rc = 0;
out:
  Py_DECREF(events);
  return rc;
}

/* Calls sys.monitoring.<method>(tool id) and drops the result. */
static int call_tool(const char *method) {
  PyObject *r =
      PyObject_CallMethod(g.monitoring, method, "i", TR_MONITOR_TOOL_ID);
  if (r == NULL) return -1;
  Py_DECREF(r);
  return 0;
}

/* sys.monitoring.restart_events(): what callbacks disabled is enabled
 * again (for every tool: CPython has no per-tool form). */
static int call_restart(void) {
  PyObject *r = PyObject_CallMethod(g.monitoring, "restart_events", NULL);
  if (r == NULL) return -1;
  Py_DECREF(r);
  return 0;
}

/* Takes the tool id: 1, or 0 when another tool holds it (warned), -1 with
 * an exception. */
static int take_tool_id(void) {
  PyObject *holder =
      PyObject_CallMethod(g.monitoring, "get_tool", "i", TR_MONITOR_TOOL_ID);
  if (holder == NULL) return -1;
  if (holder != Py_None) {
    PyObject *s = PyObject_Str(holder);
    const char *u = s != NULL ? PyUnicode_AsUTF8(s) : NULL;
    tr_client_warn("sys.monitoring tool id %d is held by %s; running untraced",
                   TR_MONITOR_TOOL_ID, u != NULL ? u : "another tool");
    Py_XDECREF(s);
    Py_DECREF(holder);
    PyErr_Clear();
    return 0;
  }
  Py_DECREF(holder);
  PyObject *r = PyObject_CallMethod(g.monitoring, "use_tool_id", "is",
                                    TR_MONITOR_TOOL_ID, "traced");
  if (r == NULL) return -1;
  Py_DECREF(r);
  return 1;
}

int tr_monitor_install(PyTypeObject *thread_type, const char *name) {
  if (g.monitoring == NULL) {
    PyObject *sys = PyImport_ImportModule("sys");
    if (sys == NULL) return -1;
    g.monitoring = PyObject_GetAttrString(sys, "monitoring");
    Py_DECREF(sys);
    if (g.monitoring == NULL) return -1;
    g.missing = PyObject_GetAttrString(g.monitoring, "MISSING");
    if (g.missing == NULL) return -1;
    g.disable = PyObject_GetAttrString(g.monitoring, "DISABLE");
    if (g.disable == NULL) return -1;
    g.thread_key = PyUnicode_InternFromString("traced.thread");
    if (g.thread_key == NULL) return -1;
  }
  /* Installed already (a second session of this process, or a fork()ed
   * child of a traced process): the tool id is ours. */
  if (!g.installed) {
    int took = take_tool_id();
    if (took <= 0) return took;
  }
  Py_INCREF(thread_type);
  Py_XSETREF(g.thread_type, thread_type);
  /* The calling thread gets its ring now, under the name it was given;
   * a previous one (an earlier session) is replaced. */
  PyObject *dict = PyThreadState_GetDict();
  if (dict == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "no thread-state dict");
    goto fail;
  }
  TracedThread *t = tr_thread_new(thread_type, name, NULL);
  if (t == NULL) goto fail;
  int rc = PyDict_SetItem(dict, g.thread_key, (PyObject *)t);
  Py_DECREF(t);
  if (rc < 0) goto fail;
  tr_thread_monitored = t;
  g.installed = true;
  /* Events an earlier session disabled (filtered code objects) were
   * decided under its filters: every one is decided again. */
  if (register_all(tr_hook_options.any, tr_hook_options.trace_c, true) < 0 ||
      call_restart() < 0)
    goto fail;
  return 1;
fail:;
  tr_exc saved = tr_exc_save();
  tr_monitor_uninstall();
  tr_exc_restore(saved);
  return -1;
}

void tr_monitor_uninstall(void) {
  if (!g.installed) return;
  tr_exc saved = tr_exc_save();
  /* No callback runs after set_events(0); the per-thread objects stay
   * with their threads (a later session reuses them). */
  if (register_all(false, true, false) < 0) PyErr_Clear();
  if (call_restart() < 0) PyErr_Clear();
  if (call_tool("free_tool_id") < 0) PyErr_Clear();
  g.installed = false;
  tr_exc_restore(saved);
}

#else /* before 3.12 */

int tr_monitor_install(PyTypeObject *thread_type, const char *name) {
  (void)thread_type;
  (void)name;
  PyErr_SetString(PyExc_NotImplementedError,
                  "sys.monitoring needs Python 3.12 or later");
  return -1;
}

void tr_monitor_uninstall(void) {}

#endif

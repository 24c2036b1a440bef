/* thread.h: the per-thread object that carries a thread's ring, and how
 * the calling thread finds its own (thread.c). */
#ifndef TRACED_THREAD_H
#define TRACED_THREAD_H

#include "shim.h"

struct tr_argbuf;

/* The hooks' per-thread state: the profile hook's argument (owned by the
 * thread state: PyEval_SetProfile keeps a reference), or the value of the
 * frame-evaluation hook's entry in the thread-state dict.  Its dealloc
 * closes the ring. */
typedef struct TracedThread {
  PyObject_HEAD tr_producer p;
  /* Set while the hook runs Python code (repr() of arguments): traced's
   * API then records nothing on this thread, so that the shadow stack and
   * the half-built record stay consistent. */
  bool busy;
  bool redispatch;        /* see tr_hook() (profile.c) */
  struct tr_argbuf *args; /* argument payload scratch, allocated on use */
} TracedThread;

extern PyType_Spec tr_thread_spec;

/* A new TracedThread of `type` (made from tr_thread_spec) whose ring,
 * created on its first recorded event, is named `name`; `on_session` is
 * its producer's (producer.h; NULL: none).  NULL with an exception. */
TracedThread *tr_thread_new(PyTypeObject *type, const char *name,
                            bool (*on_session)(tr_producer *p));

/* The calling thread's object under the sys.monitoring back end
 * (monitor.c), borrowed from its thread-state dict, which owns it; NULL
 * until the thread's first event.  Cleared when the object goes.
 * initial-exec: one %fs-relative load on every event instead of a call
 * to __tls_get_addr; the 8 bytes come out of the static TLS surplus that
 * glibc keeps for modules loaded with dlopen. */
#define TR_TLS_IE __attribute__((tls_model("initial-exec")))
extern _Thread_local TracedThread *tr_thread_monitored TR_TLS_IE;

/* The calling thread's object when it is the thread's profile object
 * (the profile hook is installed on it) or its sys.monitoring object,
 * borrowed; else NULL. */
TracedThread *tr_thread_current(void);

/* The thread's argument scratch buffer, or NULL (out of memory). */
struct tr_argbuf *tr_thread_argbuf(TracedThread *t);

/* Where the calling thread's custom events go: its profile hook's ring
 * when the hook is installed on it, else libtraced's per-thread ring of
 * the C API (threads that existed before an inline session started);
 * NULL when the thread records nothing now, or is inside the hook's
 * repr(). */
tr_producer *tr_thread_event_producer(void);

/* The calling thread's name as threading knows it, into `out` ("" when
 * it does not): its record in threading._active, else -- a thread still
 * starting, in Thread._bootstrap, before threading knows its ident --
 * `self` (borrowed; the running frame's first argument, or NULL) when
 * that is a threading.Thread.  Runs no Python code (`_name`, not the
 * `name` property); leaves no exception set. */
void tr_thread_name(PyObject *self, char *out, size_t size);

/* Names the calling thread in the trace (also the name a ring created
 * later registers with); records nothing when it is not recording. */
void tr_thread_set_name(const char *name);

/* ---- the frame-evaluation hook's thread cache -----------------------------
 * The frame-evaluation hook (evalhook.c) finds a thread's TracedThread in
 * the thread-state dict, through this one-entry cache: `ts` is the thread
 * whose object `thread` is (borrowed; cleared when it is deallocated).
 * `busy` is a thread inside a slow path that may run Python code (a
 * property getter, a repr): under the frame-evaluation hook those frames
 * would be recorded in the middle of recording another, so while one
 * runs the cache is cleared and the hook's slow lookup, seeing `busy`,
 * lets them run unrecorded, as the profile hook's own re-entrancy guard
 * (tstate->tracing) does for it.  The GIL serialises all of it. */
typedef struct tr_thread_cache {
  PyThreadState *ts;
  TracedThread *thread;
  PyThreadState *busy;
} tr_thread_cache;

extern TR_HIDDEN tr_thread_cache tr_thread_cached;

/* Brackets a slow path that may run Python code (see above). */
static inline tr_thread_cache tr_thread_slow_enter(void) {
  tr_thread_cache saved = tr_thread_cached;
  tr_thread_cached.busy = PyThreadState_Get();
  tr_thread_cached.ts = NULL;
  return saved;
}

static inline void tr_thread_slow_leave(tr_thread_cache saved) {
  tr_thread_cached = saved;
}

#endif

/* thread.c: the per-thread object (TracedThread) that carries a thread's
 * ring for the hooks, and how the calling thread finds its own: as its
 * profile object, through the frame-evaluation hook's cache, or, for
 * custom events, libtraced's C API ring. */
#include "thread.h"

#include "filters.h"
#include "libclient/src/argbuf.h"
#include "libclient/src/client.h"

/* This file's mutable globals: the cache and the monitored thread's
 * object (thread.h). */
tr_thread_cache tr_thread_cached;
_Thread_local TracedThread *tr_thread_monitored TR_TLS_IE;

static void thread_dealloc(TracedThread *self) {
  PyTypeObject *tp = Py_TYPE(self);
  if (tr_thread_cached.thread == self) {
    tr_thread_cached.ts = NULL;
    tr_thread_cached.thread = NULL;
  }
  /* Deallocated by its own thread (its thread state is cleared) or by
   * another (after fork(), the threads that do not exist in the child):
   * only the former's pointer can name it. */
  if (tr_thread_monitored == self) tr_thread_monitored = NULL;
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

TracedThread *tr_thread_new(PyTypeObject *type, const char *name,
                            bool (*on_session)(tr_producer *p)) {
  TracedThread *t = PyObject_New(TracedThread, type);
  if (t == NULL) return NULL;
  tr_client_thread_init(&t->p);
  t->p.max_depth_src = &tr_hook_options.max_depth;
  t->p.on_session = on_session;
  t->redispatch = false;
  snprintf(t->p.name, sizeof(t->p.name), "%s", name ? name : "");
  t->busy = false;
  t->args = NULL;
  return t;
}

TracedThread *tr_thread_current(void) {
  PyThreadState *ts = PyThreadState_Get();
  PyObject *o = ts->c_profileobj;
  /* Ours exactly when the profile function is one of traced's: they are
   * only ever installed together (profile.c), and an object of this type
   * is known by its dealloc without this file knowing the profile
   * functions, which live above it. */
  if (o == NULL || Py_TYPE(o)->tp_dealloc != (destructor)thread_dealloc)
    return tr_thread_monitored;
  return (TracedThread *)o;
}

struct tr_argbuf *tr_thread_argbuf(TracedThread *t) {
  if (t->args == NULL) t->args = PyMem_RawMalloc(sizeof(*t->args));
  return t->args;
}

tr_producer *tr_thread_event_producer(void) {
  TracedThread *t = tr_thread_current();
  if (t == NULL) return tr_api_producer();
  if (t->busy) return NULL;
  if (tr_producer_ready(&t->p)) return &t->p;
  /* This call found a new session, and the thread switched its profile
   * function: the event is still ours to record. */
  if (t->redispatch) {
    t->redispatch = false;
    return tr_producer_ready(&t->p) ? &t->p : NULL;
  }
  return NULL;
}

void tr_thread_name(PyObject *self, char *out, size_t size) {
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
  if (thr == NULL && self != NULL) {
    PyObject *cls = PyObject_GetAttrString(threading, "Thread");
    if (cls != NULL && PyType_Check(cls) &&
        PyObject_TypeCheck(self, (PyTypeObject *)cls))
      thr = Py_NewRef(self);
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

void tr_thread_set_name(const char *name) {
  TracedThread *t = tr_thread_current();
  if (t != NULL) {
    /* Also the name a ring created later registers with. */
    snprintf(t->p.name, sizeof(t->p.name), "%s", name);
  }
  tr_producer *p = tr_thread_event_producer();
  if (p == NULL) return;
  tr_producer_put(p, tr_now(), traced_intern(name), TR_REC_THREAD_NAME);
}

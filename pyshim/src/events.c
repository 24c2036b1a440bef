/* events.c: the Python API's custom events (traced.instant, counter, span,
 * set_thread_name; print() and garbage-collector events): recorded into
 * the calling thread's ring, and nothing at all when it is not recording.
 *
 * Arguments are checked whether or not tracing is on, so that a program's
 * behaviour never depends on being traced; beyond that, these functions
 * never raise. */
#include "events.h"

#include <string.h>

#include "args.h"
#include "compat.h"
#include "thread.h"
#include "traced.h"

static uint32_t intern_name(PyObject *name) {
  const char *u = PyUnicode_AsUTF8(name);
  if (u == NULL) {
    PyErr_Clear();
    return TR_STRING_UNKNOWN;
  }
  return traced_intern(u);
}

static int check_name(PyObject *name, const char *what) {
  if (PyUnicode_Check(name)) return 0;
  PyErr_Format(PyExc_TypeError, "traced.%s: name must be a str, not %.100s",
               what, Py_TYPE(name)->tp_name);
  return -1;
}

static int check_args(PyObject *args, const char *what) {
  if (args == Py_None || PyDict_Check(args)) return 0;
  PyErr_Format(PyExc_TypeError,
               "traced.%s: args must be a dict or None, not %.100s", what,
               Py_TYPE(args)->tp_name);
  return -1;
}

/* Builds the payload of `args` (a dict or None) in b (on the caller's
 * stack: the GIL may be released while it is built, so no shared buffer).
 * Values are bounded by the payload, not by the repr limit: the program
 * chose to record them. */
static void payload(tr_argbuf *b, PyObject *args) {
  tr_exc saved = tr_exc_save();
  if (tr_args_of_dict(b, args, TR_ARGS_MAX_BYTES) < 0) {
    PyErr_Clear();
    tr_argbuf_init(b);
  }
  tr_exc_restore(saved);
}

/* instant(name, args=None) */
static PyObject *m_instant(PyObject *module, PyObject *const *argv,
                           Py_ssize_t argc) {
  (void)module;
  if (argc < 1 || argc > 2) {
    PyErr_SetString(PyExc_TypeError, "instant(name, args=None)");
    return NULL;
  }
  PyObject *args = argc > 1 ? argv[1] : Py_None;
  if (check_name(argv[0], "instant") < 0 || check_args(args, "instant") < 0)
    return NULL;
  tr_producer *p = tr_thread_event_producer();
  if (p == NULL) Py_RETURN_NONE;
  uint64_t ts = tr_now();
  uint32_t id = intern_name(argv[0]);
  tr_argbuf b;
  payload(&b, args);
  tr_producer_put_args(p, ts, id, TR_REC_INSTANT, b.data, b.len, NULL, 0);
  Py_RETURN_NONE;
}

/* counter(name, values): values is a dict of series name -> number. */
static PyObject *m_counter(PyObject *module, PyObject *const *argv,
                           Py_ssize_t argc) {
  (void)module;
  if (argc != 2 || !PyDict_Check(argv[1])) {
    PyErr_SetString(PyExc_TypeError, "counter(name, values: dict)");
    return NULL;
  }
  PyObject *values = argv[1];
  if (check_name(argv[0], "counter") < 0) return NULL;
  if (PyDict_GET_SIZE(values) == 0) {
    PyErr_SetString(PyExc_ValueError,
                    "traced.counter: give at least one value, e.g. "
                    "counter('queue', depth=3)");
    return NULL;
  }
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(values, &pos, &k, &v)) {
    if (!PyLong_Check(v) && !PyFloat_Check(v)) {
      PyErr_Format(PyExc_TypeError,
                   "traced.counter: %R must be a number, not %.100s", k,
                   Py_TYPE(v)->tp_name);
      return NULL;
    }
  }
  tr_producer *p = tr_thread_event_producer();
  if (p == NULL) Py_RETURN_NONE;
  uint64_t ts = tr_now();
  uint32_t id = intern_name(argv[0]);
  tr_argbuf buf, *b = &buf;
  tr_argbuf_init(b);
  tr_exc saved = tr_exc_save();
  double first = 0;
  pos = 0;
  while (PyDict_Next(values, &pos, &k, &v)) {
    Py_ssize_t klen;
    const char *key =
        PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, &klen) : NULL;
    if (key == NULL) {
      PyErr_Clear();
      continue;
    }
    double d = PyFloat_Check(v) ? PyFloat_AS_DOUBLE(v) : PyLong_AsDouble(v);
    if (d == -1.0 && PyErr_Occurred()) {
      PyErr_Clear(); /* an int too large for a double */
      continue;
    }
    if (b->count == 0) first = d;
    if (PyLong_Check(v) && !PyBool_Check(v)) {
      int overflow;
      long long x = PyLong_AsLongLongAndOverflow(v, &overflow);
      if (overflow == 0 && !PyErr_Occurred()) {
        tr_argbuf_add_i64(b, key, (size_t)klen, (int64_t)x);
        continue;
      }
      PyErr_Clear();
    }
    tr_argbuf_add_double(b, key, (size_t)klen, d);
  }
  tr_exc_restore(saved);
  tr_record value;
  memset(&value, 0, sizeof(value));
  memcpy(&value, &first, sizeof(first));
  tr_producer_put_args(p, ts, id, TR_REC_COUNTER, b->data, b->len, &value, 1);
  Py_RETURN_NONE;
}

/* span_begin(name, args=None) and span_end(name, args=None), which ends
 * the innermost span if it is `name`: the same checks and payload. */
static PyObject *span_event(PyObject *const *argv, Py_ssize_t argc,
                            bool begin) {
  if (argc < 1 || argc > 2) {
    PyErr_SetString(PyExc_TypeError, begin ? "span_begin(name, args=None)"
                                           : "span_end(name, args=None)");
    return NULL;
  }
  PyObject *args = argc > 1 ? argv[1] : Py_None;
  if (check_name(argv[0], "span") < 0 || check_args(args, "span") < 0)
    return NULL;
  tr_producer *p = tr_thread_event_producer();
  if (p == NULL) Py_RETURN_NONE;
  uint64_t ts = tr_now();
  uint32_t id = intern_name(argv[0]);
  tr_argbuf b;
  payload(&b, args);
  if (begin)
    tr_producer_span_begin(p, ts, id, b.data, b.len);
  else
    tr_producer_span_end(p, ts, id, b.data, b.len);
  Py_RETURN_NONE;
}

static PyObject *m_span_begin(PyObject *module, PyObject *const *argv,
                              Py_ssize_t argc) {
  (void)module;
  return span_event(argv, argc, true);
}

static PyObject *m_span_end(PyObject *module, PyObject *const *argv,
                            Py_ssize_t argc) {
  (void)module;
  return span_event(argv, argc, false);
}

/* set_thread_name(name): the calling thread's name in the trace. */
static PyObject *m_set_thread_name(PyObject *module, PyObject *const *argv,
                                   Py_ssize_t argc) {
  (void)module;
  if (argc != 1) {
    PyErr_SetString(PyExc_TypeError, "set_thread_name(name)");
    return NULL;
  }
  if (check_name(argv[0], "set_thread_name") < 0) return NULL;
  const char *u = PyUnicode_AsUTF8(argv[0]);
  if (u == NULL) return NULL;
  tr_thread_set_name(u);
  Py_RETURN_NONE;
}

PyMethodDef tr_event_methods[] = {
    {"instant", (PyCFunction)(void (*)(void))m_instant, METH_FASTCALL,
     "instant(name, args=None): a point event on this thread."},
    {"counter", (PyCFunction)(void (*)(void))m_counter, METH_FASTCALL,
     "counter(name, values): a counter sample, one series per key."},
    {"span_begin", (PyCFunction)(void (*)(void))m_span_begin, METH_FASTCALL,
     "span_begin(name, args=None): begin a span where the caller is."},
    {"span_end", (PyCFunction)(void (*)(void))m_span_end, METH_FASTCALL,
     "span_end(name, args=None): end the innermost span if it is name."},
    {"set_thread_name", (PyCFunction)(void (*)(void))m_set_thread_name,
     METH_FASTCALL, "set_thread_name(name): this thread's name in the trace."},
    {NULL, NULL, 0, NULL},
};

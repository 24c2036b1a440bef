/* emptyhook.c: a CPython profile hook that returns at once, the floor any
 * profile-hook tracer pays per call (the interpreter's own cost of calling
 * a C profile function on every call, return, c_call and c_return).
 *
 *   import _emptyhook
 *   _emptyhook.install()                    # this thread
 *   threading.setprofile(_emptyhook.bootstrap)  # threads started later
 *
 * bootstrap() is called by the interpreter as a Python-level profile
 * function (frame, event, arg) on a new thread's first event; it replaces
 * itself with the C hook for that thread, as a real tracer does.
 *
 *   _emptyhook.install_monitoring()         # 3.12+: every thread
 *   _emptyhook.install_monitoring(True)     # the same with C calls
 *
 * registers a METH_FASTCALL C function that returns None at once as the
 * sys.monitoring callback of PY_START and PY_RETURN (tool id 3): the floor
 * of a sys.monitoring tracer, next to the profile hook's.  With True it
 * is also the callback of CALL, C_RETURN and C_RAISE, the events a tracer
 * that records C functions needs: CALL fires for every call, Python
 * functions' included, so that is the floor of such a tracer. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static int empty_hook(PyObject *obj, PyFrameObject *frame, int what,
                      PyObject *arg) {
  (void)obj;
  (void)frame;
  (void)what;
  (void)arg;
  return 0;
}

static PyObject *install(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  PyEval_SetProfile(empty_hook, NULL);
  Py_RETURN_NONE;
}

static PyObject *uninstall(PyObject *self, PyObject *unused) {
  (void)self;
  (void)unused;
  PyEval_SetProfile(NULL, NULL);
  Py_RETURN_NONE;
}

static PyObject *bootstrap(PyObject *self, PyObject *const *args,
                           Py_ssize_t nargs) {
  (void)self;
  (void)args;
  (void)nargs;
  PyEval_SetProfile(empty_hook, NULL);
  Py_RETURN_NONE;
}

static PyObject *empty_callback(PyObject *self, PyObject *const *args,
                                Py_ssize_t nargs) {
  (void)self;
  (void)args;
  (void)nargs;
  Py_RETURN_NONE;
}

static PyMethodDef callback_def = {
    "empty_callback", (PyCFunction)(void (*)(void))empty_callback,
    METH_FASTCALL, NULL};

/* sys.monitoring's calls, made as a tool would make them from Python. */
static PyObject *install_monitoring(PyObject *self, PyObject *args) {
  (void)self;
  int with_calls = 0;
  if (!PyArg_ParseTuple(args, "|p", &with_calls)) return NULL;
  PyObject *globals = PyDict_New();
  PyObject *cb = PyCFunction_NewEx(&callback_def, NULL, NULL);
  PyObject *r = NULL;
  if (globals != NULL && cb != NULL &&
      PyDict_SetItemString(globals, "cb", cb) == 0 &&
      PyDict_SetItemString(globals, "with_calls",
                           with_calls ? Py_True : Py_False) == 0 &&
      PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) ==
          0)
    r = PyRun_String(
        "import sys\n"
        "m = sys.monitoring\n"
        "m.use_tool_id(3, 'emptyhook')\n"
        "m.register_callback(3, m.events.PY_START, cb)\n"
        "m.register_callback(3, m.events.PY_RETURN, cb)\n"
        "e = m.events.PY_START | m.events.PY_RETURN\n"
        "if with_calls:\n"
        "    for c in (m.events.CALL, m.events.C_RETURN, m.events.C_RAISE):\n"
        "        m.register_callback(3, c, cb)\n"
        "        e |= c\n"
        "m.set_events(3, e)\n",
        Py_file_input, globals, globals);
  Py_XDECREF(cb);
  Py_XDECREF(globals);
  if (r == NULL) return NULL;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS,
     "Set the empty C profile hook on the calling thread."},
    {"install_monitoring", install_monitoring, METH_VARARGS,
     "install_monitoring(with_calls=False): register the empty "
     "sys.monitoring callback (PY_START, PY_RETURN; with_calls: CALL, "
     "C_RETURN, C_RAISE too) for every thread (3.12+)."},
    {"uninstall", uninstall, METH_NOARGS,
     "Remove the calling thread's profile hook."},
    {"bootstrap", (PyCFunction)(void (*)(void))bootstrap, METH_FASTCALL,
     "bootstrap(frame, event, arg): for threading.setprofile(); installs "
     "the empty hook on the calling thread."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_emptyhook",
    .m_doc = "An empty C profile hook: the floor of profile-hook tracing.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__emptyhook(void) { return PyModuleDef_Init(&module); }

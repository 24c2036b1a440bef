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
 * itself with the C hook for that thread, as a real tracer does. */
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

static PyMethodDef methods[] = {
    {"install", install, METH_NOARGS,
     "Set the empty C profile hook on the calling thread."},
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

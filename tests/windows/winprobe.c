/* winprobe.c: a trivial CPython extension module, the first step of the
 * Python shim on Windows: built with mingw-w64 against CPython 3.13's
 * headers and the Windows pyconfig.h, linked to python313.dll, and
 * imported by the embeddable python.exe under Wine (tests/windows/). */
#include <Python.h>

/* add(a, b): a + b, through the argument parser and an int object. */
static PyObject *probe_add(PyObject *self, PyObject *args) {
  (void)self;
  long long a, b;
  if (!PyArg_ParseTuple(args, "LL", &a, &b)) return NULL;
  return PyLong_FromLongLong(a + b);
}

static PyMethodDef probe_methods[] = {
    {"add", probe_add, METH_VARARGS, "add(a, b) -> a + b"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef probe_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "winprobe",
    .m_size = 0,
    .m_methods = probe_methods,
};

PyMODINIT_FUNC PyInit_winprobe(void) { return PyModuleDef_Init(&probe_module); }

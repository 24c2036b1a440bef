/* filters.c: the process's recording options and the decisions of what
 * is left out: the --include-files / --exclude-files path prefixes and
 * traced's own package. */
#include "filters.h"

#include <string.h>

#include "libclient/src/options.h"

/* --include-files / --exclude-files: absolute path prefixes as UTF-8. */
typedef struct prefix_list {
  char **items;
  size_t *lens;
  size_t n;
} prefix_list;

tr_hook_opts tr_hook_options = {.trace_c = true,
                                .repr_limit = TR_REPR_LIMIT_DEFAULT};

/* The filters' state, changed only by configure() and set_skip_prefix()
 * with the GIL held, which is also what every reader holds. */
static struct {
  prefix_list include, exclude;
  PyObject *skip_prefix; /* strong; NULL: nothing is traced's own */
} g;

void tr_hook_options_changed(void) {
  tr_hook_options.any = !tr_hook_options.trace_c || tr_hook_options.log_args ||
                        tr_hook_options.log_return ||
                        tr_hook_options.file_filters;
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

bool tr_filters_file_out(PyCodeObject *code) {
  if (g.include.n == 0 && g.exclude.n == 0) return false;
  Py_ssize_t n;
  const char *f = PyUnicode_AsUTF8AndSize(code->co_filename, &n);
  if (f == NULL) {
    PyErr_Clear();
    return g.include.n > 0;
  }
  if (g.include.n > 0 && !prefix_match(&g.include, f, (size_t)n)) return true;
  return prefix_match(&g.exclude, f, (size_t)n);
}

uint32_t tr_filters_own(PyCodeObject *code) {
  if (g.skip_prefix == NULL ||
      PyUnicode_Tailmatch(code->co_filename, g.skip_prefix, 0, PY_SSIZE_T_MAX,
                          -1) != 1)
    return 0;
  /* traced's own code, and what it calls, is not recorded; except its
   * wrappers (the decorators', print()'s), whose callee is the user's
   * function. */
  PyObject *pre = PyUnicode_FromString("_traced_call_through");
  bool through = pre != NULL && PyUnicode_Tailmatch(code->co_name, pre, 0,
                                                    PY_SSIZE_T_MAX, -1) == 1;
  Py_XDECREF(pre);
  return through ? TR_ID_THROUGH : TR_ID_OWN;
}

void tr_filters_set_skip_prefix(PyObject *prefix) {
  Py_XINCREF(prefix);
  Py_XSETREF(g.skip_prefix, prefix);
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

int tr_filters_set_files(PyObject *include, PyObject *exclude) {
  prefix_list inc, exc;
  if (prefix_list_from(&inc, include) < 0) return -1;
  if (prefix_list_from(&exc, exclude) < 0) {
    prefix_list_free(&inc);
    return -1;
  }
  if (prefix_list_eq(&inc, &g.include) && prefix_list_eq(&exc, &g.exclude)) {
    prefix_list_free(&inc);
    prefix_list_free(&exc);
    return 0;
  }
  prefix_list_free(&g.include);
  prefix_list_free(&g.exclude);
  g.include = inc;
  g.exclude = exc;
  tr_hook_options.file_filters = inc.n > 0 || exc.n > 0;
  tr_hook_options_changed();
  return 1;
}

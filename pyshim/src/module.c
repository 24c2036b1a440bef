/* module.c: the `traced._traced` extension module: connection and session
 * calls into libtraced, and installing the profile hook on threads. */
#include <errno.h>
#include <string.h>

#include "evalhook.h"
#include "events.h"
#include "filters.h"
#include "libclient/src/client.h"
#include "libclient/src/options.h"
#include "libclient/src/transport.h"
#include "monitor.h"
#include "names.h"
#include "profile.h"
#include "proto/sockpath.h"
#include "thread.h"

typedef struct module_state {
  PyTypeObject *thread_type;
  bool no_eval_hook; /* TRACED_EVAL_HOOK=0: the profile hook in every mode */
  /* TRACED_MONITORING=0: the profile hook instead of sys.monitoring */
  bool no_monitoring;
} module_state;

static module_state *get_state(PyObject *module) {
  return (module_state *)PyModule_GetState(module);
}

/* Raises OSError(errno, strerror) for a negative errno from libtraced;
 * `what` says which call failed. */
static PyObject *raise_errno(int rc, const char *what) {
  int err = rc < 0 ? -rc : rc;
  PyObject *exc =
      PyObject_CallFunction(PyExc_OSError, "is", err, traced_strerror(-err));
  if (exc != NULL) {
    PyObject *note = PyUnicode_FromString(what);
    if (note != NULL) {
      PyObject_SetAttrString(exc, "traced_call", note);
      Py_DECREF(note);
    }
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    Py_DECREF(exc);
  }
  return NULL;
}

/* connect(socket=None) */
static PyObject *m_connect(PyObject *module, PyObject *args) {
  (void)module;
  const char *path = NULL;
  if (!PyArg_ParseTuple(args, "|z", &path)) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = tr_client_connect(path);
  Py_END_ALLOW_THREADS if (rc < 0) {
    /* A refusal says why in its own words (whose directory, which uid). */
    const char *why = tr_client_connect_why();
    if (why[0] != '\0') {
      PyObject *exc = PyObject_CallFunction(PyExc_OSError, "is", -rc, why);
      if (exc != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
      }
      return NULL;
    }
    return raise_errno(rc, "connect");
  }
  Py_RETURN_NONE;
}

static PyObject *m_connected(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyBool_FromLong(tr_client_connected());
}

static PyObject *m_disconnect(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  tr_client_disconnect();
  Py_RETURN_NONE;
}

#ifdef _WIN32
/* open_output(path) -> handle: on Windows the output is opened here, as a
 * Win32 HANDLE (shared for reading, writing and deletion: no traced file
 * stops another process from replacing it), not as a C runtime descriptor:
 * this module's C runtime (msvcrt) is not CPython's (the UCRT), so a
 * descriptor of one means nothing to the other. */
static PyObject *m_open_output(PyObject *module, PyObject *args) {
  (void)module;
  const char *path;
  if (!PyArg_ParseTuple(args, "s", &path)) return NULL;
  int h = tr_transport_open_output(path);
  if (h < 0) return raise_errno(h, "open output");
  return PyLong_FromLong(h);
}

/* close_output(handle): closes what open_output returned. */
static PyObject *m_close_output(PyObject *module, PyObject *args) {
  (void)module;
  int h;
  if (!PyArg_ParseTuple(args, "i", &h)) return NULL;
  tr_transport_close(h);
  Py_RETURN_NONE;
}
#endif

/* create(display_path, fd, min_duration_ns=0, max_size=0) -> token; on
 * Windows `fd` is a handle from open_output. */
static PyObject *m_create(PyObject *module, PyObject *args) {
  (void)module;
  const char *path;
  int fd;
  unsigned long long min_duration = 0, max_size = 0;
  if (!PyArg_ParseTuple(args, "si|KK", &path, &fd, &min_duration, &max_size))
    return NULL;
  char token[TR_TOKEN_HEX_LEN + 1];
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = tr_client_session_create(
      path, fd, (uint64_t)min_duration, (uint64_t)max_size, token);
  Py_END_ALLOW_THREADS if (rc < 0) return raise_errno(rc, "create session");
  return PyUnicode_FromString(token);
}

/* join(token) */
static PyObject *m_join(PyObject *module, PyObject *args) {
  (void)module;
  const char *token;
  if (!PyArg_ParseTuple(args, "s", &token)) return NULL;
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = tr_client_session_join(token);
  Py_END_ALLOW_THREADS if (rc < 0) return raise_errno(rc, "join session");
  Py_RETURN_NONE;
}

/* end(timeout_ms=0) -> dict */
/* ((pid, path, (arg, ...)), ...) of the summary's Python processes that
 * never joined; strings decoded as the file system's. */
static PyObject *unjoined_tuple(const tr_summary_extra *x) {
  PyObject *t = PyTuple_New(x->nunjoined);
  for (uint32_t i = 0; t != NULL && i < x->nunjoined; i++) {
    const tr_summary_child *c = &x->unjoined[i];
    PyObject *argv = PyTuple_New(c->argc);
    const char *a = c->argv;
    for (uint32_t k = 0; argv != NULL && k < c->argc; k++) {
      PyObject *s = PyUnicode_DecodeFSDefault(a);
      if (s == NULL)
        Py_CLEAR(argv);
      else
        PyTuple_SET_ITEM(argv, k, s); /* steals */
      a += strlen(a) + 1;
    }
    PyObject *path = argv != NULL ? PyUnicode_DecodeFSDefault(c->path) : NULL;
    PyObject *item =
        path != NULL ? Py_BuildValue("(kNN)", (unsigned long)c->pid, path, argv)
                     : NULL;
    if (path == NULL) Py_XDECREF(argv);
    if (item == NULL) {
      Py_CLEAR(t);
      break;
    }
    PyTuple_SET_ITEM(t, i, item); /* steals */
  }
  return t;
}

/* The lines naming them (tr_summary_unjoined_text), a list of str. */
static PyObject *unjoined_notes(const tr_summary_extra *x) {
  PyObject *l = PyList_New(0);
  char line[1536];
  for (uint32_t i = 0;
       l != NULL && tr_summary_unjoined_text(x, i, line, sizeof(line)); i++) {
    PyObject *s = PyUnicode_DecodeFSDefault(line);
    if (s == NULL || PyList_Append(l, s) < 0) Py_CLEAR(l);
    Py_XDECREF(s);
  }
  return l;
}

static PyObject *m_end(PyObject *module, PyObject *args) {
  (void)module;
  int timeout_ms = 0;
  if (!PyArg_ParseTuple(args, "|i", &timeout_ms)) return NULL;
  traced_summary s;
  tr_summary_extra x = {0};
  int rc;
  Py_BEGIN_ALLOW_THREADS rc = tr_client_session_end(&s, &x, timeout_ms);
  Py_END_ALLOW_THREADS if (rc < 0) return raise_errno(rc, "end session");
  char cut[512];
  tr_summary_cut_text(&x, cut, sizeof(cut));
  PyObject *unjoined = unjoined_tuple(&x);
  PyObject *notes = unjoined_notes(&x);
  PyObject *r = NULL;
  if (unjoined != NULL && notes != NULL)
    r = Py_BuildValue(
        "{s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:K,s:s,s:s,s:O,s:K,s:O}",
        "processes", (unsigned long long)s.processes, "threads",
        (unsigned long long)s.threads, "events", (unsigned long long)s.events,
        "dropped", (unsigned long long)s.dropped, "late",
        (unsigned long long)s.late, "malformed",
        (unsigned long long)s.malformed, "unmatched",
        (unsigned long long)s.unmatched, "filtered",
        (unsigned long long)x.filtered, "bytes", (unsigned long long)s.bytes,
        "path", s.path, "cut", cut, "unjoined", unjoined, "unjoined_omitted",
        (unsigned long long)x.unjoined_omitted, "notes", notes);
  Py_XDECREF(unjoined);
  Py_XDECREF(notes);
  return r;
}

/* Announces a started process (or an exec about to happen, or one that
 * failed) to the daemon: announce_child(pid, path, argv, failed). */
static PyObject *m_announce_child(PyObject *module, PyObject *args) {
  (void)module;
  unsigned long pid;
  const char *path;
  PyObject *argv_o;
  int failed = 0;
  if (!PyArg_ParseTuple(args, "kyO|p", &pid, &path, &argv_o, &failed))
    return NULL;
  /* A fork()ed child that has recorded nothing yet reattaches here, as on
   * its first event, so that its exec is announced on its own
   * connection.  (Relaxed: the word is this process's own private copy
   * until it reattaches.) */
  if (atomic_load_explicit(tr_client_state_word(), memory_order_relaxed) &
      TR_STATE_REATTACH)
    (void)tr_thread_event_producer();
  /* A tuple: its items stay alive while the GIL is released. */
  PyObject *argv = PySequence_Tuple(argv_o); /* new ref */
  if (argv == NULL) return NULL;
  const char *a[TR_CHILD_ARGC_MAX];
  size_t n = 0;
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(argv) && n < TR_CHILD_ARGC_MAX;
       i++) {
    PyObject *item = PyTuple_GET_ITEM(argv, i); /* borrowed */
    if (!PyBytes_Check(item)) {
      Py_DECREF(argv);
      PyErr_SetString(PyExc_TypeError, "announce_child: argv must hold bytes");
      return NULL;
    }
    a[n++] = PyBytes_AS_STRING(item);
  }
  Py_BEGIN_ALLOW_THREADS tr_client_announce_child((uint32_t)pid, path, a, n,
                                                  failed != 0);
  Py_END_ALLOW_THREADS Py_DECREF(argv);
  Py_RETURN_NONE;
}

static PyObject *m_process_info(PyObject *module, PyObject *args) {
  (void)module;
  const char *name;
  if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
  tr_client_process_info(name);
  Py_RETURN_NONE;
}

static PyObject *m_set_child_name(PyObject *module, PyObject *args) {
  (void)module;
  const char *name;
  if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
  tr_client_set_child_name(name);
  Py_RETURN_NONE;
}

static PyObject *m_token(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyUnicode_FromString(tr_client_token());
}

static PyObject *m_socket_path(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  return PyUnicode_FromString(tr_client_socket_path());
}

static PyObject *m_default_socket(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  char buf[108];
  int rc = tr_sockpath_default(buf, sizeof(buf));
  if (rc < 0) return raise_errno(rc, "socket path");
  return PyUnicode_FromString(buf);
}

static PyObject *m_warn(PyObject *module, PyObject *args) {
  (void)module;
  const char *msg;
  if (!PyArg_ParseTuple(args, "s", &msg)) return NULL;
  tr_client_warn("%s", msg);
  Py_RETURN_NONE;
}

/* Installs the hook on the calling thread, with a new ring named `name`.
 * Returns a borrowed reference (the thread state owns the object). */
static TracedThread *install_current(PyObject *module, const char *name) {
  return tr_profile_install(get_state(module)->thread_type, name);
}

/* The frame-evaluation hook serves the options it can: C functions left
 * out and no argument or return value capture (those read the frame
 * objects the profile hook gets). */
static bool uses_eval_hook(const module_state *st) {
  return TR_HAVE_EVAL_HOOK && !st->no_eval_hook && !tr_hook_options.trace_c &&
         !tr_hook_options.log_args && !tr_hook_options.log_return;
}

/* sys.monitoring serves every mode on 3.12 and later. */
static bool uses_monitoring(const module_state *st) {
  return PY_VERSION_HEX >= 0x030C0000 && !st->no_monitoring;
}

/* backend() -> str: the hook install() will use under the options
 * configure() set: "monitoring", "eval" or "profile". */
static PyObject *m_backend(PyObject *module, PyObject *unused) {
  (void)unused;
  module_state *st = get_state(module);
  return PyUnicode_FromString(uses_monitoring(st)  ? "monitoring"
                              : uses_eval_hook(st) ? "eval"
                                                   : "profile");
}

/* uses_eval_hook() -> bool: what install() will do under the options
 * configure() set. */
static PyObject *m_uses_eval_hook(PyObject *module, PyObject *unused) {
  (void)unused;
  return PyBool_FromLong(uses_eval_hook(get_state(module)));
}

/* reaches_all_threads() -> bool: whether install() will trace every
 * thread by itself (sys.monitoring, the frame-evaluation hook), under the
 * options configure() set; if not, threads started later need
 * thread_bootstrap. */
static PyObject *m_reaches_all_threads(PyObject *module, PyObject *unused) {
  (void)unused;
  module_state *st = get_state(module);
  return PyBool_FromLong(uses_monitoring(st) || uses_eval_hook(st));
}

/* install(thread_name) -> bool: True when every thread is now traced
 * (sys.monitoring, the frame-evaluation hook); False when only the
 * calling thread is (the profile hook: the caller gives threads started
 * later thread_bootstrap).  Where no hook can run (sys.monitoring's tool
 * id is taken, a free-threaded build) one warning is printed and nothing
 * is installed: the program runs untraced. */
static PyObject *m_install(PyObject *module, PyObject *args) {
  const char *name;
  if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
  module_state *st = get_state(module);
#ifdef Py_GIL_DISABLED
  /* The name caches and the per-thread objects rely on the GIL
   * (names.h); a free-threaded build is not supported yet. */
  (void)name;
  (void)st;
  tr_client_warn("free-threaded Python is not supported; running untraced");
  Py_RETURN_TRUE;
#endif
  if (uses_monitoring(st)) {
    if (tr_monitor_install(st->thread_type, name) < 0) return NULL;
    Py_RETURN_TRUE;
  }
  if (uses_eval_hook(st)) {
    if (tr_eval_install(st->thread_type, name) < 0) return NULL;
    Py_RETURN_TRUE;
  }
  if (install_current(module, name) == NULL) return NULL;
  Py_RETURN_FALSE;
}

static PyObject *m_uninstall(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  tr_monitor_uninstall();
  tr_eval_uninstall();
  PyEval_SetProfile(NULL, NULL);
  Py_RETURN_NONE;
}

/* thread_bootstrap(frame, event, arg): given to threading.setprofile(), so
 * it runs once as the first profile event of every new thread; it puts the
 * C hook in its own place and records the event it was called for. */
static PyObject *m_thread_bootstrap(PyObject *module, PyObject *args) {
  PyObject *frame, *event, *arg;
  if (!PyArg_ParseTuple(args, "OOO", &frame, &event, &arg)) return NULL;
  const char *name = "";
  PyObject *threading = PyImport_ImportModule("threading");
  PyObject *cur = NULL, *pyname = NULL;
  if (threading != NULL)
    cur = PyObject_CallMethod(threading, "current_thread", NULL);
  if (cur != NULL) pyname = PyObject_GetAttrString(cur, "name");
  if (pyname != NULL && PyUnicode_Check(pyname)) {
    name = PyUnicode_AsUTF8(pyname);
    if (name == NULL) name = "";
  }
  PyErr_Clear();
  TracedThread *t = install_current(module, name);
  Py_XDECREF(pyname);
  Py_XDECREF(cur);
  Py_XDECREF(threading);
  if (t == NULL) return NULL;
  /* Record the call this bootstrap was invoked for, like any other. */
  if (PyFrame_Check(frame) && PyUnicode_Check(event) &&
      PyUnicode_CompareWithASCIIString(event, "call") == 0)
    tr_hook_func()((PyObject *)t, (PyFrameObject *)frame, PyTrace_CALL, arg);
  Py_RETURN_NONE;
}

static PyObject *m_set_skip_prefix(PyObject *module, PyObject *args) {
  (void)module;
  PyObject *prefix;
  if (!PyArg_ParseTuple(args, "U", &prefix)) return NULL;
  tr_filters_set_skip_prefix(prefix);
  Py_RETURN_NONE;
}

/* options() -> [(env, flag, kwarg, kind, lo, hi, default, metavar)]: the
 * table of recording options (libclient/src/options.c); metavar is None
 * for flags, and a choice's words joined by '|'. */
static PyObject *m_options(PyObject *module, PyObject *unused) {
  (void)module;
  (void)unused;
  PyObject *list = PyList_New(TR_OPTION_COUNT);
  if (list == NULL) return NULL;
  for (Py_ssize_t i = 0; i < TR_OPTION_COUNT; i++) {
    const tr_option *o = &tr_options[i];
    PyObject *row =
        Py_BuildValue("(sssiKKKz)", o->env, o->flag, o->kwarg, (int)o->kind,
                      (unsigned long long)o->lo, (unsigned long long)o->hi,
                      (unsigned long long)o->def, o->metavar);
    if (row == NULL) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, i, row);
  }
  return list;
}

/* parse_option(name, text) -> int: the value of an option given as text,
 * as every traced process parses its environment; ValueError says why a
 * value is invalid. */
static PyObject *m_parse_option(PyObject *module, PyObject *args) {
  (void)module;
  const char *name, *text;
  if (!PyArg_ParseTuple(args, "ss", &name, &text)) return NULL;
  const tr_option *o = tr_option_find(name);
  if (o == NULL) return PyErr_Format(PyExc_KeyError, "no option %s", name);
  uint64_t v;
  char why[160];
  if (tr_option_parse(o, text, &v, why, sizeof(why)) < 0) {
    PyErr_SetString(PyExc_ValueError, why);
    return NULL;
  }
  return PyLong_FromUnsignedLongLong(v);
}

/* configure(trace_c, include, exclude, max_depth, log_args, log_return,
 * repr_limit): the hook's options for sessions started from now on
 * (docs/options.md; traced/_options.py has checked the values). */
static PyObject *m_configure(PyObject *module, PyObject *args,
                             PyObject *kwargs) {
  (void)module;
  static char *kwlist[] = {"trace_c",  "include",    "exclude",    "max_depth",
                           "log_args", "log_return", "repr_limit", NULL};
  int trace_c = 1, log_args = 0, log_return = 0;
  PyObject *include = Py_None, *exclude = Py_None;
  unsigned int max_depth = 0, repr_limit = TR_REPR_LIMIT_DEFAULT;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$pOOIppI", kwlist, &trace_c,
                                   &include, &exclude, &max_depth, &log_args,
                                   &log_return, &repr_limit))
    return NULL;
  if (repr_limit < TR_REPR_LIMIT_MIN || repr_limit > TR_REPR_LIMIT_MAX ||
      max_depth > TR_STACK_MAX)
    return PyErr_Format(PyExc_ValueError, "option out of range");
  int changed = tr_filters_set_files(include, exclude);
  if (changed < 0) return NULL;
  if (changed) tr_names_filters_changed();
  tr_hook_options.trace_c = trace_c != 0;
  tr_hook_options.max_depth = max_depth;
  tr_hook_options.log_args = log_args != 0;
  tr_hook_options.log_return = log_return != 0;
  tr_hook_options.repr_limit = repr_limit;
  tr_hook_options_changed();
  Py_RETURN_NONE;
}

/* set_full_policy(drop, wait_ms): the --on-full mode and the drop mode's
 * wait, for this process's threads from their next full ring on. */
static PyObject *m_set_full_policy(PyObject *module, PyObject *args) {
  (void)module;
  int drop;
  unsigned int wait_ms;
  if (!PyArg_ParseTuple(args, "pI", &drop, &wait_ms)) return NULL;
  if (wait_ms > TR_FULL_WAIT_MS_MAX)
    return PyErr_Format(PyExc_ValueError, "wait_ms out of range");
  tr_client_set_full_policy(drop != 0, (uint64_t)wait_ms * 1000000u);
  Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"options", m_options, METH_NOARGS,
     "options() -> [(env, flag, kwarg, kind, lo, hi, default, metavar)]."},
    {"set_full_policy", m_set_full_policy, METH_VARARGS,
     "set_full_policy(drop, wait_ms): what a thread whose ring is full "
     "does."},
    {"parse_option", m_parse_option, METH_VARARGS,
     "parse_option(name, text) -> int: parse an option's value."},
    {"configure", (PyCFunction)(void (*)(void))m_configure,
     METH_VARARGS | METH_KEYWORDS,
     "configure(**options): the profile hook's recording options."},
    {"set_skip_prefix", m_set_skip_prefix, METH_VARARGS,
     "set_skip_prefix(path): do not record code from files under path."},
    {"connect", m_connect, METH_VARARGS,
     "connect(socket=None): connect to the daemon (default socket if None)."},
    {"connected", m_connected, METH_NOARGS, "True when connected."},
    {"disconnect", m_disconnect, METH_NOARGS, "Close the connection."},
#ifdef _WIN32
    {"open_output", m_open_output, METH_VARARGS,
     "open_output(path) -> handle: open a session's output (Windows)."},
    {"close_output", m_close_output, METH_VARARGS,
     "close_output(handle): close what open_output returned."},
#endif
    {"create", m_create, METH_VARARGS,
     "create(path, fd) -> token: create a session writing to fd."},
    {"join", m_join, METH_VARARGS, "join(token): join a session."},
    {"end", m_end, METH_VARARGS,
     "end(timeout_ms=0) -> dict: end this process's session; returns the "
     "daemon's summary once the file is complete."},
    {"announce_child", m_announce_child, METH_VARARGS,
     "announce_child(pid, path, argv, failed=False): tell the daemon about "
     "a process this one started (bytes path, argv a sequence of bytes), "
     "an exec it is about to make (pid == os.getpid()), or that this exec "
     "failed."},
    {"process_info", m_process_info, METH_VARARGS,
     "process_info(name): name this process in the trace."},
    {"set_child_name", m_set_child_name, METH_VARARGS,
     "set_child_name(name): the name fork()ed children start with."},
    {"token", m_token, METH_NOARGS, "The current session token or ''."},
    {"socket_path", m_socket_path, METH_NOARGS, "The connected socket."},
    {"default_socket", m_default_socket, METH_NOARGS,
     "The socket path used when none is given."},
    {"warn", m_warn, METH_VARARGS, "Print traced's one warning line."},
    {"install", m_install, METH_VARARGS,
     "install(thread_name) -> bool: trace the calling thread (False), or "
     "every thread (True: the frame-evaluation hook)."},
    {"uses_eval_hook", m_uses_eval_hook, METH_NOARGS,
     "uses_eval_hook() -> bool: whether install() reaches every thread by "
     "itself (the frame-evaluation hook), under the configured options."},
    {"reaches_all_threads", m_reaches_all_threads, METH_NOARGS,
     "reaches_all_threads() -> bool: whether install() traces every thread "
     "by itself, under the configured options."},
    {"backend", m_backend, METH_NOARGS,
     "backend() -> str: the hook install() uses under the configured "
     "options: 'monitoring' (sys.monitoring, 3.12+), 'eval' (3.11's "
     "frame-evaluation hook) or 'profile'."},
    {"uninstall", m_uninstall, METH_NOARGS,
     "Stop tracing (the calling thread, or every thread with the "
     "frame-evaluation hook)."},
    {"thread_bootstrap", m_thread_bootstrap, METH_VARARGS,
     "For threading.setprofile(): installs the hook in new threads."},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
  if (PyModule_AddFunctions(module, tr_event_methods) < 0) return -1;
  if (tr_names_init() < 0) {
    PyErr_SetString(PyExc_RuntimeError, "no code-object extra slot left");
    return -1;
  }
  /* The ranges libtraced clamps TRACED_RING_SLOTS and TRACED_ARENA_SIZE
   * to, for the warnings of traced._options. */
  if (PyModule_AddIntConstant(module, "RING_MIN_SLOTS", TR_RING_MIN_SLOTS) <
          0 ||
      PyModule_AddIntConstant(module, "RING_MAX_SLOTS", TR_RING_MAX_SLOTS) <
          0 ||
      PyModule_AddIntConstant(module, "RING_DEFAULT_SLOTS",
                              TR_RING_DEFAULT_SLOTS) < 0 ||
      PyModule_AddIntConstant(module, "ARENA_MIN_SIZE", TR_ARENA_MIN_SIZE) <
          0 ||
      PyModule_AddIntConstant(module, "ARENA_MAX_SIZE", TR_ARENA_MAX_SIZE) <
          0 ||
      PyModule_AddIntConstant(module, "ARENA_DEFAULT_SIZE",
                              TR_ARENA_DEFAULT_SIZE) < 0)
    return -1;
  module_state *st = get_state(module);
  const char *eh = getenv("TRACED_EVAL_HOOK");
  st->no_eval_hook = eh != NULL && strcmp(eh, "0") == 0;
  const char *mon = getenv("TRACED_MONITORING");
  st->no_monitoring = mon != NULL && strcmp(mon, "0") == 0;
  st->thread_type =
      (PyTypeObject *)PyType_FromModuleAndSpec(module, &tr_thread_spec, NULL);
  if (st->thread_type == NULL) return -1;
  return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
  Py_VISIT(get_state(module)->thread_type);
  return 0;
}

static int module_clear(PyObject *module) {
  Py_CLEAR(get_state(module)->thread_type);
  return 0;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_GIL_DISABLED
    /* On a free-threaded build install() refuses (one warning), so none
     * of the code that relies on the GIL (the hooks, the name caches)
     * ever runs; what does (the connection, sessions) is libtraced's,
     * which is thread-safe.  Keeping the GIL disabled keeps the
     * program as it runs untraced. */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "traced._traced",
    .m_doc = "traced's CPython profile hook and daemon client.",
    .m_size = sizeof(module_state),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
};

PyMODINIT_FUNC PyInit__traced(void) { return PyModuleDef_Init(&moduledef); }

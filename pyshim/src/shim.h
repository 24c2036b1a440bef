/* shim.h: what every file of the Python extension includes first:
 * CPython's headers, libclient's hot-path contract (producer.h), and
 * which CPython versions the shim knows how to hook.  libclient's other
 * internal headers are included only where they are used: client.h (the
 * connection) by the cold files, argbuf.h (payloads) by args and thread,
 * options.h (the option table) by filters and module.
 *
 * The extension's files and what each may include (no cycles):
 *   compat    CPython APIs that differ between versions     (leaf)
 *   filters   the recording options and file filters       (leaf)
 *   thread    the per-thread object and how a thread finds it -> filters
 *   probes    code whose calls tell traced something        -> thread
 *   names     what a code object or C function records as   -> probes,
 *                                                              filters, thread
 *   args      repr() of arguments into payloads              (leaf)
 *   profile   the profile functions (the hot path)          -> names, thread,
 *                                                              filters, args
 *   evalhook  3.11's frame-evaluation hook; CPython internals -> names, thread
 *   events    the Python API's custom events                -> thread, args
 *   module    the extension module                          -> all of them */
#ifndef TRACED_SHIM_H
#define TRACED_SHIM_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <stdbool.h>

#include "libclient/src/producer.h"

/* For the extension's global variables read on the hot path: declared
 * hidden, the compiler addresses them directly instead of loading their
 * address first, as it must for a variable another shared object might
 * define (-fvisibility=hidden covers only definitions).  A Windows DLL
 * (PE) has no symbol visibility: its own globals are addressed directly
 * and only what it exports is seen outside. */
#ifdef _WIN32
#define TR_HIDDEN
#else
#define TR_HIDDEN __attribute__((visibility("hidden")))
#endif

/* The frame-evaluation hook (evalhook.c) exists for the CPython versions
 * whose frame layout it knows: 3.11 for now.  Elsewhere tr_eval_install
 * fails and the profile hook serves every mode. */
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
#define TR_HAVE_EVAL_HOOK 1
#else
#define TR_HAVE_EVAL_HOOK 0
#endif

#endif

/* monitor.h: the sys.monitoring (PEP 669) back end (monitor.c), the hook
 * on CPython 3.12 and later. */
#ifndef TRACED_MONITOR_H
#define TRACED_MONITOR_H

#include "shim.h"

/* The tool id traced registers as: not one of the ids sys.monitoring
 * names (DEBUGGER 0, COVERAGE 1, PROFILER 2, OPTIMIZER 5), so that
 * cProfile (which takes PROFILER_ID) can run inside a traced program. */
#define TR_MONITOR_TOOL_ID 4

/* Starts recording every thread of the interpreter through sys.monitoring
 * callbacks, under the options configure() set; the calling thread's ring
 * is named `name`, other threads' rings are made on their first event.
 * Returns 1 when installed, 0 when the tool id is held by another tool
 * (one warning was printed: the program runs untraced), -1 with an
 * exception (NotImplementedError before 3.12). */
int tr_monitor_install(PyTypeObject *thread_type, const char *name);

/* Stops every callback and releases the tool id; nothing when not
 * installed. */
void tr_monitor_uninstall(void);

#endif

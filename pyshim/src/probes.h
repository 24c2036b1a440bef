/* probes.h: code objects whose calls tell traced something about the
 * program (probes.c): multiprocessing naming this process, threading
 * renaming a thread.  names.c marks them in their code-extra slot, so
 * they cost nothing until called. */
#ifndef TRACED_PROBES_H
#define TRACED_PROBES_H

#include "shim.h"

/* The frame a code object is being called in, as the slow paths need it
 * for probes: the profile hook's frame object, or (the frame-evaluation
 * hook, 3.11) the interpreter frame.  Both NULL: the code object is not
 * being called, only its decision is wanted. */
typedef struct tr_fref {
  PyFrameObject *obj;
  void *iframe; /* struct _PyInterpreterFrame * */
} tr_fref;

/* BaseProcess._after_fork (multiprocessing/process.py) or an override in
 * multiprocessing/context.py: called right after a child's
 * _current_process is set, in every start method and in loky. */
bool tr_probe_is_process_name(PyCodeObject *code);

/* threading.Thread.name's setter (threading.py), not its getter. */
bool tr_probe_is_thread_name(PyCodeObject *code);

/* Tells the daemon this process's multiprocessing name. */
void tr_probe_process_name(void);

/* The program renames a thread (`thread.name = ...`): when it is the
 * calling thread, the trace follows.  `frame` is the setter's. */
void tr_probe_thread_name(tr_fref frame, PyCodeObject *code);

#endif

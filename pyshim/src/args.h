/* args.h: ARGS payloads from Python values (args.c). */
#ifndef TRACED_ARGS_H
#define TRACED_ARGS_H

#include "libclient/src/argbuf.h"
#include "shim.h"

/* name=repr(value) for each argument of the frame's code object
 * (positional, keyword-only, *args, **kwargs), each cut to `limit` bytes;
 * an in-flight exception is kept, a failing repr() gives
 * "<repr failed: TYPE>". */
void tr_args_of_frame(tr_argbuf *b, PyFrameObject *frame, uint32_t limit);

/* return_value=repr(value). */
void tr_args_of_return(tr_argbuf *b, PyObject *value, uint32_t limit);

/* The entries of a dict of event arguments (None: none): bools, ints and
 * floats as numbers, str as itself, anything else by repr().  Returns -1
 * with TypeError set when `dict` is not a dict (the caller raises it: a
 * program error, raised whether or not tracing is on). */
int tr_args_of_dict(tr_argbuf *b, PyObject *dict, uint32_t limit);

/* One entry: key=repr(v), or the failure placeholder.  Returns false when
 * the payload is full. */
bool tr_args_add_repr(tr_argbuf *b, const char *key, size_t klen, PyObject *v,
                      uint32_t limit);
/* One entry as tr_args_of_dict() makes them. */
bool tr_args_add_value(tr_argbuf *b, const char *key, size_t klen, PyObject *v,
                       uint32_t limit);

#endif

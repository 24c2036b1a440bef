/* event_args.h: the key/value arguments an event carries into the trace
 * ("args" in JSON, debug annotations in a Perfetto trace).
 *
 * Every output writer takes an event's arguments as an array of tr_arg.
 * Keys and string values are raw bytes exactly as the traced program gave
 * them (not escaped, not NUL-terminated, possibly invalid UTF-8): each
 * writer escapes or encodes them for its format.  All pointers are
 * borrowed: they are valid only for the duration of the writer call. */
#ifndef TRACED_EVENT_ARGS_H
#define TRACED_EVENT_ARGS_H

#include <stdbool.h>
#include <stdint.h>

typedef enum tr_arg_type {
  TR_ARG_STR = 0,    /* v.s: bytes, e.g. a bounded repr() */
  TR_ARG_INT = 1,    /* v.i */
  TR_ARG_UINT = 2,   /* v.u */
  TR_ARG_DOUBLE = 3, /* v.d; NaN and infinities are written as null */
  TR_ARG_BOOL = 4,   /* v.b */
} tr_arg_type;

typedef struct tr_arg {
  const char *key; /* borrowed */
  uint32_t klen;
  uint8_t type; /* tr_arg_type */
  union {
    struct {
      const char *ptr; /* borrowed */
      uint32_t len;
    } s;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
  } v;
} tr_arg;

#endif /* TRACED_EVENT_ARGS_H */

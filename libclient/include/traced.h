/* traced.h: the public C API of libtraced, for native code that wants its
 * own spans, instants and counters in a traced session, or that wants to
 * create a session itself.
 *
 * Threading: every function may be called from any thread.  Events go to
 * the calling thread's ring, created on the thread's first event.
 * Errors: functions that can fail return 0 or a negative errno value;
 * traced_strerror() describes it.  The library never exits the process,
 * and prints one thing only, once per process at most: when a fork()ed
 * child cannot rejoin its parent's session (the daemon is gone), it
 * writes "traced: warning: forked child PID could not reattach: REASON"
 * to stderr and runs untraced, as a traced program that cannot reach the
 * daemon does.  TRACED_QUIET=1 in the environment silences it.
 * Cost: when the process is not attached or its session has ended, every
 * event function returns after one relaxed atomic load. */
#ifndef TRACED_H
#define TRACED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Windows: traced.dll exports what a .def file made from this header
 * lists (mk/windows.mk); ELF: default visibility in a -fvisibility=hidden
 * build. */
#if defined(__GNUC__) && !defined(_WIN32)
#define TRACED_API __attribute__((visibility("default")))
#else
#define TRACED_API
#endif

/* What the daemon reports when a session ends. */
typedef struct traced_summary {
  uint64_t processes; /* processes that recorded into the session */
  uint64_t threads;   /* threads (rings) seen */
  uint64_t events;    /* trace events written */
  uint64_t dropped;   /* events that could not be kept: full rings, depth
                         limit, write errors */
  uint64_t late;      /* records made after the process left the session
                         (discarded) */
  uint64_t malformed; /* records the daemon could not decode (discarded) */
  uint64_t unmatched; /* exits without a recorded call (ignored) */
  uint64_t bytes;     /* bytes written to the output file */
  char path[1024];    /* the output path as the creator named it */
} traced_summary;

/* Attaches this process as the environment says: joins $TRACED_SESSION on
 * $TRACED_SOCKET (or the per-user default socket), or, without a session
 * but with $TRACED_OUTPUT, creates a session writing that file.  Returns 0,
 * -ENOENT when the environment names no session, or the connection error. */
TRACED_API int traced_attach(void);

/* Creates a session writing `output_path` (opened here, with this process'
 * permissions, and handed to the daemon) and records this process into it.
 * Exports TRACED_SESSION and TRACED_SOCKET so children join it. */
TRACED_API int traced_session_start(const char *output_path);

/* Ends the session this process created; returns when the daemon has
 * finalised the file (or after timeout_ms, -ETIMEDOUT; <= 0: default).
 * `out` may be NULL. */
TRACED_API int traced_session_stop(traced_summary *out, int timeout_ms);

/* True when events from this process are being recorded now. */
TRACED_API bool traced_enabled(void);

/* Interns `name` for the *_id functions; the id is valid in this process
 * for its lifetime (and in children forked later).  0 names "<unknown>". */
TRACED_API uint32_t traced_intern(const char *name);

/* Spans: begin/end must nest on each thread.  The plain forms intern the
 * name on every call (a lock and a hash lookup); hot code should intern
 * once and use the _id forms, which cost a clock read and a store. */
TRACED_API void traced_begin(const char *name);
TRACED_API void traced_begin_id(uint32_t id);
TRACED_API void traced_end(void);
TRACED_API void traced_instant(const char *name);
TRACED_API void traced_counter(const char *name, double value);
/* Names the calling thread in the trace. */
TRACED_API void traced_thread_name(const char *name);

/* ---- events with arguments ------------------------------------------------
 * Arguments become the event's "args" in the trace.  Keys are UTF-8 (cut at
 * 255 bytes); all of one event's arguments together are bounded to about
 * 4 KiB: a string that does not fit is cut at a character boundary and
 * ends with "\u2026", arguments that do not fit at all are left out.
 * Everything `args` points to is borrowed for the duration of the call
 * only: the library copies what it records before returning. */
typedef enum traced_arg_type {
  TRACED_ARG_STR = 0,    /* value.s: a NUL-terminated UTF-8 string */
  TRACED_ARG_INT = 1,    /* value.i */
  TRACED_ARG_UINT = 2,   /* value.u */
  TRACED_ARG_DOUBLE = 3, /* value.d; NaN and infinities show as null */
  TRACED_ARG_BOOL = 4,   /* value.b */
} traced_arg_type;

typedef struct traced_arg {
  const char *key; /* NUL-terminated UTF-8 */
  traced_arg_type type;
  union {
    const char *s;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
  } value;
} traced_arg;

/* Compound-literal helpers: TRACED_ARG_S("file", path), ... */
#define TRACED_ARG_S(k, v) \
  ((traced_arg){.key = (k), .type = TRACED_ARG_STR, .value.s = (v)})
#define TRACED_ARG_I(k, v) \
  ((traced_arg){.key = (k), .type = TRACED_ARG_INT, .value.i = (v)})
#define TRACED_ARG_U(k, v) \
  ((traced_arg){.key = (k), .type = TRACED_ARG_UINT, .value.u = (v)})
#define TRACED_ARG_D(k, v) \
  ((traced_arg){.key = (k), .type = TRACED_ARG_DOUBLE, .value.d = (v)})
#define TRACED_ARG_B(k, v) \
  ((traced_arg){.key = (k), .type = TRACED_ARG_BOOL, .value.b = (v)})

/* An instant event with arguments (args may be NULL when nargs is 0). */
TRACED_API void traced_instant_add(const char *name, const traced_arg *args,
                                   size_t nargs);
/* traced_begin() with arguments. */
TRACED_API void traced_span_begin(const char *name, const traced_arg *args,
                                  size_t nargs);
/* traced_end() with arguments, added to those of the span's begin (e.g. a
 * result known only at the end). */
TRACED_API void traced_span_end(const traced_arg *args, size_t nargs);
/* A sample of a counter with several series, one per argument (INT, UINT
 * and DOUBLE arguments; others are ignored): a stacked counter track. */
TRACED_API void traced_counter_set(const char *name, const traced_arg *series,
                                   size_t n);

/* Disconnects; the daemon keeps what was recorded. */
TRACED_API void traced_detach(void);

TRACED_API const char *traced_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* TRACED_H */

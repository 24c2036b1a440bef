/* producer.h: the hot path, appending records to the calling thread's ring.
 *
 * Invariants (everything in this file runs inside the traced program, on
 * every recorded call):
 *  - the enabled check comes first: one relaxed load of the process state
 *    word, compared with the last enabled state this thread saw;
 *  - no malloc, lock or syscall except the clock (and not even that when
 *    the daemon lets us read the TSC); the rare cases (ring at
 *    its watermark or full, shadow stack growth, state change, fork) go to
 *    out-of-line functions in producer.c;
 *  - a record is written completely before the release store of `head`
 *    publishes it, so the daemon never reads a half-written record;
 *  - what is committed is well nested: an exit is recorded only if its
 *    enter was recorded, so the daemon's pairing never guesses;
 *  - filters cost nothing on the fast path: one compare of the depth with
 *    `depth_limit` covers both shadow-stack growth and --max-depth, and
 *    filtered calls take the branch that skipped calls always took.
 *
 * A tr_producer belongs to exactly one thread; nothing here is thread-safe
 * and nothing needs to be.
 *
 * This file and producer.c are a leaf: they call nothing in the rest of
 * libclient.  What they need from the connection (how long to wait on a
 * full ring, how many payload slots the daemon reads) is filled into the
 * producer when its ring is opened, and the three things only the
 * connection can do (ring the doorbell, open a ring, reattach after
 * fork()) go through the one `client` function pointer. */
#ifndef TRACED_PRODUCER_H
#define TRACED_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#if defined(_WIN32)
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#elif defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "proto/traced_proto.h"

/* Shadow-stack entries: the record's string id, with these flag bits.
 * Arena offsets are below TR_ARENA_MAX_SIZE (2^28), so the top bits are
 * free, and multiples of 4, so the two low bits are free too. */
#define TR_STACK_DROPPED 0x80000000u /* the enter was not recorded */
#define TR_STACK_SKIP 0x40000000u    /* filtered out: exit is silent */
#define TR_STACK_SPAN 0x20000000u    /* a span (BEGIN), not a call */
#define TR_STACK_SKIP_TREE 1u        /* with SKIP: its callees are too */
#define TR_STACK_OWN 2u /* with SKIP: traced's own code entered here */
#define TR_STACK_ID_MASK 0x0fffffffu
#define TR_STACK_MAX (1u << 20)
/* max_depth when there is no limit. */
#define TR_DEPTH_UNLIMITED UINT32_MAX

struct tr_producer;

/* What a producer asks of whoever owns its connection (client.c; a unit
 * test's fixture). */
typedef enum tr_producer_req {
  /* The ring passed its watermark or is full and `bell` was 0: ask the
   * daemon to drain now.  May do nothing (the daemon's timer drains). */
  TR_PRODUCER_DOORBELL = 0,
  /* Recording is on and the thread has no ring (its first event): give it
   * one, filling the fields marked "filled at open". */
  TR_PRODUCER_OPEN = 1,
  /* The first event in a fork()ed child (the state word says REATTACH):
   * connect the child, rejoin the session, give the thread a fresh ring
   * without touching the parent's. */
  TR_PRODUCER_REATTACH = 2,
} tr_producer_req;

/* Returns 0 or a negative errno (the doorbell's result is ignored). */
typedef int (*tr_producer_client_fn)(struct tr_producer *p,
                                     tr_producer_req req);

typedef struct tr_producer {
  /* Hot fields first. */
  _Atomic uint64_t *state; /* the process state word (arena header) */
  uint64_t last_state;     /* last *enabled* state seen; 0 = none */
  tr_record *slots;        /* ring data area */
  tr_ring_hdr *hdr;
  uint64_t head;        /* next slot to write (== hdr->head after publish) */
  uint64_t limit;       /* head may grow up to here before the slow path */
  uint32_t mask;        /* capacity - 1 */
  uint32_t depth;       /* shadow-stack depth */
  uint32_t depth_limit; /* min(stack_cap, max_depth + nskip): an enter at
                           this depth takes the slow path */
  uint32_t skip;        /* skip-tree frames on the shadow stack */
  uint32_t *stack;
  uint32_t stack_cap;
  uint32_t nskip;     /* SKIP entries on the stack: depth - nskip levels
                         are recorded (or dropped) */
  uint32_t max_depth; /* recorded levels allowed (TR_DEPTH_UNLIMITED) */
  /* Where max_depth comes from at each session start (NULL: unlimited):
   * the Python hook's option; C API spans are never limited. */
  const uint32_t *max_depth_src;
  /* Called when the thread starts recording into a session (NULL: no
   * call); returning false leaves the event that found the new session
   * unrecorded by the caller, which is then expected to record it itself
   * (the Python hook switches its profile function to match the
   * session's options). */
  bool (*on_session)(struct tr_producer *p);
  /* Cold fields. */
  tr_producer_client_fn client; /* NULL: no connection (doorbell does
                                   nothing, open and reattach fail) */
  _Atomic const uint64_t *beat; /* filled at open: the daemon's heartbeat
                                   (arena header), or NULL; read on a full
                                   ring only (tr_full says how long) */
  uint32_t max_extra;           /* filled at open: payload slots per record the
                                   daemon reads (its WELCOME's max_extra) */
  uint32_t overflow;            /* enters past TR_STACK_MAX, not on the stack */
  uint32_t capacity;            /* slots */
  uint64_t lost_pending;        /* dropped since the last LOST record */
  uint64_t dropped;             /* total dropped (mirrored into hdr->dropped) */
  uint64_t drop_mode_tail; /* while dropping: the tail seen when it began */
  bool dropping;           /* a full ring timed out: drop without waiting */
  pid_t pid;               /* process that owns the mapping */
  uint32_t tid;
  size_t map_size;
  char name[64]; /* thread name for the ring registration (may be "") */
} tr_producer;

/* What a thread whose ring is full does (PROTOCOL.md section 5, "Full
 * ring"; docs/options.md, --on-full).  Set by the client at connect and by
 * the Python shim's configure(); read by recording threads on a full ring
 * only.  Relaxed atomics: each field is a setting read on its own, and a
 * thread that reads an old value for one episode is harmless. */
typedef struct tr_full_policy {
  _Atomic bool drop;         /* drop mode: wait at most wait_ns, whatever
                                the daemon does */
  _Atomic uint64_t wait_ns;  /* drop mode's wait */
  _Atomic uint64_t stall_ns; /* wait mode: drop only after the daemon made
                                no progress (tail, beat) for this long */
} tr_full_policy;
extern tr_full_policy tr_full;

/* A state word that is never enabled, for a thread that must stop
 * trying (its ring could not be opened). */
_Atomic uint64_t *tr_producer_never_word(void);

/* Out-of-line slow paths (producer.c). */
bool tr_producer_sync(tr_producer *p, uint64_t state);
bool tr_producer_room(tr_producer *p, uint32_t n);
bool tr_producer_stack_grow(tr_producer *p);
void tr_producer_drop(tr_producer *p, uint32_t n);
/* The unusual cases of an enter: returns true when the call is to be
 * recorded after all (the stack just grew), false when it was remembered
 * as skipped or could not be remembered (counted). */
bool tr_producer_enter_slow(tr_producer *p, uint32_t id);
void tr_producer_exit_slow(tr_producer *p, uint64_t ts, uint16_t kind,
                           uint32_t e);

/* Recomputes depth_limit after depth-related fields changed. */
static inline void tr_producer_set_limit(tr_producer *p) {
  uint64_t l = (uint64_t)p->max_depth + p->nskip;
  p->depth_limit = l < p->stack_cap ? (uint32_t)l : p->stack_cap;
}

/* The clock records carry, chosen per connection by the daemon's WELCOME
 * (PROTOCOL.md, "Clock"): raw TSC ticks (true), which the daemon converts,
 * or CLOCK_MONOTONIC ns.  Written by the connecting thread (client.c) only
 * while recording is off for every thread, read on every event by every
 * thread: hence atomic, so that the read is not a data race, and loaded
 * relaxed, because nothing is published through it.  (Its one store, at
 * connect, is a plain assignment: seq_cst, more than it needs.) */
#if defined(_WIN32) /* PE: a DLL exports only its .def file's list */
extern _Atomic bool tr_clock_tsc;
#else
extern _Atomic bool tr_clock_tsc __attribute__((visibility("hidden")));
#endif

/* A timestamp in the process's record clock. */
static inline uint64_t tr_now(void) {
#if defined(_WIN32)
  /* Windows (PROTOCOL.md section 9): the performance counter is the tick
   * clock offered in place of the TSC (itself read from the TSC where that
   * is invariant), converted by the daemon like TSC ticks; the same
   * relaxed load as below, for the same reasons. */
  if (__builtin_expect(
          atomic_load_explicit(&tr_clock_tsc, memory_order_relaxed), 1)) {
    LARGE_INTEGER c;
    QueryPerformanceCounter(&c);
    return (uint64_t)c.QuadPart;
  }
#elif defined(__x86_64__)
  /* Relaxed is enough.  It is read only here, on x86-64, whose loads
   * are not reordered with older loads; it changes only at connect, under
   * the client's io_lock, while the state word reads disabled; a thread
   * stamps an event only after its load of the state word (earlier in
   * program order) saw a state the daemon wrote after that connect's
   * WELCOME; and its first event after a state change goes through
   * tr_producer_sync(), an opaque call the compiler cannot move this load
   * above.  (A thread's first ring is opened under io_lock as well.) */
  if (__builtin_expect(
          atomic_load_explicit(&tr_clock_tsc, memory_order_relaxed), 1))
    return __rdtsc();
#endif
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* True when this thread should record now.  Handles session changes and
 * the first event after fork() out of line. */
static inline bool tr_producer_ready(tr_producer *p) {
  /* Relaxed is enough: the daemon (tr_arena_set_state) publishes nothing
   * through the state word, it only says whether to record.  A thread
   * that sees an enable late records from then on, as if the session had
   * begun a moment later there; one that sees a disable late writes a few
   * more records that the session's last drain may take or, if not,
   * belong to no session and are discarded (tr_proc_attach).  The data
   * itself is ordered by `head` and `tail`. */
  uint64_t s = atomic_load_explicit(p->state, memory_order_relaxed);
  if (__builtin_expect(s == p->last_state, 1)) return true;
  return tr_producer_sync(p, s);
}

/* Appends one record of 1 + extra slots; returns its address to fill, or
 * NULL when it was dropped (counted). Call tr_producer_publish() after
 * filling it. */
static inline tr_record *tr_producer_claim(tr_producer *p, uint32_t extra) {
  if (__builtin_expect(p->head + 1 + extra > p->limit, 0)) {
    if (!tr_producer_room(p, 1 + extra)) {
      tr_producer_drop(p, 1);
      return NULL;
    }
  }
  return &p->slots[p->head & p->mask];
}

static inline void tr_producer_publish(tr_producer *p, uint32_t extra) {
  p->head += 1 + extra;
  /* Release, pairing with the daemon's acquire load of `head`
   * (tr_ringview_drain_max): the record's slots, and the arena entries of
   * the ids it carries (PROTOCOL.md section 4), are visible before it. */
  atomic_store_explicit(&p->hdr->head, p->head, memory_order_release);
}

static inline bool tr_producer_put(tr_producer *p, uint64_t ts, uint32_t id,
                                   uint16_t kind) {
  tr_record *r = tr_producer_claim(p, 0);
  if (r == NULL) return false;
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = 0;
  tr_producer_publish(p, 0);
  return true;
}

/* Pass as `id` to tr_producer_enter() for a call that is filtered out:
 * neither it nor its exit is recorded.  With TR_ID_SKIP_TREE nothing it
 * calls is recorded either (calls beyond --max-depth); TR_ID_OWN is a
 * skip-tree for traced's own code (its API calls into threading and
 * builtins are not the user's), marked so that spans the program begins
 * through traced's API nest where the program called it. */
#define TR_ID_SKIP 0xffffffffu
#define TR_ID_SKIP_TREE 0xfffffffeu
#define TR_ID_OWN 0xfffffffdu
/* Like TR_ID_SKIP, for traced's wrappers around the program's functions
 * (decorators, print()): told apart from calls the filters leave out. */
#define TR_ID_THROUGH 0xfffffffcu
/* Internal to the enter path: the shadow stack is full. */
#define TR_ID_OVERFLOW 0xfffffffbu

/* A call begins: record it and remember it on the shadow stack. */
static inline void tr_producer_enter(tr_producer *p, uint64_t ts, uint32_t id,
                                     uint16_t kind) {
  /* One out-of-line call for everything unusual: stack growth, the
   * maximum depth, filtered and skipped calls. */
  if (__builtin_expect(
          p->depth >= p->depth_limit || id >= TR_ID_THROUGH || p->skip != 0,
          0)) {
    if (!tr_producer_enter_slow(p, id)) return;
  }
  uint32_t e = id & TR_STACK_ID_MASK;
  if (!tr_producer_put(p, ts, id, kind)) e |= TR_STACK_DROPPED;
  p->stack[p->depth++] = e;
}

/* The innermost call ends.  Exits of calls that began before recording
 * started (depth 0) are not recorded; exits whose enter was dropped are
 * dropped too, and counted. */
static inline void tr_producer_exit(tr_producer *p, uint64_t ts,
                                    uint16_t kind) {
  if (__builtin_expect(p->overflow != 0, 0)) {
    p->overflow--;
    tr_producer_drop(p, 1);
    return;
  }
  if (p->depth == 0) return;
  uint32_t e = p->stack[--p->depth];
  if (__builtin_expect(e & (TR_STACK_DROPPED | TR_STACK_SKIP | TR_STACK_SPAN),
                       0)) {
    tr_producer_exit_slow(p, ts, kind, e);
    return;
  }
  tr_producer_put(p, ts, e & TR_STACK_ID_MASK, kind);
}

/* Whether an enter of `id` now would be recorded (not filtered, not beyond
 * the maximum depth): callers that must do work to record it (arguments)
 * ask first. */
static inline bool tr_producer_would_record(const tr_producer *p, uint32_t id) {
  return id < TR_ID_OVERFLOW && p->skip == 0 &&
         p->depth - p->nskip < p->max_depth && p->depth < TR_STACK_MAX;
}

/* Whether the innermost open call's exit would be recorded. */
static inline bool tr_producer_top_recorded(const tr_producer *p) {
  return p->overflow == 0 && p->depth > 0 &&
         !(p->stack[p->depth - 1] &
           (TR_STACK_DROPPED | TR_STACK_SKIP | TR_STACK_SPAN));
}

/* ---- records with arguments (producer.c) ----------------------------------
 * `args` is an ARGS payload (traced_proto.h) of `len` bytes, at most
 * TR_ARGS_MAX_BYTES; it is written only when the daemon announced room
 * for it, else the record goes without it.  Each returns false when the
 * event was dropped (counted). */

/* {ts, id, kind} with its `nextra` payload slots, preceded by its
 * arguments, published together. */
bool tr_producer_put_args(tr_producer *p, uint64_t ts, uint32_t id,
                          uint16_t kind, const void *args, uint32_t len,
                          const tr_record *extra, uint32_t nextra);
/* tr_producer_enter() with arguments. */
void tr_producer_enter_args(tr_producer *p, uint64_t ts, uint32_t id,
                            uint16_t kind, const void *args, uint32_t len);
/* tr_producer_exit() with arguments (e.g. a return value). */
void tr_producer_exit_args(tr_producer *p, uint64_t ts, uint16_t kind,
                           const void *args, uint32_t len);

/* ---- spans ------------------------------------------------------------------
 * A span the program begins through traced's API (Python's traced.span(),
 * the garbage-collector slices) goes on the shadow stack *below* the frames
 * of traced's own code through which the call came (the run of skip-tree
 * entries at the top, down to its lowest TR_STACK_OWN root), so that those
 * frames' exits never meet it: in the trace it nests where the program
 * made the call.  It counts as a level for max_depth, is skipped where a
 * call would be, and a call that returns with a span it began still open
 * ends that span first. */

/* Begins span `id` (with arguments, len may be 0) at time ts. */
void tr_producer_span_begin(tr_producer *p, uint64_t ts, uint32_t id,
                            const void *args, uint32_t len);
/* Ends the innermost span (found as above) if it is span `id`; returns
 * false, recording nothing, when the innermost open span or call is
 * something else. */
bool tr_producer_span_end(tr_producer *p, uint64_t ts, uint32_t id,
                          const void *args, uint32_t len);

#endif /* TRACED_PRODUCER_H */

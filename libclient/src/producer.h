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
 *    enter was recorded, so the daemon's pairing never guesses.
 *
 * A tr_producer belongs to exactly one thread; nothing here is thread-safe
 * and nothing needs to be. */
#ifndef TRACED_PRODUCER_H
#define TRACED_PRODUCER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

#include "traced_proto.h"

/* Shadow-stack entries: the record's string id, with these flag bits.
 * Arena offsets are below TR_ARENA_MAX_SIZE (2^28), so the top bits are
 * free. */
#define TR_STACK_DROPPED 0x80000000u /* the enter was not recorded */
#define TR_STACK_SKIP 0x40000000u    /* filtered out: exit is silent */
#define TR_STACK_SKIP_TREE 1u        /* with SKIP: its callees are too */
#define TR_STACK_ID_MASK 0x3fffffffu
#define TR_STACK_MAX (1u << 20)

typedef struct tr_producer {
  /* Hot fields first. */
  _Atomic uint64_t *state; /* the process state word (arena header) */
  uint64_t last_state;     /* last *enabled* state seen; 0 = none */
  tr_record *slots;        /* ring data area */
  tr_ring_hdr *hdr;
  uint64_t head;  /* next slot to write (== hdr->head after publish) */
  uint64_t limit; /* head may grow up to here before the slow path */
  uint32_t mask;  /* capacity - 1 */
  uint32_t depth; /* shadow-stack depth */
  uint32_t skip;  /* skip-tree frames on the shadow stack */
  uint32_t *stack;
  uint32_t stack_cap;
  /* Cold fields. */
  uint32_t overflow;       /* enters past TR_STACK_MAX, not on the stack */
  uint32_t capacity;       /* slots */
  uint64_t lost_pending;   /* dropped since the last LOST record */
  uint64_t dropped;        /* total dropped (mirrored into hdr->dropped) */
  uint64_t drop_mode_tail; /* while dropping: the tail seen when it began */
  bool dropping;           /* a full ring timed out: drop without waiting */
  pid_t pid;               /* process that owns the mapping */
  uint32_t tid;
  size_t map_size;
  char name[64]; /* thread name for the ring registration (may be "") */
} tr_producer;

/* Out-of-line slow paths (producer.c). */
bool tr_producer_sync(tr_producer *p, uint64_t state);
bool tr_producer_room(tr_producer *p, uint32_t n);
bool tr_producer_stack_grow(tr_producer *p);
void tr_producer_drop(tr_producer *p, uint32_t n);

/* The clock records carry, chosen per connection by the daemon's WELCOME
 * (PROTOCOL.md, "Clock"): raw TSC ticks (true), which the daemon converts,
 * or CLOCK_MONOTONIC ns.  Written only while recording is off for every
 * thread (at connect), read on every event. */
extern bool tr_clock_tsc;

/* A timestamp in the process's record clock. */
static inline uint64_t tr_now(void) {
#if defined(__x86_64__)
  if (__builtin_expect(tr_clock_tsc, 1)) return __rdtsc();
#endif
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* True when this thread should record now.  Handles session changes and
 * the first event after fork() out of line. */
static inline bool tr_producer_ready(tr_producer *p) {
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
 * calls is recorded either (traced's own code: its API calls into
 * threading and builtins are not the user's). */
#define TR_ID_SKIP 0xffffffffu
#define TR_ID_SKIP_TREE 0xfffffffeu

/* A call begins: record it and remember it on the shadow stack. */
static inline void tr_producer_enter(tr_producer *p, uint64_t ts, uint32_t id,
                                     uint16_t kind) {
  if (__builtin_expect(p->depth >= p->stack_cap, 0)) {
    if (!tr_producer_stack_grow(p)) {
      p->overflow++;
      tr_producer_drop(p, 1);
      return;
    }
  }
  if (__builtin_expect(id >= TR_ID_SKIP_TREE || p->skip != 0, 0)) {
    /* Inside a skipped tree every call is part of that tree. */
    uint32_t tree = (id == TR_ID_SKIP_TREE || p->skip != 0) ? 1u : 0u;
    p->stack[p->depth++] = TR_STACK_SKIP | tree;
    p->skip += tree;
    return;
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
  if (__builtin_expect(e & (TR_STACK_DROPPED | TR_STACK_SKIP), 0)) {
    if (e & TR_STACK_SKIP) {
      p->skip -= e & TR_STACK_SKIP_TREE;
      return;
    }
    tr_producer_drop(p, 1);
    return;
  }
  tr_producer_put(p, ts, e & TR_STACK_ID_MASK, kind);
}

#endif /* TRACED_PRODUCER_H */

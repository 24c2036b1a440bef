/* producer.c: the rare paths of recording (ring past its watermark or full,
 * shadow-stack growth, session changes), kept out of line so producer.h's
 * inline fast path stays a handful of instructions. */
#include "producer.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "transport.h"

_Atomic bool tr_clock_tsc;

/* What a thread reads once it must stop trying to record. */
static _Atomic uint64_t never_state = 0;

_Atomic uint64_t *tr_producer_never_word(void) { return &never_state; }

tr_full_policy tr_full = {
    .drop = false,
    .wait_ns = TR_FULL_WAIT_MS_DEFAULT * 1000000ull,
    .stall_ns = TR_STALL_DEFAULT_MS * 1000000ull,
};

/* A full ring's thread sleeps on the ring's `wake` futex, which the daemon
 * bumps when it consumes while `waiting` is set; each sleep is bounded (a
 * daemon that predates `wake`, or a wake-up lost to the race described at
 * wait_for_room, costs at most one sleep), first 50 us, doubling up to
 * 4 ms. */
#define TR_FULL_SLEEP_MIN_NS (50u * 1000u)
#define TR_FULL_SLEEP_MAX_NS (4u * 1000u * 1000u)
/* Slots kept free so a LOST record always fits after a run of drops. */
#define TR_RESERVE_SLOTS 1u

/* Acquire, pairing with the daemon's release store of `tail` after it
 * copied the slots out (tr_ringview_drain_max): its reads of the slots
 * below tail happen before our writes over them. */
static uint64_t reload_tail(tr_producer *p) {
  return atomic_load_explicit(&p->hdr->tail, memory_order_acquire);
}

/* Asks the daemon to drain now.  `bell` is a rate limit, not a lock:
 * relaxed accesses, because it publishes nothing (the records are
 * published by `head`) and a doorbell lost to a race with the daemon's
 * clear only delays a drain (see tr_ringview_drain_max). */
static void ring_bell(tr_producer *p) {
  atomic_store_explicit(&p->hdr->bell, 1, memory_order_relaxed);
  if (p->client != NULL) p->client(p, TR_PRODUCER_DOORBELL);
}

/* Sets `limit` from a fresh tail: the next position at which the fast path
 * must come back here, either because the ring is full or because it is
 * time to look at the watermark again. */
static void set_limit(tr_producer *p, uint64_t tail) {
  uint64_t full = tail + p->capacity - TR_RESERVE_SLOTS;
  uint64_t used = p->head - tail;
  uint64_t half = p->capacity / 2;
  uint64_t next;
  if (used < half) {
    next = tail + half; /* come back at the watermark */
  } else {
    /* Past the watermark: ring (once per drain) and look again after an
     * eighth of the ring, so a slow daemon is reminded but not spammed. */
    if (!atomic_load_explicit(&p->hdr->bell, memory_order_relaxed))
      ring_bell(p);
    next = p->head + p->capacity / 8;
  }
  p->limit = next < full ? next : full;
}

/* Sleeps until the daemon bumps `wake` past `seen`, or `ns` passed
 * (transport.h: a shared futex on Linux). */
static void sleep_on_wake(tr_producer *p, uint32_t seen, uint64_t ns) {
  tr_transport_ring_wait(&p->hdr->wake, seen, ns);
}

/* Waits until `need` slots are free, as the policy says.  Returns the
 * fresh tail, with *ok false when the wait gave up (the caller drops).
 *
 * Wake-ups: the producer reads `wake`, stores waiting = 1, then (after a
 * seq_cst fence) reloads `tail`; the daemon stores `tail`, then (after a
 * seq_cst fence) loads `waiting` and, when set, bumps `wake` and wakes the
 * futex.  The two fences order each side's store before its load, so
 * either the producer's reload sees the new tail or the daemon sees
 * waiting == 1 and bumps `wake` past the value the producer read, which
 * makes the wait (FUTEX_WAIT on Linux) return at once: no wake-up is lost.  A
 * hostile or old daemon that never bumps `wake` only makes each sleep run its
 * bound. */
static uint64_t wait_for_room(tr_producer *p, uint32_t need, uint64_t tail,
                              bool *ok) {
  bool drop = atomic_load_explicit(&tr_full.drop, memory_order_relaxed);
  uint64_t bound =
      drop ? atomic_load_explicit(&tr_full.wait_ns, memory_order_relaxed)
           : atomic_load_explicit(&tr_full.stall_ns, memory_order_relaxed);
  /* The daemon's heartbeat: relaxed, it is only compared for change. */
  uint64_t beat =
      p->beat != NULL ? atomic_load_explicit(p->beat, memory_order_relaxed) : 0;
  uint64_t start = tr_transport_mono_ns(), progress = start,
           sleep = TR_FULL_SLEEP_MIN_NS;
  *ok = true;
  while (p->head + need > tail + p->capacity) {
    uint64_t now = tr_transport_mono_ns();
    if (now - progress >= bound) {
      *ok = false;
      break;
    }
    uint64_t left = bound - (now - progress);
    /* Pairs with the daemon's bump of `wake` (see above): relaxed, since
     * the fences below order it against the tail reload. */
    uint32_t seen = atomic_load_explicit(&p->hdr->wake, memory_order_relaxed);
    atomic_store_explicit(&p->hdr->waiting, 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t t = reload_tail(p);
    if (p->head + need > t + p->capacity)
      sleep_on_wake(p, seen, sleep < left ? sleep : left);
    if (sleep < TR_FULL_SLEEP_MAX_NS) sleep *= 2;
    t = reload_tail(p);
    uint64_t b = p->beat != NULL
                     ? atomic_load_explicit(p->beat, memory_order_relaxed)
                     : 0;
    /* Drop mode counts time from the start of the episode; the default
     * mode only time in which the daemon did nothing for this process. */
    if (!drop && (t != tail || b != beat)) {
      progress = tr_transport_mono_ns();
      sleep = TR_FULL_SLEEP_MIN_NS;
    }
    tail = t;
    beat = b;
  }
  atomic_store_explicit(&p->hdr->waiting, 0, memory_order_relaxed);
  return tail;
}

/* Writes the LOST marker for a run of drops; the caller made room for it. */
static void put_lost(tr_producer *p) {
  tr_record *r = &p->slots[p->head & p->mask];
  r->ts = tr_now();
  r->id = p->lost_pending > UINT32_MAX ? UINT32_MAX : (uint32_t)p->lost_pending;
  r->kind = TR_REC_LOST;
  r->extra = 0;
  tr_producer_publish(p, 0);
  p->lost_pending = 0;
}

bool tr_producer_room(tr_producer *p, uint32_t n) {
  if (p->hdr == NULL) return false;
  /* A pending LOST record needs its slot too. */
  uint32_t need = n + (p->lost_pending ? 1 : 0);
  uint64_t tail = reload_tail(p);
  if (p->dropping && tail == p->drop_mode_tail) return false;
  p->dropping = false;
  if (p->head + need > tail + p->capacity) {
    /* Full: make sure the daemon knows, then wait as the policy says. */
    ring_bell(p);
    bool ok;
    tail = wait_for_room(p, need, tail, &ok);
    if (!ok) {
      p->dropping = true;
      p->drop_mode_tail = tail;
      p->limit = p->head; /* every event comes back here */
      return false;
    }
  }
  if (p->lost_pending) put_lost(p);
  set_limit(p, tail);
  /* set_limit keeps one reserve slot; a record needing it still fits. */
  if (p->head + n > p->limit) p->limit = p->head + n;
  return true;
}

void tr_producer_drop(tr_producer *p, uint32_t n) {
  p->dropped += n;
  p->lost_pending += n;
  /* Relaxed: a statistic the daemon reads (tr_ringview_dropped) for the
   * summary; it orders nothing, and the final value is read after the
   * connection or ring closed. */
  if (p->hdr != NULL)
    atomic_store_explicit(&p->hdr->dropped, p->dropped, memory_order_relaxed);
}

bool tr_producer_stack_grow(tr_producer *p) {
  if (p->stack_cap >= TR_STACK_MAX) return false;
  uint32_t cap = p->stack_cap ? p->stack_cap * 2 : 256;
  if (cap > TR_STACK_MAX) cap = TR_STACK_MAX;
  uint32_t *s = realloc(p->stack, (size_t)cap * sizeof(*s));
  if (s == NULL) return false;
  p->stack = s;
  p->stack_cap = cap;
  tr_producer_set_limit(p);
  return true;
}

/* Grows the stack when needed and applies the maximum depth: the id to
 * push, or TR_ID_OVERFLOW when the stack is full (counted). */
static uint32_t deep(tr_producer *p, uint32_t id) {
  if (p->depth >= p->stack_cap && !tr_producer_stack_grow(p)) {
    p->overflow++;
    tr_producer_drop(p, 1);
    return TR_ID_OVERFLOW;
  }
  /* Beyond the maximum depth: neither this call nor anything it calls
   * (traced's own code keeps its own mark). */
  if (p->depth - p->nskip >= p->max_depth && id < TR_ID_OWN)
    return TR_ID_SKIP_TREE;
  return id;
}

/* Remembers a call that is not recorded. */
static void push_skip(tr_producer *p, uint32_t id) {
  /* Inside a skipped tree every call is part of that tree. */
  uint32_t tree =
      (id == TR_ID_SKIP_TREE || id == TR_ID_OWN || p->skip != 0) ? 1u : 0u;
  p->stack[p->depth++] =
      TR_STACK_SKIP | tree | (id == TR_ID_OWN ? TR_STACK_OWN : 0u);
  p->skip += tree;
  p->nskip++;
  tr_producer_set_limit(p);
}

bool tr_producer_enter_slow(tr_producer *p, uint32_t id) {
  if (p->depth >= p->depth_limit) {
    id = deep(p, id);
    if (id == TR_ID_OVERFLOW) return false;
  }
  if (id >= TR_ID_THROUGH || p->skip != 0) {
    push_skip(p, id);
    return false;
  }
  return true;
}

/* A span entry leaves the stack: its END is written unless it was not
 * recorded. */
static void span_close(tr_producer *p, uint64_t ts, uint32_t e,
                       const void *args, uint32_t len) {
  if (e & TR_STACK_SKIP) {
    p->nskip--;
    tr_producer_set_limit(p);
  } else if (e & TR_STACK_DROPPED) {
    tr_producer_drop(p, 1);
  } else {
    tr_producer_put_args(p, ts, e & TR_STACK_ID_MASK, TR_REC_END, args, len,
                         NULL, 0);
  }
}

void tr_producer_exit_slow(tr_producer *p, uint64_t ts, uint16_t kind,
                           uint32_t e) {
  for (;;) {
    if ((e & TR_STACK_SPAN) && kind != TR_REC_END) {
      /* A call returns with a span it began still open (a `with` left by
       * a yield, an __enter__ without __exit__): the span ends here. */
      span_close(p, ts, e, NULL, 0);
      if (p->depth == 0) return;
      e = p->stack[--p->depth];
      continue;
    }
    if (e & TR_STACK_SKIP) {
      p->skip -= e & TR_STACK_SKIP_TREE;
      p->nskip--;
      tr_producer_set_limit(p);
      return;
    }
    if (e & TR_STACK_DROPPED) {
      tr_producer_drop(p, 1);
      return;
    }
    tr_producer_put(p, ts, e & TR_STACK_ID_MASK, kind);
    return;
  }
}

/* ---- records with arguments ------------------------------------------- */

bool tr_producer_put_args(tr_producer *p, uint64_t ts, uint32_t id,
                          uint16_t kind, const void *args, uint32_t len,
                          const tr_record *extra, uint32_t nextra) {
  if (len > TR_ARGS_MAX_BYTES) len = 0;
  uint32_t aslots = (len + 15) / 16;
  /* A daemon that cannot take the payload gets the record without it. */
  if (aslots > p->max_extra) aslots = len = 0;
  uint32_t n = (aslots ? 1 + aslots : 0) + 1 + nextra;
  tr_record *r = tr_producer_claim(p, n - 1);
  if (r == NULL) return false;
  uint64_t at = p->head;
  if (aslots) {
    r->ts = ts;
    r->id = len;
    r->kind = TR_REC_ARGS;
    r->extra = (uint16_t)aslots;
    /* The payload may wrap around the end of the ring: slot by slot. */
    const uint8_t *src = args;
    for (uint32_t i = 0; i < aslots; i++) {
      tr_record *s = &p->slots[(at + 1 + i) & p->mask];
      uint32_t k = len - i * 16 < 16 ? len - i * 16 : 16;
      memset(s, 0, sizeof(*s));
      memcpy(s, src + i * 16, k);
    }
    at += 1 + aslots;
    r = &p->slots[at & p->mask];
  }
  r->ts = ts;
  r->id = id;
  r->kind = kind;
  r->extra = (uint16_t)nextra;
  for (uint32_t i = 0; i < nextra; i++)
    p->slots[(at + 1 + i) & p->mask] = extra[i];
  tr_producer_publish(p, n - 1);
  return true;
}

void tr_producer_enter_args(tr_producer *p, uint64_t ts, uint32_t id,
                            uint16_t kind, const void *args, uint32_t len) {
  if ((p->depth >= p->depth_limit || id >= TR_ID_THROUGH || p->skip != 0) &&
      !tr_producer_enter_slow(p, id))
    return;
  uint32_t e = id & TR_STACK_ID_MASK;
  if (!tr_producer_put_args(p, ts, id, kind, args, len, NULL, 0))
    e |= TR_STACK_DROPPED;
  p->stack[p->depth++] = e;
}

void tr_producer_exit_args(tr_producer *p, uint64_t ts, uint16_t kind,
                           const void *args, uint32_t len) {
  if (!tr_producer_top_recorded(p)) {
    tr_producer_exit(p, ts, kind);
    return;
  }
  uint32_t e = p->stack[--p->depth];
  tr_producer_put_args(p, ts, e & TR_STACK_ID_MASK, kind, args, len, NULL, 0);
}

/* ---- spans ------------------------------------------------------------- */

/* How far down the stack traced's own frames on top of it go: the lowest
 * TR_STACK_OWN entry of the run of skip-tree entries at the top (at most
 * this many entries are looked at; the API is only a few frames deep). */
#define TR_OWN_SCAN 64u

static uint32_t span_pos(const tr_producer *p) {
  uint32_t pos = p->depth;
  uint32_t lo = p->depth > TR_OWN_SCAN ? p->depth - TR_OWN_SCAN : 0;
  for (uint32_t i = p->depth; i > lo; i--) {
    uint32_t e = p->stack[i - 1];
    if ((e & (TR_STACK_SKIP | TR_STACK_SKIP_TREE)) !=
        (TR_STACK_SKIP | TR_STACK_SKIP_TREE))
      break;
    if (e & TR_STACK_OWN) pos = i - 1;
  }
  return pos;
}

void tr_producer_span_begin(tr_producer *p, uint64_t ts, uint32_t id,
                            const void *args, uint32_t len) {
  if (p->overflow != 0 ||
      (p->depth >= p->stack_cap && !tr_producer_stack_grow(p))) {
    tr_producer_drop(p, 1);
    return;
  }
  uint32_t pos = span_pos(p);
  /* Every entry from pos up is a skip-tree entry of traced's own code. */
  uint32_t above = p->depth - pos;
  uint32_t skip_below = p->skip - above;
  uint32_t levels_below = pos - (p->nskip - above);
  uint32_t e = TR_STACK_SPAN | (id & TR_STACK_ID_MASK);
  if (skip_below != 0 || levels_below >= p->max_depth) {
    e |= TR_STACK_SKIP;
    p->nskip++;
  } else if (!tr_producer_put_args(p, ts, id, TR_REC_BEGIN, args, len, NULL,
                                   0)) {
    e |= TR_STACK_DROPPED;
  }
  memmove(&p->stack[pos + 1], &p->stack[pos], above * sizeof(*p->stack));
  p->stack[pos] = e;
  p->depth++;
  tr_producer_set_limit(p);
}

bool tr_producer_span_end(tr_producer *p, uint64_t ts, uint32_t id,
                          const void *args, uint32_t len) {
  uint32_t pos = span_pos(p);
  if (pos == 0) return false;
  uint32_t e = p->stack[pos - 1];
  if (!(e & TR_STACK_SPAN) || (e & TR_STACK_ID_MASK) != (id & TR_STACK_ID_MASK))
    return false;
  memmove(&p->stack[pos - 1], &p->stack[pos],
          (p->depth - pos) * sizeof(*p->stack));
  p->depth--;
  span_close(p, ts, e, args, len);
  return true;
}

bool tr_producer_sync(tr_producer *p, uint64_t state) {
  if (state & TR_STATE_REATTACH) {
    /* First event in a forked child: never touch the parent's ring. */
    if (p->client == NULL || p->client(p, TR_PRODUCER_REATTACH) < 0)
      return false;
    /* Relaxed, as in tr_producer_ready(); the reattach just wrote it (or
     * the daemon did, before answering the join) in this thread. */
    state = atomic_load_explicit(p->state, memory_order_relaxed);
    if (state & TR_STATE_REATTACH) return false;
  }
  if (!(state & TR_STATE_ENABLED)) return false;
  if (p->hdr == NULL) {
    /* Enabled, but this thread has no ring yet (its first event).  If it
     * cannot get one, it stops trying: one attempt, not one per event. */
    if (p->client == NULL || p->client(p, TR_PRODUCER_OPEN) < 0) {
      p->state = tr_producer_never_word();
      return false;
    }
  }
  /* A new session (or the first one): calls remembered on the shadow
   * stack were begun under another state and must not be closed here. */
  p->depth = 0;
  p->skip = 0;
  p->nskip = 0;
  p->overflow = 0;
  /* Options take effect at a session's start, in every thread. */
  p->max_depth = TR_DEPTH_UNLIMITED;
  if (p->max_depth_src != NULL && *p->max_depth_src != 0)
    p->max_depth = *p->max_depth_src;
  tr_producer_set_limit(p);
  p->last_state = state;
  if (p->on_session != NULL && !p->on_session(p)) return false;
  return true;
}

/* producer.c: the rare paths of recording (ring past its watermark or full,
 * shadow-stack growth, session changes), kept out of line so producer.h's
 * inline fast path stays a handful of instructions. */
#include "producer.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "client.h"

bool tr_clock_tsc;

/* Full-ring policy (documented in PROTOCOL.md section 5): poll every
 * 50 us for at most tr_client_full_wait_ns() (TRACED_FULL_WAIT_MS,
 * default 10 ms). */
#define TR_FULL_POLL_NS (50u * 1000u)
/* Slots kept free so a LOST record always fits after a run of drops. */
#define TR_RESERVE_SLOTS 1u

static uint64_t reload_tail(tr_producer *p) {
  return atomic_load_explicit(&p->hdr->tail, memory_order_acquire);
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
    if (!atomic_load_explicit(&p->hdr->bell, memory_order_relaxed)) {
      atomic_store_explicit(&p->hdr->bell, 1, memory_order_relaxed);
      tr_client_doorbell(p);
    }
    next = p->head + p->capacity / 8;
  }
  p->limit = next < full ? next : full;
}

static void sleep_ns(long ns) {
  struct timespec ts = {0, ns};
  nanosleep(&ts, NULL);
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
    /* Full: make sure the daemon knows, then wait a bounded time. */
    atomic_store_explicit(&p->hdr->bell, 1, memory_order_relaxed);
    tr_client_doorbell(p);
    uint64_t waited = 0, budget = tr_client_full_wait_ns();
    while (p->head + need > tail + p->capacity) {
      if (waited >= budget) {
        p->dropping = true;
        p->drop_mode_tail = tail;
        p->limit = p->head; /* every event comes back here */
        return false;
      }
      sleep_ns(TR_FULL_POLL_NS);
      waited += TR_FULL_POLL_NS;
      tail = reload_tail(p);
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
  return true;
}

bool tr_producer_sync(tr_producer *p, uint64_t state) {
  if (state & TR_STATE_REATTACH) {
    /* First event in a forked child: never touch the parent's ring. */
    if (tr_client_reattach_thread(p) < 0) return false;
    state = atomic_load_explicit(p->state, memory_order_relaxed);
    if (state & TR_STATE_REATTACH) return false;
  }
  if (!(state & TR_STATE_ENABLED)) return false;
  if (p->hdr == NULL) {
    /* Enabled, but this thread has no ring yet (its first event).  If it
     * cannot get one, it stops trying: one attempt, not one per event. */
    if (tr_client_thread_open(p, NULL) < 0) {
      p->state = tr_client_never_word();
      return false;
    }
  }
  /* A new session (or the first one): calls remembered on the shadow
   * stack were begun under another state and must not be closed here. */
  p->depth = 0;
  p->skip = 0;
  p->overflow = 0;
  p->last_state = state;
  return true;
}

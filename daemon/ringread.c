/* ringread.c: consumer side of per-thread rings and lookups in string
 * arenas, validating every position, size and id taken from shared memory. */
#include "ringread.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "transport.h"
#include "tsclock.h"

/* ---- rings ------------------------------------------------------------ */

static bool valid_slots(uint32_t slots) {
  return slots >= TR_RING_MIN_SLOTS && slots <= TR_RING_MAX_SLOTS &&
         (slots & (slots - 1)) == 0;
}

int tr_ringview_attach(tr_ringview *v, void *base, size_t size,
                       uint32_t slots) {
  memset(v, 0, sizeof(*v));
  if (!valid_slots(slots)) return -EINVAL;
  if (size != TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record))
    return -EINVAL;
  tr_ring_hdr *h = base;
  if (h->magic != TR_RING_MAGIC || h->version != TR_PROTO_VERSION ||
      h->header_size != TR_SHM_HEADER_SIZE || h->capacity != slots ||
      h->tid == 0)
    return -EINVAL;
  v->hdr = h;
  v->slots = (const tr_record *)((const uint8_t *)base + TR_SHM_HEADER_SIZE);
  v->capacity = slots;
  v->mask = slots - 1;
  v->tid = h->tid;
  /* Start where the producer says the consumer is (0 for a new ring); from
   * here on only our copy counts.  Acquire is more than needed (the
   * mapping itself came through a system call, which orders it), and
   * costs nothing once per ring. */
  v->tail = atomic_load_explicit(&h->tail, memory_order_acquire);
  v->checked = v->tail;
  v->check_end = v->tail + slots;
  return 0;
}

int tr_ringview_map(tr_ringview *v, int fd, uint32_t slots) {
  memset(v, 0, sizeof(*v));
  if (!valid_slots(slots)) return -EINVAL;
  size_t size = TR_SHM_HEADER_SIZE + (size_t)slots * sizeof(tr_record);
  void *m = NULL;
  uint64_t id[2];
  int rc = tr_dtransport_shm_map(fd, size, &m, id);
  if (rc < 0) return rc;
  rc = tr_ringview_attach(v, m, size, slots);
  if (rc < 0) {
    tr_dtransport_shm_unmap(m, size);
    return rc;
  }
  v->map = m;
  v->map_size = size;
  v->dev = id[0];
  v->ino = id[1];
  return 0;
}

void tr_ringview_unmap(tr_ringview *v) {
  if (v->map != NULL) tr_dtransport_shm_unmap(v->map, v->map_size);
  memset(v, 0, sizeof(*v));
}

bool tr_ringview_closed(const tr_ringview *v) {
  /* Acquire, pairing with the producer's release store of `closed`
   * (tr_client_thread_close): its last release of `head` happened before,
   * so the drain that follows sees the final head. */
  return atomic_load_explicit(&v->hdr->closed, memory_order_acquire) != 0;
}

uint64_t tr_ringview_dropped(const tr_ringview *v) {
  /* Relaxed: a count for the summary, ordering nothing (tr_producer_drop). */
  return atomic_load_explicit(&v->hdr->dropped, memory_order_relaxed);
}

/* ---- pages that exist ---------------------------------------------------
 * Reading a page of shared memory that was never written allocates it, in
 * the reader: a producer that publishes a head of a whole 256 MiB ring
 * without writing a record would make the daemon hold 256 MiB per ring.
 * So before the first read of a slot page the daemon asks the kernel
 * whether it exists (mincore: in the memfd's page cache).  A page swapped
 * out reads as absent: MADV_WILLNEED starts reading it back (into the swap
 * cache, where mincore counts it) and leaves pages that were never written
 * alone, so asking again tells the two apart. */

/* Checks the slot pages of positions [v->checked, head) that were never
 * checked (at most one lap of the ring in the view's life). */
static int check_slots(tr_ringview *v, uint64_t head) {
  uint64_t to = head < v->check_end ? head : v->check_end;
  if (v->checked >= to) return 0;
  uint64_t from = v->checked;
  uint32_t i = (uint32_t)(from & v->mask);
  uint64_t n = to - from; /* <= capacity */
  uint64_t first = n < (uint64_t)v->capacity - i ? n : v->capacity - i;
  int rc = tr_dtransport_pages_exist(&v->slots[i], first * sizeof(tr_record));
  if (rc == 0 && n > first)
    rc = tr_dtransport_pages_exist(&v->slots[0],
                                   (n - first) * sizeof(tr_record));
  if (rc == 0) v->checked = to;
  return rc;
}

int tr_ringview_drain(tr_ringview *v, uint64_t min_ts, tr_record_fn fn,
                      void *ctx, tr_drain_stats *st) {
  bool more;
  int rc = tr_ringview_drain_max(v, min_ts, fn, ctx, st, UINT64_MAX, &more);
  return rc < 0 ? rc : 0;
}

int64_t tr_ringview_drain_max(tr_ringview *v, uint64_t min_ts, tr_record_fn fn,
                              void *ctx, tr_drain_stats *st, uint64_t max_slots,
                              bool *more) {
  *more = false;
  tr_ring_hdr *h = v->hdr;
  /* Clear the bell before reading head, so that a producer that passes
   * the watermark after this drain rings again instead of being ignored.
   * The two are not ordered (a relaxed store, then a load of another
   * location: the CPU may read head first), nor is the producer's store
   * of head before its load of bell, so a producer can pass the watermark
   * unseen by this drain and still find the bell set: that doorbell is
   * missed.  This is harmless, and not worth a fence per drain: the bell
   * only hurries a drain.  The producer looks again an eighth of a ring
   * later and rings then (set_limit in producer.c), rings whatever the
   * bell says when the ring is full, and the timer drains every ring
   * anyway. */
  if (atomic_load_explicit(&h->bell, memory_order_relaxed) != 0)
    atomic_store_explicit(&h->bell, 0, memory_order_relaxed);
  /* Acquire, pairing with the producer's release store of `head`
   * (tr_producer_publish): the slots below it are written. */
  uint64_t head = atomic_load_explicit(&h->head, memory_order_acquire);
  uint64_t t = v->tail;
  if (head < t || head - t > v->capacity) return -EPROTO;
  if (head == t) return 0;
  if (__builtin_expect(v->checked < v->check_end, 0) &&
      check_slots(v, head) < 0) {
    if (st != NULL) st->malformed++;
    return -ENODATA;
  }
  /* The batch ends at the first record boundary at or past the budget; a
   * record may still reach beyond it (its extra slots are checked against
   * head), never beyond head. */
  uint64_t end = head;
  if (max_slots < head - t) {
    end = t + (max_slots == 0 ? 1 : max_slots);
    *more = true;
  }
  const uint64_t start = t;
  const tr_record *slots = v->slots;
  const uint32_t mask = v->mask;
  uint64_t records = 0, late = 0, malformed = 0;
  tr_record extra[TR_RECORD_MAX_EXTRA];
  while (t < end) {
    tr_record r;
    /* One copy out of shared memory: validation and use see the same
     * values even if a hostile producer rewrites the slot meanwhile. */
    memcpy(&r, &slots[t & mask], sizeof(r));
    uint32_t n = r.extra;
    if (__builtin_expect(n != 0, 0)) {
      if (n > TR_RECORD_MAX_EXTRA || n >= head - t) {
        malformed++;
        t = head;
        break;
      }
      for (uint32_t i = 0; i < n; i++)
        memcpy(&extra[i], &slots[(t + 1 + i) & mask], sizeof(tr_record));
    }
    t += 1 + n;
    /* An ARGS record belongs to the record after it: a batch never ends
     * between the two. */
    if (__builtin_expect(r.kind == TR_REC_ARGS, 0) && t >= end && t < head)
      end = t + 1;
    if (v->clock != NULL) r.ts = tr_tsclock_ns(v->clock, r.ts);
    if (__builtin_expect(r.ts < min_ts, 0)) {
      late++;
      continue;
    }
    if (fn != NULL) {
      fn(ctx, &r, extra);
      records++;
    }
  }
  v->tail = t;
  /* Release, pairing with the producer's acquire load of `tail`
   * (reload_tail in producer.c): the slots are copied out before the
   * producer may write over them. */
  atomic_store_explicit(&h->tail, t, memory_order_release);
  /* Wake a producer sleeping for room (PROTOCOL.md section 5, "Full
   * ring").  The fence orders the tail store before the load of `waiting`;
   * it pairs with the producer's fence between its store of `waiting` and
   * its reload of `tail`, so either the producer sees this tail or this
   * load sees waiting == 1 and the bump of `wake` ends its FUTEX_WAIT. */
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&h->waiting, memory_order_relaxed) != 0) {
    atomic_fetch_add_explicit(&h->wake, 1, memory_order_relaxed);
    tr_dtransport_ring_wake(&h->wake);
  }
  if (st != NULL) {
    st->records += records;
    st->late += late;
    st->malformed += malformed;
  }
  if (t >= head) *more = false;
  return (int64_t)(t - start);
}

/* ---- string arena ----------------------------------------------------- */

void tr_arena_beat(tr_arenaview *a, uint64_t beat) {
  /* Relaxed: producers only compare it with the value they saw before. */
  atomic_store_explicit(&a->hdr->beat, beat, memory_order_relaxed);
}

int tr_arena_attach(tr_arenaview *a, void *base, size_t size,
                    uint32_t data_size) {
  memset(a, 0, sizeof(*a));
  if (data_size < TR_ARENA_MIN_SIZE || data_size > TR_ARENA_MAX_SIZE)
    return -EINVAL;
  if (size != (size_t)TR_SHM_HEADER_SIZE + data_size) return -EINVAL;
  tr_arena_hdr *h = base;
  if (h->magic != TR_ARENA_MAGIC || h->version != TR_PROTO_VERSION ||
      h->header_size != TR_SHM_HEADER_SIZE || h->capacity != data_size)
    return -EINVAL;
  a->hdr = h;
  a->data = (const uint8_t *)base + TR_SHM_HEADER_SIZE;
  a->capacity = data_size;
  a->committed = 0;
  return 0;
}

int tr_arena_map(tr_arenaview *a, int fd, uint32_t data_size) {
  memset(a, 0, sizeof(*a));
  if (data_size < TR_ARENA_MIN_SIZE || data_size > TR_ARENA_MAX_SIZE)
    return -EINVAL;
  size_t size = (size_t)TR_SHM_HEADER_SIZE + data_size;
  void *m = NULL;
  uint64_t id[2];
  int rc = tr_dtransport_shm_map(fd, size, &m, id);
  if (rc < 0) return rc;
  rc = tr_arena_attach(a, m, size, data_size);
  if (rc < 0) {
    tr_dtransport_shm_unmap(m, size);
    return rc;
  }
  a->map = m;
  a->map_size = size;
  return 0;
}

void tr_arena_unmap(tr_arenaview *a) {
  if (a->map != NULL) tr_dtransport_shm_unmap(a->map, a->map_size);
  memset(a, 0, sizeof(*a));
}

/* Refreshes the cached `committed`; a value beyond the capacity is a lie
 * and is not believed, and neither is one that covers pages the producer
 * never wrote (looking strings up there would allocate them in the
 * daemon): then the arena stops growing for good, so a lying producer
 * cannot make every lookup ask the kernel again. */
static uint32_t arena_reload(tr_arenaview *a) {
  if (a->lied) return a->committed;
  /* Acquire, pairing with the producer's release store of `committed`
   * (arena_append in client.c): the entries below it are written. */
  uint32_t c = atomic_load_explicit(&a->hdr->committed, memory_order_acquire);
  if (c <= a->capacity && c > a->committed) {
    if (tr_dtransport_pages_exist(a->data + a->committed, c - a->committed) < 0)
      a->lied = true;
    else
      a->committed = c;
  }
  return a->committed;
}

int tr_arena_get(tr_arenaview *a, uint32_t id, const char **ptr,
                 uint32_t *len) {
  if ((id & 3u) != 0) return -EINVAL;
  uint64_t end = (uint64_t)id + 4;
  if (end > a->committed && end > arena_reload(a)) return -EINVAL;
  uint32_t n;
  memcpy(&n, a->data + id, sizeof(n));
  if (n > TR_STRING_MAX_LEN) return -EINVAL;
  end += n;
  if (end > a->committed && end > arena_reload(a)) return -EINVAL;
  *ptr = (const char *)a->data + id + 4;
  *len = n;
  return 0;
}

void tr_arena_set_state(tr_arenaview *a, uint64_t state) {
  /* Relaxed: the state word publishes nothing (producers load it relaxed,
   * tr_producer_ready says why that is enough), and no order around it
   * in the daemon is needed.  The one order the protocol promises, this
   * store before the SESSION_CREATED or SESSION_JOINED reply that tells
   * the client it records, comes from sending that reply: the send()
   * system call orders this process's earlier stores before it, and the
   * client's recv() its later loads after it, as a mutex would.  A
   * disable is not
   * waited for by anyone: records made after it belong to no session
   * (tr_proc_attach).  seq_cst, used before, bought nothing: a store
   * cannot synchronise with relaxed loads. */
  atomic_store_explicit(&a->hdr->state, state, memory_order_relaxed);
}

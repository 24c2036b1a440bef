/* ringread.h: the daemon's side of shared memory: consuming a thread's ring
 * and looking up strings in a process's arena, trusting nothing in either.
 *
 * Neither view depends on the event loop, so unit tests drive them over
 * plain memory (tr_ringview_attach / tr_arena_attach) against a real
 * producer thread.  A view is used by one thread at a time. */
#ifndef TRACED_RINGREAD_H
#define TRACED_RINGREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/traced_proto.h"

/* ---- rings ------------------------------------------------------------ */

typedef struct tr_ringview {
  tr_ring_hdr *hdr;
  const tr_record *slots;
  uint64_t tail;     /* consumed position: the daemon's own copy, never
                        re-read from shared memory */
  uint32_t capacity; /* slots, a power of two */
  uint32_t mask;
  uint32_t tid; /* from the validated header */
  void *map;    /* non-NULL when tr_ringview_map created the mapping */
  size_t map_size;
  uint64_t dev, ino; /* the memfd's identity (0 for attached memory) */
  /* Positions below `checked` lie in slot pages known to exist; checking
   * stops at `check_end` (one lap from the start: every page verified). */
  uint64_t checked;
  uint64_t check_end;
  struct tr_tsclock *clock; /* borrowed; non-NULL: records carry TSC ticks,
                               converted to ns before anything reads them */
} tr_ringview;

typedef struct tr_drain_stats {
  uint64_t records;   /* records handed to the callback */
  uint64_t late;      /* discarded: timestamp before min_ts */
  uint64_t malformed; /* resyncs after an impossible record */
} tr_drain_stats;

/* Receives one record and a private copy of its `extra` payload slots
 * (rec->extra of them, already bounds-checked; they are copied because they
 * may wrap around the end of the ring). */
typedef void (*tr_record_fn)(void *ctx, const tr_record *rec,
                             const tr_record *extra);

/* Validates `fd` (a regular file of exactly TR_SHM_HEADER_SIZE + slots * 16
 * bytes, sealed against shrinking), maps it shared read-write (the daemon
 * writes `tail` and `bell`), and validates the header.  The caller keeps
 * `fd` and may close it at once.  Returns 0, -EINVAL (bad size, header or
 * slots), -EPERM (not sealed), or the mmap/fstat error. */
int tr_ringview_map(tr_ringview *v, int fd, uint32_t slots);

/* The same validation over memory the caller owns (size bytes at base, the
 * 4 KiB header page first).  tr_ringview_unmap then only forgets it. */
int tr_ringview_attach(tr_ringview *v, void *base, size_t size, uint32_t slots);

void tr_ringview_unmap(tr_ringview *v);

/* Consumes everything published: loads `head` with acquire, checks
 * tail <= head <= tail + capacity (else -EPROTO: the producer is broken or
 * hostile, nothing is consumed), checks that the slot pages of
 * [tail, head) exist, the first time the ring reaches them (else -ENODATA:
 * the producer published records in pages it never wrote; the daemon does
 * not read them, which would allocate them, and counts one malformed
 * record; see docs/hostile.md, "Empty rings"), converts each record's ts to
 * CLOCK_MONOTONIC ns when the view has a clock, passes each record with ts >=
 * min_ts to fn (fn NULL: discard), then publishes `tail` with release and
 * clears `bell`. A record whose `extra` exceeds TR_RECORD_MAX_EXTRA or reaches
 * beyond head counts as malformed and ends the batch at head (resync). Stats
 * are added to *st when st is not NULL. */
int tr_ringview_drain(tr_ringview *v, uint64_t min_ts, tr_record_fn fn,
                      void *ctx, tr_drain_stats *st);

/* The same with a budget: consumes whole records until at least
 * `max_slots` slots (at least one record) are consumed or the ring is
 * empty.  Returns the slots consumed, or -EPROTO or -ENODATA as above;
 * *more says
 * whether published records were left for a later call. */
int64_t tr_ringview_drain_max(tr_ringview *v, uint64_t min_ts, tr_record_fn fn,
                              void *ctx, tr_drain_stats *st, uint64_t max_slots,
                              bool *more);

/* True once the producer marked the ring closed (acquire: a drain after
 * seeing it reads the final head). */
bool tr_ringview_closed(const tr_ringview *v);

/* The producer's cumulative count of events refused on a full ring. */
uint64_t tr_ringview_dropped(const tr_ringview *v);

/* ---- string arena ----------------------------------------------------- */

typedef struct tr_arenaview {
  tr_arena_hdr *hdr;
  const uint8_t *data;
  uint32_t capacity;  /* data bytes */
  uint32_t committed; /* last validated `committed` (it only grows) */
  bool lied;          /* a `committed` over pages never written was seen:
                         it never grows again */
  void *map;
  size_t map_size;
} tr_arenaview;

/* Validates and maps an arena memfd of TR_SHM_HEADER_SIZE + data_size bytes
 * (same descriptor rules as rings).  The caller keeps `fd`. */
int tr_arena_map(tr_arenaview *a, int fd, uint32_t data_size);
int tr_arena_attach(tr_arenaview *a, void *base, size_t size,
                    uint32_t data_size);
void tr_arena_unmap(tr_arenaview *a);

/* Finds string `id`: checks id % 4 == 0 and id + 4 + len <= committed <=
 * capacity (reloading `committed` with acquire when needed; a new value is
 * believed only if the pages it adds exist, see tr_ringview_drain) and
 * len <= TR_STRING_MAX_LEN.  *ptr points into shared memory: the bytes are
 * the producer's and may change, so copy them before relying on them.
 * Returns 0 or -EINVAL. */
int tr_arena_get(tr_arenaview *a, uint32_t id, const char **ptr, uint32_t *len);

/* Writes the daemon's heartbeat (PROTOCOL.md section 5, "Full ring"). */
void tr_arena_beat(tr_arenaview *a, uint64_t beat);

/* Writes the process state word (see PROTOCOL.md section 4). */
void tr_arena_set_state(tr_arenaview *a, uint64_t state);

#endif

/* pftrace_clock.h: the Perfetto trace reader's clock tracker: converts a
 * packet's timestamp, in whichever clock it names, to the trace's clock,
 * through the ClockSnapshots read so far.
 *
 * A packet's timestamp is in the clock its timestamp_clock_id names, or
 * its sequence's default one, or, with neither, already in trace time.
 * traced writes each thread's timestamps as deltas on an incremental
 * sequence clock (64) that a snapshot on the sequence equates with
 * CLOCK_MONOTONIC, the trace clock its first snapshot declares; a
 * timestamp that went backwards is written absolute in MONOTONIC (3).
 *
 * Conversions follow the snapshots the way trace_processor's clock
 * tracker does for those cases: a builtin clock through its offset to the
 * trace clock in the latest snapshot that held both; a sequence clock
 * through the trace time its latest snapshot on the sequence anchored it
 * to (directly, or through a builtin clock of the same snapshot).  Unlike
 * trace_processor, a builtin clock no snapshot relates to the trace clock
 * is taken to be the trace clock (a producer that writes no snapshots
 * uses one clock), rather than dropping its events.  Arithmetic wraps, as
 * trace_processor's casts do: a hostile timestamp gives a wrong time,
 * never undefined behaviour.
 *
 * Memory: the sequence-scoped clocks each sequence's snapshots declared. */
#ifndef TRACED_PFTRACE_CLOCK_H
#define TRACED_PFTRACE_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "output/pftrace_fields.h"
#include "pbread.h"

/* A sequence-scoped clock, as its latest snapshot on the sequence
 * declared it. */
typedef struct tr_pfclock_seq {
  uint32_t id;
  bool incremental; /* packet timestamps are deltas from `last` */
  bool anchored;    /* the snapshot related it to the trace clock */
  uint64_t mult;    /* nanoseconds per unit */
  uint64_t ref;     /* its value in the snapshot */
  uint64_t last;    /* incremental: the last packet's value */
  int64_t anchor;   /* trace time at `ref` */
} tr_pfclock_seq;

/* One packet sequence's clocks.  They survive a reset of the sequence's
 * incremental state, as in trace_processor: they are the clock tracker's,
 * not the sequence's.  Zeroed: none. */
typedef struct tr_pfclock_seqs {
  tr_pfclock_seq *v;
  uint32_t n, cap;
} tr_pfclock_seqs;

/* The trace clock (primary_trace_clock, BOOTTIME by default) and, per
 * builtin clock, its unit and its offset to the trace clock from the
 * latest snapshot that held both. */
typedef struct tr_pfclock {
  uint32_t trace_clock;
  bool has_off[TR_PF_BUILTIN_CLOCK_MAX + 1];
  int64_t off[TR_PF_BUILTIN_CLOCK_MAX + 1];
  uint64_t unit[TR_PF_BUILTIN_CLOCK_MAX + 1];
} tr_pfclock;

void tr_pfclock_init(tr_pfclock *c);
void tr_pfclock_seqs_free(tr_pfclock_seqs *s);

/* Reads a ClockSnapshot found on the sequence whose clocks are s.
 * Returns 0, -1 when it is malformed, or -ENOMEM. */
int tr_pfclock_snapshot(tr_pfclock *c, tr_pfclock_seqs *s, tr_pbr msg);

/* Converts the timestamp v of a packet on the sequence whose clocks are s,
 * in clock `clock` (0: trace time), to trace time.  An incremental clock
 * advances.  False when the clock means nothing here (a sequence clock no
 * snapshot on the sequence declared, or one its snapshot could not place
 * in trace time). */
bool tr_pfclock_to_trace(const tr_pfclock *c, tr_pfclock_seqs *s,
                         uint32_t clock, uint64_t v, int64_t *out);

#endif

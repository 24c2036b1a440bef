/* tsclock.h: converting producers' raw time-stamp-counter readings into
 * CLOCK_MONOTONIC nanoseconds, the one timeline of every trace.
 *
 * Why: reading the TSC (rdtsc, ~10 ns) is about a third of the cost of
 * clock_gettime through the vDSO on the VMs we measure, and a traced call
 * reads the clock twice.  So when the host's TSC is invariant and the
 * kernel itself trusts it (clocksource "tsc"), producers store raw ticks
 * and the daemon converts them.
 *
 * The conversion is a piecewise-linear map through anchors: pairs
 * (tsc, monotonic ns) sampled back to back by the daemon.  Anchors are
 * appended on demand, when a reading lies beyond the last anchor, at most
 * one per TR_TSCLOCK_GAP_NS; readings beyond the last anchor but within that
 * gap are extrapolated with the slope measured over a long baseline
 * (seconds), and the next anchor is placed so that those readings keep the
 * values they were given.  Hence:
 *  - the map is non-decreasing, so a child slice never ends after its
 *    parent and nesting survives conversion exactly;
 *  - a given reading converts to the same value whenever it is converted
 *    (as long as its segment is still held: TR_TSCLOCK_ANCHORS of them);
 *  - at each anchor it agrees with CLOCK_MONOTONIC to within the sampling
 *    jitter (tens of ns), so nothing drifts, however long the trace.
 * Hostile readings (far past or future) are clamped, never overflow.
 * One tr_tsclock serves the whole daemon; it is not thread-safe. */
#ifndef TRACED_TSCLOCK_H
#define TRACED_TSCLOCK_H

#include <stdbool.h>
#include <stdint.h>

#define TR_TSCLOCK_ANCHORS 4096u
#define TR_TSCLOCK_GAP_NS 1000000u            /* 1 ms */
#define TR_TSCLOCK_BASELINE_NS 10000000000ull /* 10 s */

typedef struct tr_tsc_anchor {
  uint64_t tsc;
  uint64_t ns;
  uint64_t mult; /* ns per tick << 32, up to the next anchor */
} tr_tsc_anchor;

/* Reads the current (tsc, ns) pair; replaceable for tests. */
typedef void (*tr_tsclock_sample_fn)(void *ctx, uint64_t *tsc, uint64_t *ns);

typedef struct tr_tsclock {
  tr_tsc_anchor a[TR_TSCLOCK_ANCHORS]; /* a ring, oldest at `first` */
  uint32_t first, count;
  uint32_t hint; /* index (from first) of the last segment used */
  /* Fast paths: the last segment used, and the last anchor. */
  uint64_t seg_tsc, seg_len, seg_ns, seg_mult, seg_ns_end;
  uint64_t last_tsc, last_ns;
  uint64_t gap_ticks;    /* TR_TSCLOCK_GAP_NS in ticks */
  uint64_t extrap_max;   /* largest reading extrapolated past the last anchor */
  uint64_t ext_mult;     /* slope for readings past the last anchor: over a
                            long baseline of real samples, not the last
                            segment (which may be short, hence noisy) */
  tr_tsc_anchor base[2]; /* real samples [older, newer] for ext_mult */
  uint64_t samples;      /* anchors taken (for tests and status) */
  tr_tsclock_sample_fn sample;
  void *sample_ctx;
} tr_tsclock;

/* True when producers on this host may use the TSC: x86-64 with an
 * invariant TSC (constant_tsc and nonstop_tsc) that the kernel uses as its
 * clocksource.  `why` receives a short reason when false. */
bool tr_tsclock_usable(const char **why);

/* Initialises the clock with two anchors ~`calib_us` apart (the first
 * slope).  `sample` NULL: rdtsc + CLOCK_MONOTONIC. */
void tr_tsclock_init(tr_tsclock *c, tr_tsclock_sample_fn sample, void *ctx,
                     unsigned calib_us);

/* Converts one reading to CLOCK_MONOTONIC ns (see the rules above). */
uint64_t tr_tsclock_ns(tr_tsclock *c, uint64_t tsc);

#endif /* TRACED_TSCLOCK_H */

/* drain.c: fair draining, the loop's part: refilling every user's record
 * rate tokens and opening each window of fair shares for the workers.
 *
 * One user's flood must not delay another user's session
 * (docs/service.md, "Fairness and the record rate").  The workers
 * (worker.c) give every process turns of a bounded cost (ring slots plus
 * bytes formatted / 16), a user at most TR_DRAIN_PASS_PER_UID of cost per
 * 10 ms window while others are connected, and at most its rate-limit
 * tokens.  What is left waits in the rings; a producer whose ring stays
 * full waits too (the heartbeat says the daemon lives), so a user over the
 * rate limit is slowed down, and only a producer in the drop mode loses
 * events, counted in its own trace, never anyone else's. */
#include <stdint.h>

#include "common/log.h"
#include "server_int.h"

static bool rate_limited(const tr_server *s) {
  return s->limits.record_rate_per_uid != UINT64_MAX;
}

/* Logs a user whose rate limit cut turns short, at most every 10 s. */
static void note_throttled(tr_server *s, tr_usage *u, uint64_t now) {
  uint64_t last = atomic_load_explicit(&u->limit_logged, memory_order_relaxed);
  if (last != 0 && now - last < 10000) return;
  atomic_store_explicit(&u->limit_logged, now, memory_order_relaxed);
  tr_log(TR_LOG_WARN,
         "event=limit uid=%lu what=record_rate limit=%llu reason=\"this "
         "user's producers write more records per second than the limit; "
         "they wait (or, in the drop mode, drop and count what their rings "
         "cannot hold)\"",
         (unsigned long)u->uid,
         (unsigned long long)s->limits.record_rate_per_uid);
}

void tr_drain_tick(tr_server *s, uint64_t now) {
  uint64_t rate = s->limits.record_rate_per_uid;
  uint64_t dt = now - s->drain.refill_ms;
  s->drain.refill_ms = now;
  /* With one user connected there is nobody to be fair to: the share
   * would only cap how fast that user's rings are emptied. */
  bool fair = s->usage != NULL && s->usage->next != NULL;
  atomic_store_explicit(&s->workers.fair, fair || rate_limited(s),
                        memory_order_relaxed);
  atomic_store_explicit(&s->workers.rate_on, rate_limited(s),
                        memory_order_relaxed);
  for (tr_usage *u = s->usage; u != NULL; u = u->next) {
    /* A new window: relaxed, the workers read and charge it on its own. */
    atomic_store_explicit(&u->window_used, 0, memory_order_relaxed);
    if (!rate_limited(s)) continue;
    if (atomic_exchange_explicit(&u->throttled, 0, memory_order_relaxed) > 0)
      note_throttled(s, u, now);
    /* A bucket of one second's worth: bursts up to the rate pass. */
    uint64_t add =
        dt >= 1000 ? rate : rate / 1000 * dt + rate % 1000 * dt / 1000;
    uint64_t t = atomic_load_explicit(&u->rate_tokens, memory_order_relaxed);
    uint64_t n;
    do {
      n = rate - t <= add ? rate : t + add;
    } while (!atomic_compare_exchange_weak_explicit(
        &u->rate_tokens, &t, n, memory_order_relaxed, memory_order_relaxed));
  }
}

/* drain.c: fair draining: how the rings of every connection are emptied,
 * a share per user per pass and within its record rate.
 *
 * One user's flood must not delay another user's session
 * (docs/service.md, "Fairness and the record rate"): a drain pass gives
 * every connection turns of TR_DRAIN_QUANTUM records, starting each pass
 * at a different connection; a user gets at most TR_DRAIN_PASS_PER_UID
 * records per pass (doorbells between passes draw from the same budget)
 * and at most its rate-limit tokens.  What is left waits in the rings; a
 * producer whose ring stays full drops and counts what it cannot write,
 * so a user over the rate limit sees the loss in its own trace and
 * summary, never anyone else.
 *
 * The interface is tr_drain_client, tr_drain_pass and tr_drain_forget
 * (server_int.h, which says what they read and write). */
#include <stdint.h>

#include "common/log.h"
#include "server_int.h"

static bool rate_limited(const tr_server *s) {
  return s->limits.record_rate_per_uid != UINT64_MAX;
}

static uint64_t drain_allowance(const tr_server *s, const tr_usage *u) {
  /* With one user connected there is nobody to be fair to: the per-pass
   * share would only cap how fast that user's rings are emptied. */
  if (s->usage == u && u->next == NULL && !rate_limited(s)) return UINT64_MAX;
  uint64_t left = u->pass_used >= TR_DRAIN_PASS_PER_UID
                      ? 0
                      : TR_DRAIN_PASS_PER_UID - u->pass_used;
  if (rate_limited(s) && u->rate_tokens < left) left = u->rate_tokens;
  return left;
}

static void note_throttled(tr_server *s, tr_usage *u) {
  u->throttled++;
  uint64_t now = uv_now(s->loop);
  if (u->limit_logged_ms != 0 && now - u->limit_logged_ms < 10000) return;
  u->limit_logged_ms = now;
  tr_log(TR_LOG_WARN,
         "event=limit uid=%lu what=record_rate limit=%llu reason=\"this "
         "user's producers write more records per second than the limit; "
         "what their rings cannot hold is dropped and counted in their "
         "traces\"",
         (unsigned long)u->uid,
         (unsigned long long)s->limits.record_rate_per_uid);
}

bool tr_drain_client(tr_server *s, client *cl, uint64_t quantum) {
  tr_usage *u = cl->proc.usage;
  if (cl->conn.dead || cl->proc.nthreads == 0 || u == NULL) return false;
  uint64_t allow = drain_allowance(s, u);
  if (allow == 0) {
    if (rate_limited(s) && u->rate_tokens == 0) note_throttled(s, u);
    return false;
  }
  if (quantum > allow) quantum = allow;
  uint64_t used;
  bool more;
  if (tr_proc_drain_some(&cl->proc, quantum, &used, &more) < 0)
    tr_conn_check_failed(cl);
  u->pass_used += used;
  if (rate_limited(s)) {
    u->rate_tokens = used < u->rate_tokens ? u->rate_tokens - used : 0;
    if (more && u->rate_tokens == 0) note_throttled(s, u);
  }
  return more;
}

void tr_drain_pass(tr_server *s, uint64_t now) {
  uint64_t rate = s->limits.record_rate_per_uid;
  uint64_t dt = now - s->drain.refill_ms;
  s->drain.refill_ms = now;
  for (tr_usage *u = s->usage; u != NULL; u = u->next) {
    u->pass_used = 0;
    if (!rate_limited(s)) continue;
    /* A bucket of one second's worth: bursts up to the rate pass. */
    uint64_t add =
        dt >= 1000 ? rate : rate / 1000 * dt + rate % 1000 * dt / 1000;
    u->rate_tokens = rate - u->rate_tokens <= add ? rate : u->rate_tokens + add;
  }
  if (s->clients == NULL) return;
  client *first = s->drain.cursor != NULL ? s->drain.cursor : s->clients;
  bool more = true;
  while (more) {
    more = false;
    client *cl = first;
    do {
      if (tr_drain_client(s, cl, TR_DRAIN_QUANTUM)) more = true;
      cl = cl->next != NULL ? cl->next : s->clients;
    } while (cl != first);
  }
  s->drain.cursor = first->next;
}

void tr_drain_forget(tr_server *s, const client *cl) {
  if (s->drain.cursor == cl) s->drain.cursor = cl->next;
}

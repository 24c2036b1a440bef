/* lograte.c: a burst of refusal log lines per uid per window (lograte.h). */
#include "lograte.h"

#include "common/log.h"

bool tr_lograte_allow(tr_lograte *r, uid_t uid, uint64_t now_ms) {
  tr_lograte_slot *s = &r->slot[(uint32_t)uid % TR_LOGRATE_SLOTS];
  if (!s->used || s->uid != uid) {
    *s = (tr_lograte_slot){.uid = uid, .used = true, .window_ms = now_ms};
  } else if (now_ms - s->window_ms >= TR_LOGRATE_WINDOW_MS) {
    if (s->held > 0)
      tr_log(TR_LOG_WARN,
             "event=limit uid=%lu what=refusal_log held_back=%llu "
             "reason=\"%llu refusal lines of this user were not logged\"",
             (unsigned long)uid, (unsigned long long)s->held,
             (unsigned long long)s->held);
    s->window_ms = now_ms;
    s->lines = 0;
    s->held = 0;
  }
  if (s->lines < TR_LOGRATE_BURST) {
    s->lines++;
    return true;
  }
  if (s->held++ == 0)
    tr_log(TR_LOG_WARN,
           "event=limit uid=%lu what=refusal_log limit=%u window_ms=%u "
           "reason=\"this user's connections are refused faster than the "
           "log takes lines: further refusals in this window are counted, "
           "not logged\"",
           (unsigned long)uid, TR_LOGRATE_BURST, TR_LOGRATE_WINDOW_MS);
  return false;
}

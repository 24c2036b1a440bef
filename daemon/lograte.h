/* lograte.h: how many refusal lines one user may make the daemon write.
 * A client that sends bad frames in a loop (40,000 a second) would
 * otherwise fill the log and its disk; each uid gets a burst of lines per
 * window, the rest are counted and reported in one `event=limit` line.
 * Loop thread only. */
#ifndef TRACED_LOGRATE_H
#define TRACED_LOGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/platform.h"

/* Refusal lines one uid may cause per window, and the window. */
#define TR_LOGRATE_BURST 200
#define TR_LOGRATE_WINDOW_MS 10000
/* Users tracked at once; a uid that shares a slot with another starts a
 * fresh window when it takes the slot over (at worst, more lines). */
#define TR_LOGRATE_SLOTS 64

typedef struct tr_lograte_slot {
  uid_t uid;
  bool used;
  uint64_t window_ms; /* loop time the current window began */
  uint32_t lines;     /* lines logged in it */
  uint64_t held;      /* lines not logged in it */
} tr_lograte_slot;

typedef struct tr_lograte {
  tr_lograte_slot slot[TR_LOGRATE_SLOTS];
} tr_lograte;

/* Whether a refusal line caused by `uid` may be written at loop time
 * `now_ms`.  Writes the `event=limit` lines itself: when a uid's lines
 * start being held back, and, with the next line written for it, how many
 * were. */
bool tr_lograte_allow(tr_lograte *r, uid_t uid, uint64_t now_ms);

#endif

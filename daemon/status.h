/* status.h: the STATUS_REPLY message (PROTOCOL.md section 2): what the
 * daemon is and serves, as one peer may see it.
 *
 * Visibility: a peer sees its own sessions; root sees every session.
 * Nobody sees a token; a session's output path goes to its owner and root
 * only.  Everyone sees how many sessions run in all. */
#ifndef TRACED_STATUS_H
#define TRACED_STATUS_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/platform.h"
#include "session.h"

/* Replies stay below this many bytes (the frame limit with room to spare);
 * sessions that do not fit are counted in `sessions_omitted`. */
#define TR_STATUS_MAX_BYTES (60u * 1024u)
/* A session's display path in the reply is cut to this many bytes (at a
 * UTF-8 boundary, "..." appended): a path is whatever its client chose, and
 * one user's long paths must not push other users' sessions out of the
 * reply.  With the other fields an entry stays under 512 bytes, so a
 * reply holds 120 sessions. */
#define TR_STATUS_PATH_MAX 256u

typedef struct tr_status_daemon {
  const char *socket;
  bool system;
  uint64_t uptime_ns;
  uint32_t connections;         /* the viewer's own (root: all) */
  uint64_t record_rate_per_uid; /* UINT64_MAX: none */
} tr_status_daemon;

/* Packs the STATUS_REPLY map for a peer of uid `viewer` into sb (which the
 * caller initialised and destroys). */
void tr_status_pack(msgpack_sbuffer *sb, const tr_status_daemon *d,
                    const tr_sessions *ss, uid_t viewer);

#endif

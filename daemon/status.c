/* status.c: packs STATUS_REPLY, the daemon's answer to `traced status`. */
#include "status.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/version.h"
#include "proto/msg.h"
#include "proto/traced_proto.h"

/* The display path, cut to TR_STATUS_PATH_MAX bytes at a UTF-8 boundary
 * with "..." appended when it is longer. */
static tr_msg_str bounded_path(const char *path, char *buf, size_t size) {
  size_t n = strlen(path);
  if (n <= TR_STATUS_PATH_MAX) return tr_msg_cstr(path);
  n = TR_STATUS_PATH_MAX - 3;
  while (n > 0 && ((unsigned char)path[n] & 0xC0) == 0x80) n--;
  snprintf(buf, size, "%.*s...", (int)n, path);
  return tr_msg_cstr(buf);
}

/* Only the owner and root get here, so the output path is shown. */
static void pack_session(msgpack_sbuffer *sb, const tr_session *s,
                         uint64_t now) {
  char cut[TR_STATUS_PATH_MAX + 1];
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  tr_session_live l;
  tr_session_live_stats(s, now, &l);
  tr_msg_status_session m = {
      .id = s->epoch,
      .owner = s->owner,
      .processes = l.processes,
      .members = l.members,
      .threads = l.threads,
      .events = l.events,
      .events_per_s = l.events_per_s,
      .dropped = l.dropped,
      .bytes = l.bytes,
      .age_ns = l.age_ns,
      .path = bounded_path(s->path, cut, sizeof(cut)),
  };
  tr_msg_status_session_pack(&pk, &m);
}

void tr_status_pack(msgpack_sbuffer *sb, const tr_status_daemon *d,
                    const tr_sessions *ss, uid_t viewer) {
  uint64_t now = tr_monotonic_ns();
  /* Sessions first, into their own buffer: the array's length is known
   * only once we know how many fit. */
  msgpack_sbuffer items;
  msgpack_sbuffer_init(&items);
  uint32_t shown = 0, omitted = 0;
  /* The list is newest first; show oldest first, as `ps` would. */
  const tr_session *order[1024];
  uint32_t n = 0;
  for (const tr_session *s = ss->head; s != NULL; s = s->next) {
    if (viewer != 0 && s->owner != viewer) continue;
    if (n < sizeof(order) / sizeof(order[0]))
      order[n++] = s;
    else
      omitted++;
  }
  for (uint32_t i = n; i-- > 0;) {
    size_t before = items.size;
    pack_session(&items, order[i], now);
    if (items.size > TR_STATUS_MAX_BYTES) {
      items.size = before;
      omitted += i + 1;
      break;
    }
    shown++;
  }
  tr_msg_status_reply m = {
      .version = tr_msg_cstr(TRACED_VERSION),
      .protocol = TR_PROTO_VERSION,
      .daemon_pid = (uint64_t)getpid(),
      .daemon_uid = (uint64_t)geteuid(),
      .uptime_ns = d->uptime_ns,
      .socket = tr_msg_cstr(d->socket),
      .mode = tr_msg_cstr(d->system ? TR_MODE_SYSTEM : TR_MODE_PRIVATE),
      .connections = d->connections,
      .sessions_total = ss->count,
      .record_rate_per_uid =
          d->record_rate_per_uid == UINT64_MAX ? 0 : d->record_rate_per_uid,
      .viewer_uid = (uint64_t)viewer,
      .sessions_omitted = omitted,
      .nsessions = shown,
  };
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  tr_msg_status_reply_pack(&pk, &m);
  msgpack_sbuffer_write(sb, items.data, items.size);
  msgpack_sbuffer_destroy(&items);
}

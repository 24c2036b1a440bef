/* status.c: packs STATUS_REPLY, the daemon's answer to `traced status`. */
#include "status.h"

#include <string.h>
#include <unistd.h>

#include "common/version.h"
#include "proto/mp.h"
#include "proto/traced_proto.h"

/* Only the owner and root get here, so the output path is shown. */
static void pack_session(msgpack_sbuffer *sb, const tr_session *s,
                         uint64_t now) {
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  tr_session_live l;
  tr_session_live_stats(s, now, &l);
  msgpack_pack_map(&pk, 11);
  tr_mp_kv_u64(&pk, "id", s->epoch);
  tr_mp_kv_u64(&pk, "owner", s->owner);
  tr_mp_kv_u64(&pk, "processes", l.processes);
  tr_mp_kv_u64(&pk, "members", l.members);
  tr_mp_kv_u64(&pk, "threads", l.threads);
  tr_mp_kv_u64(&pk, "events", l.events);
  tr_mp_kv_u64(&pk, "events_per_s", l.events_per_s);
  tr_mp_kv_u64(&pk, "dropped", l.dropped);
  tr_mp_kv_u64(&pk, "bytes", l.bytes);
  tr_mp_kv_u64(&pk, "age_ns", l.age_ns);
  tr_mp_kv_str(&pk, "path", s->path);
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
  msgpack_packer pk;
  msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 13);
  tr_mp_kv_str(&pk, "version", TRACED_VERSION);
  tr_mp_kv_u64(&pk, "protocol", TR_PROTO_VERSION);
  tr_mp_kv_u64(&pk, "daemon_pid", (uint64_t)getpid());
  tr_mp_kv_u64(&pk, "daemon_uid", (uint64_t)geteuid());
  tr_mp_kv_u64(&pk, "uptime_ns", d->uptime_ns);
  tr_mp_kv_str(&pk, "socket", d->socket);
  tr_mp_kv_str(&pk, "mode", d->system ? "system" : "private");
  tr_mp_kv_u64(&pk, "connections", d->connections);
  tr_mp_kv_u64(&pk, "sessions_total", ss->count);
  tr_mp_kv_u64(
      &pk, "record_rate_per_uid",
      d->record_rate_per_uid == UINT64_MAX ? 0 : d->record_rate_per_uid);
  tr_mp_kv_u64(&pk, "viewer_uid", (uint64_t)viewer);
  tr_mp_kv_u64(&pk, "sessions_omitted", omitted);
  tr_mp_str(&pk, "sessions");
  msgpack_pack_array(&pk, shown);
  msgpack_sbuffer_write(sb, items.data, items.size);
  msgpack_sbuffer_destroy(&items);
}

/* writer_pftrace.c: writes a session's events as a Perfetto protobuf trace
 * (TracePackets with interned names, track descriptors and TrackEvents). */
#include "writer_pftrace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/map.h"
#include "common/platform.h"
#include "pb.h"
#include "pftrace_fields.h"
#include "proto/traced_proto.h"
#include "utf8.h"

/* Packet sequence 1 carries the writer's own packets (the clock snapshot,
 * track descriptors); each thread of each stream gets one of 2, 3, ... */
#define WRITER_SEQ 1u

/* Room for everything in a packet but its strings: timestamp, sequence id
 * and flags, the track event's type, track, category and name iid, the
 * nesting headers. */
#define PACKET_OVERHEAD 128u

static const char *const cat_names[TR_CAT_COUNT] = {
    [TR_CAT_PYTHON] = "python",
    [TR_CAT_C] = "c",
    [TR_CAT_API] = "api",
    [TR_CAT_TRACED] = "traced",
};

static const char lost_name[] = "traced: events lost (ring full)";

/* ---- uuids ----------------------------------------------------------------
 * The low two bits say what a uuid names: 01 a process, 10 a thread, 11 a
 * counter.  Process and thread uuids hold 22 bits of pid and tid (Linux
 * keeps both below 2^22, PID_MAX_LIMIT), so a thread's uuid is a 7-byte
 * varint on every one of its events rather than a 10-byte one. */

#define ID22(x) ((uint64_t)((x)&0x3fffffu))

uint64_t tr_pf_process_uuid(uint32_t pid) { return (ID22(pid) << 2) | 1u; }

uint64_t tr_pf_thread_uuid(uint32_t pid, uint32_t tid) {
  return (ID22(pid) << 24) | (ID22(tid) << 2) | 2u;
}

/* FNV-1a of the name, mixed with the pid: counters are per process and
 * name, as in JSON (a "C" event belongs to its pid). */
uint64_t tr_pf_counter_uuid(uint32_t pid, const char *name, size_t len) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t)name[i];
    h *= 0x100000001b3ull;
  }
  h ^= (uint64_t)pid * 0x9e3779b97f4a7c15ull;
  return (h << 2) | 3u;
}

/* ---- per-stream state ---------------------------------------------------
 * A process's stream remembers, in a map, which of its threads have a
 * packet sequence (KEY_THREAD | tid -> pf_thread) and which counter tracks
 * it described (KEY_COUNTER | id -> uuid); each thread's sequence
 * remembers the names it interned (string id -> nothing).  They grow with
 * the distinct threads, counters and names of the process, never with its
 * events. */

#define KEY_THREAD (2ull << 62)
#define KEY_COUNTER (3ull << 62)

/* One thread's packet sequence: its track is the sequence's default track
 * and its timestamps are deltas on the sequence's incremental clock. */
typedef struct pf_thread {
  uint32_t tid;
  uint32_t seq;
  uint64_t clock; /* the incremental clock's value: the last timestamp */
  tr_map names;
  /* Every event packet's sequence id and flags, encoded once. */
  uint8_t seq_fields[2 * (5 + TR_PB_VARINT_MAX)];
  uint8_t seq_fields_len;
} pf_thread;

typedef struct pf_stream {
  bool described; /* the process track's descriptor is written */
  tr_map m;
  pf_thread *last; /* the thread of the last lookup: a drain formats a
                      ring's records in a row */
} pf_stream;

/* Thread tid's sequence, or NULL when it has none yet. */
static inline pf_thread *thread_of(pf_stream *ps, uint32_t tid) {
  if (ps->last != NULL && ps->last->tid == tid) return ps->last;
  const uint64_t *t = tr_map_get(&ps->m, KEY_THREAD | tid);
  if (t == NULL) return NULL;
  ps->last = (pf_thread *)(uintptr_t)*t;
  return ps->last;
}

/* ---- the output buffer -------------------------------------------------- */

static const tr_writer_ops pf_ops;

static inline tr_lane *lane_of(const tr_wstream *s) {
  return &s->w->lanes[s->lane];
}

/* Makes room in lane l for a packet of at most `need` bytes and starts
 * it: *pb writes into the lane's buffer and *mark closes the packet.
 * Returns false when the writer has failed or the packet cannot fit. */
static bool packet_begin(tr_pftrace *w, tr_lane *l, size_t need, tr_pb *pb,
                         size_t *mark) {
  if (need > TR_PF_BUF_SIZE / 2) return false;
  char *p = tr_lane_reserve(&w->base, l, need);
  if (p == NULL) return false;
  tr_pb_init(pb, (uint8_t *)p, TR_PF_BUF_SIZE - l->c->len);
  *mark = tr_pb_begin(pb, TR_PF_TRACE_PACKET);
  return true;
}

/* Closes the packet and keeps it, unless it overflowed its estimate (then
 * it is discarded whole: the file only ever holds whole packets). */
static bool packet_end(tr_lane *l, tr_pb *pb, size_t mark, bool event) {
  tr_pb_end(pb, mark);
  if (pb->overflow) return false;
  tr_lane_commit(l, (char *)pb->buf + pb->len, event);
  return true;
}

/* An event that could not be written. */
static void dropped(tr_lane *l) { tr_lane_count(&l->dropped, 1); }

static void put_clock(tr_pb *pb, uint32_t id, clockid_t clk) {
  struct timespec ts;
  clock_gettime(clk, &ts);
  size_t m = tr_pb_begin(pb, TR_PF_SNAPSHOT_CLOCKS);
  tr_pb_uint(pb, TR_PF_CLOCK_ID, id);
  tr_pb_uint(pb, TR_PF_CLOCK_TIMESTAMP,
             (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
  tr_pb_end(pb, m);
}

int tr_pftrace_open(tr_pftrace **out, int fd, const char *label,
                    unsigned nlanes) {
  tr_pftrace *w = calloc(1, sizeof(*w));
  if (w == NULL) return -ENOMEM;
  atomic_init(&w->next_seq, 0);
  int rc = tr_writer_init(&w->base, &pf_ops, TR_FORMAT_PERFETTO, label, fd,
                          nlanes, TR_PF_BUF_SIZE, 0);
  if (rc < 0) goto err;
  /* Our timestamps are the producers' CLOCK_MONOTONIC: make it the trace's
   * clock, and relate it to BOOTTIME (Perfetto's default) so this trace
   * can be merged with a system trace. */
  tr_lane *l = &w->base.lanes[0];
  tr_pb pb;
  size_t m;
  rc = -ENOMEM;
  if (!packet_begin(w, l, PACKET_OVERHEAD, &pb, &m)) goto err;
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
  size_t cs = tr_pb_begin(&pb, TR_PF_PACKET_CLOCK_SNAPSHOT);
  put_clock(&pb, TR_PF_BUILTIN_CLOCK_BOOTTIME, CLOCK_BOOTTIME);
  put_clock(&pb, TR_PF_BUILTIN_CLOCK_MONOTONIC, CLOCK_MONOTONIC);
  tr_pb_uint(&pb, TR_PF_SNAPSHOT_PRIMARY_CLOCK, TR_PF_BUILTIN_CLOCK_MONOTONIC);
  tr_pb_end(&pb, cs);
  if (!packet_end(l, &pb, m, false)) goto err;
  rc = tr_writer_start(&w->base);
  if (rc < 0) goto err;
  *out = w;
  return 0;
err:
  tr_writer_free(&w->base);
  return rc;
}

/* ---- packets of a stream ------------------------------------------------
 * Descriptors are written on the writer's own sequence (1): they need no
 * incremental state.  Each thread's events are on a sequence of its own,
 * whose first packet clears incremental state, defaults every event to
 * the thread's track and to the sequence clock SEQ_CLOCK, and declares
 * that clock incremental and equal to CLOCK_MONOTONIC at the thread's
 * first timestamp: an event's timestamp is then the few bytes of its
 * distance from the thread's previous one. */

/* The first sequence-scoped clock id. */
#define SEQ_CLOCK TR_PF_SEQ_CLOCK_MIN

static void put_process_descriptor(tr_pb *pb, uint32_t pid, const char *name,
                                   size_t len) {
  size_t td = tr_pb_begin(pb, TR_PF_PACKET_TRACK_DESCRIPTOR);
  tr_pb_uint(pb, TR_PF_TD_UUID, tr_pf_process_uuid(pid));
  size_t pd = tr_pb_begin(pb, TR_PF_TD_PROCESS);
  tr_pb_int(pb, TR_PF_PROCESS_PID, (int32_t)pid);
  if (name != NULL) tr_pb_utf8(pb, TR_PF_PROCESS_NAME, name, len);
  tr_pb_end(pb, pd);
  tr_pb_end(pb, td);
}

static void put_thread_descriptor(tr_pb *pb, uint32_t pid, uint32_t tid,
                                  const char *name, size_t len) {
  size_t td = tr_pb_begin(pb, TR_PF_PACKET_TRACK_DESCRIPTOR);
  tr_pb_uint(pb, TR_PF_TD_UUID, tr_pf_thread_uuid(pid, tid));
  tr_pb_uint(pb, TR_PF_TD_PARENT_UUID, tr_pf_process_uuid(pid));
  size_t th = tr_pb_begin(pb, TR_PF_TD_THREAD);
  tr_pb_int(pb, TR_PF_THREAD_PID, (int32_t)pid);
  tr_pb_int(pb, TR_PF_THREAD_TID, (int32_t)tid);
  if (name != NULL) tr_pb_utf8(pb, TR_PF_THREAD_NAME, name, len);
  tr_pb_end(pb, th);
  tr_pb_end(pb, td);
}

/* Writes a descriptor packet (on sequence 1) for the process of stream s,
 * or (`thread`) for its thread tid, with a name or none; the process's own
 * descriptor first if it has none yet. */
static bool describe(tr_wstream *s, bool thread, uint32_t tid, const char *name,
                     size_t len) {
  tr_pftrace *w = (tr_pftrace *)s->w;
  pf_stream *ps = s->impl;
  tr_pb pb;
  size_t m;
  if (len > TR_STRING_MAX_LEN) len = TR_STRING_MAX_LEN;
  if (!ps->described) {
    /* The process track comes before any of its threads' tracks. */
    if (!packet_begin(w, lane_of(s), PACKET_OVERHEAD, &pb, &m)) return false;
    tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
    put_process_descriptor(&pb, s->pid, NULL, 0);
    if (!packet_end(lane_of(s), &pb, m, false)) return false;
    ps->described = true;
    if (!thread && name == NULL) return true;
  }
  if (!packet_begin(w, lane_of(s), PACKET_OVERHEAD + TR_UTF8_SANITIZED_MAX(len),
                    &pb, &m))
    return false;
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
  if (thread)
    put_thread_descriptor(&pb, s->pid, tid, name, len);
  else
    put_process_descriptor(&pb, s->pid, name, len);
  return packet_end(lane_of(s), &pb, m, false);
}

static void put_snapshot_clock(tr_pb *pb, uint32_t id, uint64_t ts,
                               bool incremental) {
  size_t m = tr_pb_begin(pb, TR_PF_SNAPSHOT_CLOCKS);
  tr_pb_uint(pb, TR_PF_CLOCK_ID, id);
  tr_pb_uint(pb, TR_PF_CLOCK_TIMESTAMP, ts);
  if (incremental) tr_pb_bool(pb, TR_PF_CLOCK_IS_INCREMENTAL, true);
  tr_pb_end(pb, m);
}

/* Thread tid's sequence, started (and its track described) at timestamp
 * ts if this is its first event.  NULL when nothing can be written. */
static pf_thread *thread_ready(tr_wstream *s, uint32_t tid, uint64_t ts) {
  tr_pftrace *w = (tr_pftrace *)s->w;
  pf_stream *ps = s->impl;
  pf_thread *t = thread_of(ps, tid);
  if (t != NULL) return t;
  t = calloc(1, sizeof(*t));
  if (t == NULL) return NULL;
  t->tid = tid;
  /* Relaxed: lanes only need distinct numbers, and nothing is published
   * through the counter.  Sequence ids run 2 .. 2^32 - 1 (0 is invalid,
   * 1 is the writer's), then start over. */
  uint64_t n = atomic_fetch_add_explicit(&w->next_seq, 1, memory_order_relaxed);
  t->seq = WRITER_SEQ + 1 + (uint32_t)(n % (UINT32_MAX - WRITER_SEQ));
  t->clock = ts;
  tr_pb pb;
  tr_pb_init(&pb, t->seq_fields, sizeof(t->seq_fields));
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, t->seq);
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_FLAGS,
             TR_PF_SEQ_NEEDS_INCREMENTAL_STATE);
  t->seq_fields_len = (uint8_t)pb.len;
  size_t m;
  if (!describe(s, true, tid, NULL, 0) ||
      !packet_begin(w, lane_of(s), 2 * PACKET_OVERHEAD, &pb, &m)) {
    free(t);
    return NULL;
  }
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, t->seq);
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_FLAGS,
             TR_PF_SEQ_INCREMENTAL_STATE_CLEARED);
  size_t d = tr_pb_begin(&pb, TR_PF_PACKET_DEFAULTS);
  tr_pb_uint(&pb, TR_PF_DEFAULTS_CLOCK_ID, SEQ_CLOCK);
  size_t te = tr_pb_begin(&pb, TR_PF_DEFAULTS_TRACK_EVENT);
  tr_pb_uint(&pb, TR_PF_TE_DEFAULTS_TRACK_UUID, tr_pf_thread_uuid(s->pid, tid));
  tr_pb_end(&pb, te);
  tr_pb_end(&pb, d);
  size_t in = tr_pb_begin(&pb, TR_PF_PACKET_INTERNED_DATA);
  for (unsigned c = 0; c < TR_CAT_COUNT; c++) {
    size_t e = tr_pb_begin(&pb, TR_PF_INTERNED_EVENT_CATEGORIES);
    tr_pb_uint(&pb, TR_PF_INTERNED_IID, c + 1);
    tr_pb_bytes(&pb, TR_PF_INTERNED_NAME, cat_names[c], strlen(cat_names[c]));
    tr_pb_end(&pb, e);
  }
  tr_pb_end(&pb, in);
  size_t cs = tr_pb_begin(&pb, TR_PF_PACKET_CLOCK_SNAPSHOT);
  put_snapshot_clock(&pb, SEQ_CLOCK, ts, true);
  put_snapshot_clock(&pb, TR_PF_BUILTIN_CLOCK_MONOTONIC, ts, false);
  tr_pb_end(&pb, cs);
  /* Out of memory the thread is forgotten: its next event starts another
   * sequence, which is still a correct trace. */
  if (!packet_end(lane_of(s), &pb, m, false) ||
      tr_map_set(&ps->m, KEY_THREAD | tid, (uint64_t)(uintptr_t)t) < 0) {
    free(t);
    return NULL;
  }
  return t;
}

/* A packet's timestamp and sequence fields.  A timestamp is a delta on the
 * thread's clock; one earlier than the thread's previous (only a broken
 * producer writes that) is written absolute, in CLOCK_MONOTONIC, and
 * leaves the delta chain alone. */
static void put_head(tr_pb *pb, pf_thread *t, uint64_t ts) {
  if (ts >= t->clock) {
    tr_pb_uint(pb, TR_PF_PACKET_TIMESTAMP, ts - t->clock);
    t->clock = ts;
  } else {
    tr_pb_uint(pb, TR_PF_PACKET_TIMESTAMP, ts);
    tr_pb_uint(pb, TR_PF_PACKET_TIMESTAMP_CLOCK_ID,
               TR_PF_BUILTIN_CLOCK_MONOTONIC);
  }
  tr_pb_raw(pb, t->seq_fields, t->seq_fields_len);
}

/* Interned-name iids are the process's string ids (4-aligned offsets)
 * divided by 4, plus 1: small varints, never 0. */
static uint64_t name_iid(uint32_t id) { return (uint64_t)(id >> 2) + 1; }

/* Resolves name `id` when thread t's sequence has not interned it yet:
 * *raw is then set (else NULL).  Returns false for an id that names no
 * string. */
static bool name_needed(tr_wstream *s, const pf_thread *t, uint32_t id,
                        const char **raw, uint32_t *len) {
  *raw = NULL;
  *len = 0;
  if (t != NULL && tr_map_get(&t->names, id) != NULL) return true;
  if (!s->name(s->name_ctx, id, raw, len)) return false;
  if (*len > TR_STRING_MAX_LEN) *len = TR_STRING_MAX_LEN;
  return true;
}

/* Room the debug annotations of these arguments can take. */
static size_t args_need(const tr_arg *args, uint32_t nargs) {
  size_t need = 0;
  for (uint32_t i = 0; i < nargs; i++) {
    need += 24 + TR_UTF8_SANITIZED_MAX(args[i].klen);
    if (args[i].type == TR_ARG_STR)
      need += TR_UTF8_SANITIZED_MAX(args[i].v.s.len);
  }
  return need;
}

static void put_annotations(tr_pb *pb, const tr_arg *args, uint32_t nargs) {
  for (uint32_t i = 0; i < nargs; i++) {
    const tr_arg *a = &args[i];
    size_t m = tr_pb_begin(pb, TR_PF_TE_DEBUG_ANNOTATIONS);
    tr_pb_utf8(pb, TR_PF_DA_NAME, a->key, a->klen);
    switch (a->type) {
      case TR_ARG_STR:
        tr_pb_utf8(pb, TR_PF_DA_STRING, a->v.s.ptr, a->v.s.len);
        break;
      case TR_ARG_INT:
        tr_pb_int(pb, TR_PF_DA_INT, a->v.i);
        break;
      case TR_ARG_UINT:
        tr_pb_uint(pb, TR_PF_DA_UINT, a->v.u);
        break;
      case TR_ARG_DOUBLE:
        tr_pb_double(pb, TR_PF_DA_DOUBLE, a->v.d);
        break;
      case TR_ARG_BOOL:
        tr_pb_bool(pb, TR_PF_DA_BOOL, a->v.b);
        break;
      default:
        break; /* a type this writer does not know: the name alone */
    }
    tr_pb_end(pb, m);
  }
}

/* A track event on thread tid's track: BEGIN and INSTANT carry a category
 * and a name (interned, or `literal`), END neither. */
static int thread_event(tr_wstream *s, uint32_t tid, int type, int cat,
                        uint32_t id, const char *literal, uint64_t ts,
                        bool unfinished, const tr_arg *args, uint32_t nargs,
                        bool counted) {
  tr_pftrace *w = (tr_pftrace *)s->w;
  pf_stream *ps = s->impl;
  pf_thread *t = thread_of(ps, tid);
  const char *raw = NULL;
  uint32_t rlen = 0;
  bool named = type != TR_PF_TYPE_SLICE_END;
  if (named && literal == NULL && !name_needed(s, t, id, &raw, &rlen))
    return -EINVAL;
  size_t need = PACKET_OVERHEAD + TR_UTF8_SANITIZED_MAX(rlen) +
                args_need(args, nargs) + (literal ? sizeof(lost_name) : 0);
  tr_pb pb;
  size_t m;
  if (tr_writer_full(s->w)) {
    if (counted) dropped(lane_of(s));
    return 0;
  }
  if (t == NULL) t = thread_ready(s, tid, ts);
  if (t == NULL || !packet_begin(w, lane_of(s), need, &pb, &m)) {
    if (counted) dropped(lane_of(s));
    return 0;
  }
  uint64_t clock = t->clock;
  put_head(&pb, t, ts);
  if (raw != NULL) {
    size_t in = tr_pb_begin(&pb, TR_PF_PACKET_INTERNED_DATA);
    size_t e = tr_pb_begin(&pb, TR_PF_INTERNED_EVENT_NAMES);
    tr_pb_uint(&pb, TR_PF_INTERNED_IID, name_iid(id));
    tr_pb_utf8(&pb, TR_PF_INTERNED_NAME, raw, rlen);
    tr_pb_end(&pb, e);
    tr_pb_end(&pb, in);
  }
  size_t te = tr_pb_begin(&pb, TR_PF_PACKET_TRACK_EVENT);
  tr_pb_uint(&pb, TR_PF_TE_TYPE, (uint64_t)type);
  if (named) {
    tr_pb_uint(&pb, TR_PF_TE_CATEGORY_IIDS, ((unsigned)cat % TR_CAT_COUNT) + 1);
    if (literal != NULL)
      tr_pb_bytes(&pb, TR_PF_TE_NAME, literal, strlen(literal));
    else
      tr_pb_uint(&pb, TR_PF_TE_NAME_IID, name_iid(id));
  }
  if (unfinished) {
    size_t a = tr_pb_begin(&pb, TR_PF_TE_DEBUG_ANNOTATIONS);
    tr_pb_bytes(&pb, TR_PF_DA_NAME, "unfinished", 10);
    tr_pb_bool(&pb, TR_PF_DA_BOOL, true);
    tr_pb_end(&pb, a);
  }
  put_annotations(&pb, args, nargs);
  tr_pb_end(&pb, te);
  if (!packet_end(lane_of(s), &pb, m, counted)) {
    t->clock = clock; /* the packet was not kept: nor was its delta */
    if (counted) dropped(lane_of(s));
    return 0;
  }
  /* A slice's begin is no counted event, but is one's bytes all the
   * same: past the size bound its chunk is left out (sink.c). */
  lane_of(s)->c->eventful = true;
  /* Out of memory, the name is not remembered and is interned again. */
  if (raw != NULL) tr_map_set(&t->names, id, 0);
  return 0;
}

/* ---- the backend -------------------------------------------------------- */

/* A stream opens when its process joins the session: describing the
 * process track now puts the processes in the file in the order they
 * joined, JSON's process_sort_index order, which `traced report` follows
 * (a Perfetto trace has no sort index).  A failed write is retried before
 * the process's first event. */
static int pf_stream_open(tr_wstream *s) {
  s->impl = calloc(1, sizeof(pf_stream));
  if (s->impl == NULL) return -ENOMEM;
  describe(s, false, 0, NULL, 0);
  return 0;
}

static void pf_stream_close(tr_wstream *s) {
  pf_stream *ps = s->impl;
  size_t it = 0;
  uint64_t key, value;
  while (tr_map_next(&ps->m, &it, &key, &value)) {
    if ((key & KEY_COUNTER) != KEY_THREAD) continue;
    pf_thread *t = (pf_thread *)(uintptr_t)value;
    tr_map_free(&t->names);
    free(t);
  }
  tr_map_free(&ps->m);
  free(ps);
}

static int pf_enter(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                    uint64_t ts) {
  return thread_event(s, tid, TR_PF_TYPE_SLICE_BEGIN, cat, name, NULL, ts,
                      false, NULL, 0, false);
}

/* The BEGIN was written by pf_enter when the call entered; its arguments
 * go on the END, which Perfetto merges into the slice. */
static int pf_slice(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                    uint64_t ts, uint64_t dur, bool unfinished,
                    const tr_arg *args, uint32_t nargs) {
  return thread_event(s, tid, TR_PF_TYPE_SLICE_END, cat, name, NULL, ts + dur,
                      unfinished, args, nargs, true);
}

static int pf_instant(tr_wstream *s, uint32_t tid, int cat, uint32_t name,
                      uint64_t ts, const tr_arg *args, uint32_t nargs) {
  return thread_event(s, tid, TR_PF_TYPE_INSTANT, cat, name, NULL, ts, false,
                      args, nargs, true);
}

static void pf_lost(tr_wstream *s, uint32_t tid, uint64_t ts, uint64_t count) {
  tr_arg a = {.key = "count", .klen = 5, .type = TR_ARG_UINT, .v.u = count};
  thread_event(s, tid, TR_PF_TYPE_INSTANT, TR_CAT_TRACED, 0, lost_name, ts,
               false, &a, 1, true);
}

/* Counters live on counter tracks under the process track, one per
 * process and name, or per name and series (described once per stream,
 * `key` in the stream's map); their values are written on the recording
 * thread's sequence.  Returns the track's uuid, or 0 when its descriptor
 * could not be written (the event is then dropped). */
static uint64_t counter_track(tr_wstream *s, uint64_t key, const char *raw,
                              uint32_t len) {
  tr_pftrace *w = (tr_pftrace *)s->w;
  pf_stream *ps = s->impl;
  const uint64_t *known = tr_map_get(&ps->m, key);
  if (known != NULL) return *known;
  uint64_t uuid = tr_pf_counter_uuid(s->pid, raw, len);
  tr_pb pb;
  size_t m;
  /* The process track first: the counter's parent. */
  if (!ps->described && !describe(s, false, 0, NULL, 0)) return 0;
  if (!packet_begin(w, lane_of(s), PACKET_OVERHEAD + TR_UTF8_SANITIZED_MAX(len),
                    &pb, &m))
    return 0;
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
  size_t td = tr_pb_begin(&pb, TR_PF_PACKET_TRACK_DESCRIPTOR);
  tr_pb_uint(&pb, TR_PF_TD_UUID, uuid);
  tr_pb_uint(&pb, TR_PF_TD_PARENT_UUID, tr_pf_process_uuid(s->pid));
  tr_pb_utf8(&pb, TR_PF_TD_NAME, raw, len);
  size_t cd = tr_pb_begin(&pb, TR_PF_TD_COUNTER);
  tr_pb_end(&pb, cd);
  tr_pb_end(&pb, td);
  if (!packet_end(lane_of(s), &pb, m, false)) return 0;
  tr_map_set(&ps->m, key, uuid); /* out of memory: described again */
  return uuid;
}

static void counter_value(tr_wstream *s, uint32_t tid, uint64_t ts,
                          uint64_t uuid, double value) {
  tr_pftrace *w = (tr_pftrace *)s->w;
  tr_pb pb;
  size_t m;
  pf_thread *t = tr_writer_full(s->w) ? NULL : thread_ready(s, tid, ts);
  if (t == NULL || !packet_begin(w, lane_of(s), PACKET_OVERHEAD, &pb, &m)) {
    dropped(lane_of(s));
    return;
  }
  uint64_t clock = t->clock;
  put_head(&pb, t, ts);
  size_t te = tr_pb_begin(&pb, TR_PF_PACKET_TRACK_EVENT);
  tr_pb_uint(&pb, TR_PF_TE_TYPE, TR_PF_TYPE_COUNTER);
  tr_pb_uint(&pb, TR_PF_TE_TRACK_UUID, uuid); /* not the thread's: its own */
  tr_pb_double(&pb, TR_PF_TE_DOUBLE_COUNTER_VALUE, value);
  tr_pb_end(&pb, te);
  if (!packet_end(lane_of(s), &pb, m, true)) {
    t->clock = clock;
    dropped(lane_of(s));
  }
}

/* Series keys: the counter namespace with bit 61 set (a plain counter's
 * key is its name id, below 2^32), then a hash of (name id, series key). */
static uint64_t series_key(uint32_t name, const char *key, uint32_t klen) {
  uint64_t h = 1469598103934665603ull ^ name;
  h *= 1099511628211ull;
  for (uint32_t i = 0; i < klen; i++) {
    h ^= (uint8_t)key[i];
    h *= 1099511628211ull;
  }
  return KEY_COUNTER | (1ull << 61) | (h & ((1ull << 61) - 1));
}

/* A numeric argument's value as a counter value; false for a string. */
static bool arg_number(const tr_arg *a, double *v) {
  switch (a->type) {
    case TR_ARG_INT:
      *v = (double)a->v.i;
      return true;
    case TR_ARG_UINT:
      *v = (double)a->v.u;
      return true;
    case TR_ARG_DOUBLE:
      *v = a->v.d;
      return true;
    case TR_ARG_BOOL:
      *v = a->v.b ? 1.0 : 0.0;
      return true;
    default:
      return false;
  }
}

static int pf_counter(tr_wstream *s, uint32_t tid, uint32_t name, uint64_t ts,
                      double value, const tr_arg *args, uint32_t nargs) {
  pf_stream *ps = s->impl;
  const char *raw;
  uint32_t len;
  /* A single series named "value" is what JSON writes for a plain counter:
   * the same track, so the formats agree. */
  if (nargs == 1 && args[0].klen == 5 && memcmp(args[0].key, "value", 5) == 0 &&
      arg_number(&args[0], &value))
    nargs = 0;
  if (nargs == 0) {
    const uint64_t *known = tr_map_get(&ps->m, KEY_COUNTER | name);
    uint64_t uuid;
    if (known != NULL) {
      uuid = *known;
    } else {
      if (!s->name(s->name_ctx, name, &raw, &len)) return -EINVAL;
      if (len > TR_STRING_MAX_LEN) len = TR_STRING_MAX_LEN;
      uuid = counter_track(s, KEY_COUNTER | name, raw, len);
    }
    if (uuid == 0)
      dropped(lane_of(s));
    else
      counter_value(s, tid, ts, uuid, value);
    return 0;
  }
  if (!s->name(s->name_ctx, name, &raw, &len)) return -EINVAL;
  if (len > TR_STRING_MAX_LEN) len = TR_STRING_MAX_LEN;
  /* One track per numeric series, "<name> <key>". */
  for (uint32_t i = 0; i < nargs; i++) {
    const tr_arg *a = &args[i];
    double v;
    if (!arg_number(a, &v)) continue; /* a string is no counter value */
    uint64_t key = series_key(name, a->key, a->klen);
    const uint64_t *known = tr_map_get(&ps->m, key);
    uint64_t uuid;
    if (known != NULL) {
      uuid = *known;
    } else {
      char buf[TR_STRING_MAX_LEN + 1 + 256];
      uint32_t kl = a->klen < 256 ? a->klen : 256;
      memcpy(buf, raw, len);
      buf[len] = ' ';
      memcpy(buf + len + 1, a->key, kl);
      uuid = counter_track(s, key, buf, len + 1 + kl);
    }
    if (uuid == 0)
      dropped(lane_of(s));
    else
      counter_value(s, tid, ts, uuid, v);
  }
  return 0;
}

/* Names are final only when recording ends: the descriptor is emitted
 * again with the same uuid and the name.  Perfetto keeps a track's first
 * descriptor for its identity (pid, tid, parent) and takes the process or
 * thread name from the latest one (trace_processor's
 * TrackEventParser::ParseTrackDescriptor). */
static void pf_process_name(tr_wstream *s, const char *name, size_t len,
                            uint64_t dropped) {
  (void)dropped; /* in the lost-event markers and the summary */
  describe(s, false, 0, name, len);
}

static void pf_thread_name(tr_wstream *s, uint32_t tid, const char *name,
                           size_t len, uint64_t dropped) {
  (void)dropped;
  describe(s, true, tid, name, len);
}

/* A Perfetto trace has no place for JSON's process_sort_index (the UI
 * orders processes itself) or process_labels; the drop counts they carry
 * are in the lost-event markers and the session summary. */
static void pf_sort_index(tr_wstream *s, uint32_t index) {
  (void)s;
  (void)index;
}

static void pf_labels(tr_wstream *s, const char *labels, size_t len) {
  (void)s;
  (void)labels;
  (void)len;
}

/* The uuid of the track that marks a trace cut short: low bits 00, which
 * no process, thread or counter track has. */
#define CUT_TRACK_UUID 4u

/* On the I/O thread, at the end: a trace cut short (size bound, failed
 * write) gets a track saying so, holding one instant event at the moment
 * it was cut; other traces need no footer. */
static int pf_io_end(tr_writer *w) {
  char note[256];
  uint64_t ts = 0;
  size_t n = tr_writer_cut_note(w, note, sizeof(note), &ts);
  if (n == 0) return 0;
  uint8_t buf[TR_WRITER_END_RESERVE];
  tr_pb pb;
  tr_pb_init(&pb, buf, sizeof(buf));
  size_t m = tr_pb_begin(&pb, TR_PF_TRACE_PACKET);
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
  size_t td = tr_pb_begin(&pb, TR_PF_PACKET_TRACK_DESCRIPTOR);
  tr_pb_uint(&pb, TR_PF_TD_UUID, CUT_TRACK_UUID);
  tr_pb_bytes(&pb, TR_PF_TD_NAME, "traced", 6);
  tr_pb_end(&pb, td);
  tr_pb_end(&pb, m);
  m = tr_pb_begin(&pb, TR_PF_TRACE_PACKET);
  tr_pb_uint(&pb, TR_PF_PACKET_SEQUENCE_ID, WRITER_SEQ);
  tr_pb_uint(&pb, TR_PF_PACKET_TIMESTAMP, ts);
  tr_pb_uint(&pb, TR_PF_PACKET_TIMESTAMP_CLOCK_ID,
             TR_PF_BUILTIN_CLOCK_MONOTONIC);
  size_t te = tr_pb_begin(&pb, TR_PF_PACKET_TRACK_EVENT);
  tr_pb_uint(&pb, TR_PF_TE_TYPE, TR_PF_TYPE_INSTANT);
  tr_pb_uint(&pb, TR_PF_TE_TRACK_UUID, CUT_TRACK_UUID);
  tr_pb_bytes(&pb, TR_PF_TE_NAME, note, n);
  tr_pb_end(&pb, te);
  tr_pb_end(&pb, m);
  if (pb.overflow) return -EOVERFLOW;
  return tr_writer_write_all(w, buf, pb.len);
}

static void pf_free(tr_writer *w) { free(w); }

static const tr_writer_ops pf_ops = {
    .stream_open = pf_stream_open,
    .stream_close = pf_stream_close,
    .enter = pf_enter,
    .slice = pf_slice,
    .instant = pf_instant,
    .counter = pf_counter,
    .lost = pf_lost,
    .process_name = pf_process_name,
    .thread_name = pf_thread_name,
    .sort_index = pf_sort_index,
    .labels = pf_labels,
    .seal = NULL,
    .io_chunk = NULL,    /* packets as they are */
    .io_end = pf_io_end, /* only a trace cut short has one */
    .free = pf_free,
};

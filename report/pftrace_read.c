/* pftrace_read.c: a streaming decoder of Perfetto protobuf traces into
 * trace events: packets one at a time, interned names, defaults and clocks
 * per sequence, timestamps converted to the trace's clock, track
 * descriptors resolved to processes and threads. */
#include "pftrace_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/intern.h"
#include "common/map.h"
#include "output/pftrace_fields.h"
#include "pbread.h"
#include "pftrace_clock.h"

#define IN_BUF_SIZE (256u * 1024u)
#define QUEUE_MAX 4
/* Track parents followed to find an event's process and thread. */
#define PARENT_DEPTH 8
#define LOST_NAME "traced: events lost (ring full)"

/* ---- state --------------------------------------------------------------- */

/* One packet sequence's incremental state. */
typedef struct seq {
  uint32_t id;
  /* Set by previous_packet_dropped until the state is cleared again:
   * packets that need incremental state are skipped meanwhile. */
  bool lost_state;
  tr_intern names; /* the event names interned on it */
  tr_map iids;     /* event name iid -> id in names */
  /* Interned debug annotation names the reader cares about. */
  uint64_t iid_unfinished, iid_count;
  bool has_default_track;
  uint64_t default_track;
  uint32_t default_clock; /* TracePacketDefaults.timestamp_clock_id, or 0 */
  tr_pfclock_seqs clocks; /* survive a reset of incremental state */
} seq;

enum { TRACK_OTHER = 0, TRACK_PROCESS = 1, TRACK_THREAD = 2 };

typedef struct track {
  uint64_t uuid, parent;
  bool has_parent;
  int kind;
  int64_t pid, tid;
} track;

struct tr_pftrace {
  tr_pftrace_read_fn read;
  void *ctx;
  uint8_t *in;
  size_t pos, len;
  bool eof;
  uint64_t offset; /* input bytes consumed before in[0] */
  uint8_t *pkt;
  size_t pcap;
  uint64_t packets;
  bool cut_short, done;
  uint64_t skipped;
  char err[256];

  seq *seqs;
  uint32_t nseqs, capseqs;
  tr_map seqmap; /* sequence id -> index in seqs */
  track *tracks;
  uint32_t ntracks, captracks;
  tr_map trackmap; /* uuid -> index in tracks */
  tr_pfclock clock;

  tr_trace_event queue[QUEUE_MAX];
  unsigned qhead, qlen;
  char namebuf[64]; /* a name for an iid that was never interned */
};

int tr_pftrace_new(tr_pftrace **out, tr_pftrace_read_fn read, void *ctx) {
  tr_pftrace *p = calloc(1, sizeof(*p));
  if (p == NULL) return -ENOMEM;
  p->read = read;
  p->ctx = ctx;
  tr_pfclock_init(&p->clock);
  p->in = malloc(IN_BUF_SIZE);
  if (p->in == NULL) {
    free(p);
    return -ENOMEM;
  }
  *out = p;
  return 0;
}

static void seq_defaults_clear(seq *s) {
  s->has_default_track = false;
  s->default_track = 0;
  s->default_clock = 0;
}

static void seq_clear(seq *s) {
  tr_intern_clear(&s->names);
  tr_map_clear(&s->iids);
  s->iid_unfinished = s->iid_count = 0;
  seq_defaults_clear(s);
  s->lost_state = false;
}

void tr_pftrace_free(tr_pftrace *p) {
  if (p == NULL) return;
  for (uint32_t i = 0; i < p->nseqs; i++) {
    tr_intern_free(&p->seqs[i].names);
    tr_map_free(&p->seqs[i].iids);
    tr_pfclock_seqs_free(&p->seqs[i].clocks);
  }
  free(p->seqs);
  tr_map_free(&p->seqmap);
  free(p->tracks);
  tr_map_free(&p->trackmap);
  free(p->in);
  free(p->pkt);
  free(p);
}

const char *tr_pftrace_error(const tr_pftrace *p) { return p->err; }
bool tr_pftrace_cut_short(const tr_pftrace *p) { return p->cut_short; }
uint64_t tr_pftrace_skipped(const tr_pftrace *p) { return p->skipped; }

/* ---- input --------------------------------------------------------------- */

/* Makes in[pos] readable: 1, 0 at the end, or a negative errno. */
static int fill(tr_pftrace *p) {
  if (p->pos < p->len) return 1;
  if (p->eof) return 0;
  p->offset += p->len;
  p->pos = p->len = 0;
  for (;;) {
    ssize_t n = p->read(p->ctx, p->in, IN_BUF_SIZE);
    if (n > 0) {
      p->len = (size_t)n;
      return 1;
    }
    if (n == 0) {
      p->eof = true;
      return 0;
    }
    if (n == -EINTR) continue;
    snprintf(p->err, sizeof(p->err), "reading failed at byte %llu: %s",
             (unsigned long long)p->offset, strerror((int)-n));
    return (int)n;
  }
}

/* Reads a varint from the stream: 1, 0 at the end before its first byte,
 * -ENODATA at the end inside it, -EBADMSG for more than 10 bytes. */
static int in_varint(tr_pftrace *p, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < 10; i++) {
    int rc = fill(p);
    if (rc < 0) return rc;
    if (rc == 0) return i == 0 ? 0 : -ENODATA;
    uint8_t b = p->in[p->pos++];
    *v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) return 1;
  }
  snprintf(p->err, sizeof(p->err), "byte %llu: a varint longer than 10 bytes",
           (unsigned long long)(p->offset + p->pos));
  return -EBADMSG;
}

/* Reads n bytes into dst (NULL: discards them).  0 or -ENODATA. */
static int in_bytes(tr_pftrace *p, uint8_t *dst, uint64_t n) {
  while (n > 0) {
    int rc = fill(p);
    if (rc < 0) return rc;
    if (rc == 0) return -ENODATA;
    size_t k = p->len - p->pos;
    if (k > n) k = (size_t)n;
    if (dst != NULL) {
      memcpy(dst, p->in + p->pos, k);
      dst += k;
    }
    p->pos += k;
    n -= k;
  }
  return 0;
}

/* ---- sequences and tracks ------------------------------------------------ */

static seq *seq_get(tr_pftrace *p, uint32_t id) {
  const uint64_t *i = tr_map_get(&p->seqmap, id);
  if (i != NULL) return &p->seqs[*i];
  if (p->nseqs == p->capseqs) {
    uint32_t cap = p->capseqs ? p->capseqs * 2 : 8;
    seq *s = realloc(p->seqs, cap * sizeof(*s));
    if (s == NULL) return NULL;
    p->seqs = s;
    p->capseqs = cap;
  }
  if (tr_map_set(&p->seqmap, id, p->nseqs) < 0) return NULL;
  seq *s = &p->seqs[p->nseqs++];
  memset(s, 0, sizeof(*s));
  s->id = id;
  return s;
}

static int seq_add_name(seq *s, uint64_t iid, const uint8_t *name, size_t n) {
  if (n > UINT32_MAX) n = UINT32_MAX;
  int64_t id = tr_intern_add(&s->names, name, n);
  return id < 0 ? (int)id : tr_map_set(&s->iids, iid, (uint64_t)id);
}

static track *track_get(tr_pftrace *p, uint64_t uuid, bool create) {
  const uint64_t *i = tr_map_get(&p->trackmap, uuid);
  if (i != NULL) return &p->tracks[*i];
  if (!create) return NULL;
  if (p->ntracks == p->captracks) {
    uint32_t cap = p->captracks ? p->captracks * 2 : 16;
    track *t = realloc(p->tracks, cap * sizeof(*t));
    if (t == NULL) return NULL;
    p->tracks = t;
    p->captracks = cap;
  }
  if (tr_map_set(&p->trackmap, uuid, p->ntracks) < 0) return NULL;
  track *t = &p->tracks[p->ntracks++];
  memset(t, 0, sizeof(*t));
  t->uuid = uuid;
  return t;
}

/* The process and thread an event on track `uuid` belongs to.  Slices on a
 * track that is not a thread's keep their own nesting: they get a thread
 * id of their own (negative, derived from the track). */
static void resolve(tr_pftrace *p, uint64_t uuid, bool slice, int64_t *pid,
                    int64_t *tid) {
  int64_t own = -1 - (int64_t)(uuid >> 1);
  *pid = 0;
  *tid = own;
  const track *t = track_get(p, uuid, false);
  for (int d = 0; t != NULL && d < PARENT_DEPTH; d++) {
    if (t->kind == TRACK_THREAD) {
      *pid = t->pid;
      if (d == 0 || !slice) *tid = t->tid;
      return;
    }
    if (t->kind == TRACK_PROCESS) {
      *pid = t->pid;
      if (d == 0 || !slice) *tid = 0;
      return;
    }
    if (!t->has_parent) return;
    t = track_get(p, t->parent, false);
  }
}

/* ---- packets ------------------------------------------------------------- */

static tr_trace_event *enqueue(tr_pftrace *p) {
  tr_trace_event *e = &p->queue[(p->qhead + p->qlen++) % QUEUE_MAX];
  memset(e, 0, sizeof(*e));
  return e;
}

static bool bytes_eq(const uint8_t *d, size_t n, const char *lit) {
  return n == strlen(lit) && memcmp(d, lit, n) == 0;
}

static int on_interned(seq *s, tr_pbr b) {
  tr_pbr_field f;
  int rc;
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    bool event_name = f.num == TR_PF_INTERNED_EVENT_NAMES;
    if ((!event_name && f.num != TR_PF_INTERNED_DEBUG_ANNOTATION_NAMES) ||
        f.wt != TR_PB_LEN)
      continue;
    tr_pbr e = tr_pbr_sub(&f);
    tr_pbr_field g;
    uint64_t iid = 0;
    const uint8_t *name = NULL;
    size_t nlen = 0;
    int r2;
    while ((r2 = tr_pbr_next(&e, &g)) > 0) {
      if (g.num == TR_PF_INTERNED_IID && g.wt == TR_PB_VARINT) iid = g.v;
      if (g.num == TR_PF_INTERNED_NAME && g.wt == TR_PB_LEN) {
        name = g.data;
        nlen = g.len;
      }
    }
    if (r2 < 0) return -1;
    if (name == NULL) continue;
    if (event_name) {
      if (seq_add_name(s, iid, name, nlen) < 0) return -ENOMEM;
    } else if (bytes_eq(name, nlen, "unfinished")) {
      s->iid_unfinished = iid;
    } else if (bytes_eq(name, nlen, "count")) {
      s->iid_count = iid;
    }
  }
  return rc < 0 ? -1 : 0;
}

/* TracePacketDefaults replace the sequence's defaults whole. */
static int on_defaults(seq *s, tr_pbr b) {
  tr_pbr_field f;
  int rc;
  seq_defaults_clear(s);
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    if (f.num == TR_PF_DEFAULTS_CLOCK_ID && f.wt == TR_PB_VARINT)
      s->default_clock = (uint32_t)f.v;
    if (f.num != TR_PF_DEFAULTS_TRACK_EVENT || f.wt != TR_PB_LEN) continue;
    tr_pbr d = tr_pbr_sub(&f);
    tr_pbr_field g;
    int r2;
    while ((r2 = tr_pbr_next(&d, &g)) > 0)
      if (g.num == TR_PF_TE_DEFAULTS_TRACK_UUID && g.wt == TR_PB_VARINT) {
        s->has_default_track = true;
        s->default_track = g.v;
      }
    if (r2 < 0) return -1;
  }
  return rc < 0 ? -1 : 0;
}

/* A ProcessDescriptor or ThreadDescriptor: pid, tid and the name field. */
_Static_assert(TR_PF_PROCESS_PID == TR_PF_THREAD_PID,
               "both descriptors hold the pid in one field");
static int descriptor(tr_pbr b, uint32_t name_field, int64_t *pid, int64_t *tid,
                      const uint8_t **name, size_t *nlen) {
  tr_pbr_field f;
  int rc;
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    if (f.num == TR_PF_THREAD_PID && f.wt == TR_PB_VARINT) *pid = (int32_t)f.v;
    if (f.num == TR_PF_THREAD_TID && f.wt == TR_PB_VARINT && tid != NULL)
      *tid = (int32_t)f.v;
    if (f.num == name_field && f.wt == TR_PB_LEN) {
      *name = f.data;
      *nlen = f.len;
    }
  }
  return rc < 0 ? -1 : 0;
}

static int on_track_descriptor(tr_pftrace *p, tr_pbr b) {
  tr_pbr_field f;
  int rc;
  uint64_t uuid = 0, parent = 0;
  bool has_parent = false;
  tr_pbr_field proc = {0}, thr = {0};
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    if (f.num == TR_PF_TD_UUID && f.wt == TR_PB_VARINT) uuid = f.v;
    if (f.num == TR_PF_TD_PARENT_UUID && f.wt == TR_PB_VARINT) {
      parent = f.v;
      has_parent = true;
    }
    if (f.num == TR_PF_TD_PROCESS && f.wt == TR_PB_LEN) proc = f;
    if (f.num == TR_PF_TD_THREAD && f.wt == TR_PB_LEN) thr = f;
  }
  if (rc < 0) return -1;
  track *t = track_get(p, uuid, true);
  if (t == NULL) return -ENOMEM;
  t->parent = parent;
  t->has_parent = has_parent;
  const uint8_t *name = NULL;
  size_t nlen = 0;
  if (thr.data != NULL) {
    int64_t pid = 0, tid = 0;
    if (descriptor(tr_pbr_sub(&thr), TR_PF_THREAD_NAME, &pid, &tid, &name,
                   &nlen) < 0)
      return -1;
    t->kind = TRACK_THREAD;
    t->pid = pid;
    t->tid = tid;
    /* A descriptor without a name (traced writes one before a track's
     * first event and the named one when its recording ends) names
     * nothing, and the last name given wins, as in trace_processor; its
     * process is known from here on. */
    tr_trace_event *e = enqueue(p);
    e->pid = pid;
    if (name != NULL) {
      e->kind = TR_EV_THREAD_NAME;
      e->tid = tid;
      e->name = (const char *)name;
      e->name_len = nlen;
    } else {
      e->kind = TR_EV_META;
    }
  } else if (proc.data != NULL) {
    int64_t pid = 0;
    if (descriptor(tr_pbr_sub(&proc), TR_PF_PROCESS_NAME, &pid, NULL, &name,
                   &nlen) < 0)
      return -1;
    t->kind = TRACK_PROCESS;
    t->pid = pid;
    t->tid = 0;
    /* Processes are reported in the order their tracks are described
     * (a Perfetto trace has no process_sort_index). */
    tr_trace_event *e = enqueue(p);
    e->pid = pid;
    if (name != NULL) {
      e->kind = TR_EV_PROCESS_NAME;
      e->name = (const char *)name;
      e->name_len = nlen;
    } else {
      e->kind = TR_EV_META;
    }
  } else {
    t->kind = TRACK_OTHER;
  }
  return 0;
}

static int on_track_event(tr_pftrace *p, seq *s, tr_pbr b, bool has_ts,
                          int64_t ts) {
  tr_pbr_field f;
  int rc;
  uint64_t type = 0, name_iid = 0, uuid = 0, count = 0;
  bool has_uuid = false, has_iid = false, unfinished = false;
  const uint8_t *name = NULL;
  size_t nlen = 0;
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    switch (f.num) {
      case TR_PF_TE_TYPE:
        if (f.wt == TR_PB_VARINT) type = f.v;
        break;
      case TR_PF_TE_NAME_IID:
        if (f.wt == TR_PB_VARINT) {
          name_iid = f.v;
          has_iid = true;
        }
        break;
      case TR_PF_TE_TRACK_UUID:
        if (f.wt == TR_PB_VARINT) {
          uuid = f.v;
          has_uuid = true;
        }
        break;
      case TR_PF_TE_NAME:
        if (f.wt == TR_PB_LEN) {
          name = f.data;
          nlen = f.len;
        }
        break;
      case TR_PF_TE_DEBUG_ANNOTATIONS: {
        if (f.wt != TR_PB_LEN) break;
        tr_pbr a = tr_pbr_sub(&f);
        tr_pbr_field g;
        int r2;
        bool is_unf = false, is_count = false;
        uint64_t val = 0;
        while ((r2 = tr_pbr_next(&a, &g)) > 0) {
          if (g.num == TR_PF_DA_NAME_IID && g.wt == TR_PB_VARINT) {
            is_unf = s->iid_unfinished != 0 && g.v == s->iid_unfinished;
            is_count = s->iid_count != 0 && g.v == s->iid_count;
          }
          if (g.num == TR_PF_DA_NAME && g.wt == TR_PB_LEN) {
            is_unf = bytes_eq(g.data, g.len, "unfinished");
            is_count = bytes_eq(g.data, g.len, "count");
          }
          if ((g.num == TR_PF_DA_BOOL || g.num == TR_PF_DA_UINT ||
               g.num == TR_PF_DA_INT) &&
              g.wt == TR_PB_VARINT)
            val = g.v;
        }
        if (r2 < 0) return -1;
        if (is_unf && val) unfinished = true;
        if (is_count) count = val;
        break;
      }
      default:
        break;
    }
  }
  if (rc < 0) return -1;
  if (!has_ts) {
    p->skipped++;
    return 0;
  }
  if (!has_uuid && s->has_default_track) {
    uuid = s->default_track;
    has_uuid = true;
  }
  tr_trace_event *e = enqueue(p);
  e->has_ts = true;
  e->ts_ns = ts;
  e->unfinished = unfinished;
  switch (type) {
    case TR_PF_TYPE_SLICE_BEGIN:
      e->kind = TR_EV_BEGIN;
      break;
    case TR_PF_TYPE_SLICE_END:
      e->kind = TR_EV_END;
      break;
    case TR_PF_TYPE_INSTANT:
      e->kind = TR_EV_INSTANT;
      break;
    case TR_PF_TYPE_COUNTER:
      e->kind = TR_EV_COUNTER;
      break;
    default:
      e->kind = TR_EV_OTHER;
  }
  bool slice = e->kind == TR_EV_BEGIN || e->kind == TR_EV_END;
  resolve(p, uuid, slice, &e->pid, &e->tid);
  if (!slice && s->has_default_track && uuid != s->default_track) {
    /* An event on a track that is not a thread's (traced: a counter's
     * value, on its counter track) was recorded by the thread whose
     * sequence wrote it, when that sequence is a thread's of the same
     * process: as in JSON, where a counter event has the thread's tid. */
    const track *own = track_get(p, uuid, false);
    const track *th = track_get(p, s->default_track, false);
    if ((own == NULL || own->kind != TRACK_THREAD) && th != NULL &&
        th->kind == TRACK_THREAD && th->pid == e->pid)
      e->tid = th->tid;
  }
  if (name == NULL && has_iid) {
    const uint64_t *id = tr_map_get(&s->iids, name_iid);
    if (id != NULL) {
      name = (const uint8_t *)tr_intern_str(&s->names, (uint32_t)*id, &nlen);
    } else {
      int k = snprintf(p->namebuf, sizeof(p->namebuf),
                       "(name iid %llu not interned)",
                       (unsigned long long)name_iid);
      name = (const uint8_t *)p->namebuf;
      nlen = (size_t)k;
    }
  }
  e->name = name ? (const char *)name : "";
  e->name_len = name ? nlen : 0;
  if (e->kind == TR_EV_INSTANT && bytes_eq(name, nlen, LOST_NAME)) {
    e->kind = TR_EV_LOST;
    e->count = count;
  }
  tr_trace_mark_cut(e);
  return 0;
}

/* Decodes one packet into the queue, in trace_processor's order (see
 * pftrace_read.h).  Malformed packets are counted and dropped whole (their
 * events are not half-delivered). */
static int on_packet(tr_pftrace *p, const uint8_t *data, size_t n) {
  tr_pbr b = tr_pbr_of(data, n);
  tr_pbr_field f, te = {0}, in = {0}, td = {0}, df = {0}, cs = {0};
  uint64_t ts = 0, seq_id = 0, flags = 0, clock = 0;
  bool has_ts = false, dropped = false;
  int rc;
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    switch (f.num) {
      case TR_PF_PACKET_TIMESTAMP:
        if (f.wt == TR_PB_VARINT) {
          ts = f.v;
          has_ts = true;
        }
        break;
      case TR_PF_PACKET_TIMESTAMP_CLOCK_ID:
        if (f.wt == TR_PB_VARINT) clock = f.v;
        break;
      case TR_PF_PACKET_SEQUENCE_ID:
        if (f.wt == TR_PB_VARINT) seq_id = f.v;
        break;
      case TR_PF_PACKET_SEQUENCE_FLAGS:
        if (f.wt == TR_PB_VARINT) flags |= f.v;
        break;
      case TR_PF_PACKET_INCREMENTAL_STATE_CLEARED:
        if (f.wt == TR_PB_VARINT && f.v)
          flags |= TR_PF_SEQ_INCREMENTAL_STATE_CLEARED;
        break;
      case TR_PF_PACKET_PREVIOUS_PACKET_DROPPED:
        if (f.wt == TR_PB_VARINT && f.v) dropped = true;
        break;
      case TR_PF_PACKET_CLOCK_SNAPSHOT:
        if (f.wt == TR_PB_LEN) cs = f;
        break;
      case TR_PF_PACKET_TRACK_EVENT:
        if (f.wt == TR_PB_LEN) te = f;
        break;
      case TR_PF_PACKET_INTERNED_DATA:
        if (f.wt == TR_PB_LEN) in = f;
        break;
      case TR_PF_PACKET_DEFAULTS:
        if (f.wt == TR_PB_LEN) df = f;
        break;
      case TR_PF_PACKET_TRACK_DESCRIPTOR:
        if (f.wt == TR_PB_LEN) td = f;
        break;
      default:
        break;
    }
  }
  if (rc < 0) goto malformed;
  seq *s = seq_get(p, (uint32_t)seq_id);
  if (s == NULL) return -ENOMEM;
  if (flags & TR_PF_SEQ_INCREMENTAL_STATE_CLEARED)
    seq_clear(s);
  else if (dropped)
    s->lost_state = true;
  if (df.data != NULL && on_defaults(s, tr_pbr_sub(&df)) < 0) goto malformed;
  if (in.data != NULL) {
    rc = on_interned(s, tr_pbr_sub(&in));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
  }
  if (cs.data != NULL) {
    /* As in trace_processor, a snapshot's packet holds nothing else. */
    rc = tr_pfclock_snapshot(&p->clock, &s->clocks, tr_pbr_sub(&cs));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
    return 0;
  }
  if ((flags & TR_PF_SEQ_NEEDS_INCREMENTAL_STATE) && s->lost_state) {
    /* Its interned ids and clock deltas refer to packets that are lost. */
    p->skipped++;
    return 0;
  }
  int64_t when = 0;
  bool timed = false;
  if (has_ts) {
    if (clock == 0) clock = s->default_clock;
    timed =
        clock <= UINT32_MAX &&
        tr_pfclock_to_trace(&p->clock, &s->clocks, (uint32_t)clock, ts, &when);
  }
  if (td.data != NULL) {
    rc = on_track_descriptor(p, tr_pbr_sub(&td));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
  }
  if (te.data != NULL) {
    /* An event whose time cannot be placed is counted as one without. */
    rc = on_track_event(p, s, tr_pbr_sub(&te), timed, when);
    if (rc < 0) goto malformed;
  }
  return 0;
malformed:
  p->qlen = 0;
  p->skipped++;
  return 0;
}

/* Reads the next top-level field; a packet is decoded into the queue. */
static int read_packet(tr_pftrace *p) {
  uint64_t tag;
  int rc = in_varint(p, &tag);
  if (rc == 0) {
    p->done = true;
    return 0;
  }
  if (rc == -ENODATA) goto cut;
  if (rc < 0) return rc;
  uint64_t at = p->offset + p->pos;
  int wt = (int)(tag & 7);
  uint64_t n = 0;
  switch (wt) {
    case TR_PB_VARINT:
      rc = in_varint(p, &n);
      if (rc == 0) goto cut;
      if (rc == -ENODATA) goto cut;
      return rc < 0 ? rc : 1;
    case TR_PB_FIXED64:
    case TR_PB_FIXED32:
      rc = in_bytes(p, NULL, wt == TR_PB_FIXED64 ? 8 : 4);
      if (rc == -ENODATA) goto cut;
      return rc < 0 ? rc : 1;
    case TR_PB_LEN:
      break;
    default:
      snprintf(p->err, sizeof(p->err),
               "not a Perfetto trace: byte %llu: wire type %d is not valid "
               "in a Trace message",
               (unsigned long long)at, wt);
      return -EBADMSG;
  }
  rc = in_varint(p, &n);
  if (rc == 0 || rc == -ENODATA) goto cut;
  if (rc < 0) return rc;
  bool packet = (tag >> 3) == TR_PF_TRACE_PACKET;
  if (!packet || n > TR_PFTRACE_PACKET_MAX) {
    /* Not a packet, or one too large to hold: passed over. */
    if (packet) p->skipped++;
    rc = in_bytes(p, NULL, n);
    if (rc == -ENODATA) goto cut;
    return rc < 0 ? rc : 1;
  }
  if (p->pkt == NULL || n > p->pcap) {
    size_t cap = p->pcap ? p->pcap : 4096;
    while (cap < n) cap *= 2;
    uint8_t *b = realloc(p->pkt, cap);
    if (b == NULL) {
      snprintf(p->err, sizeof(p->err), "out of memory");
      return -ENOMEM;
    }
    p->pkt = b;
    p->pcap = cap;
  }
  rc = in_bytes(p, p->pkt, n);
  if (rc == -ENODATA) goto cut;
  if (rc < 0) return rc;
  p->packets++;
  rc = on_packet(p, p->pkt, (size_t)n);
  if (rc < 0) {
    snprintf(p->err, sizeof(p->err), "out of memory");
    return rc;
  }
  return 1;
cut:
  p->cut_short = true;
  p->done = true;
  return 0;
}

int tr_pftrace_next(tr_pftrace *p, tr_trace_event *ev) {
  for (;;) {
    if (p->qlen > 0) {
      *ev = p->queue[p->qhead];
      p->qhead = (p->qhead + 1) % QUEUE_MAX;
      p->qlen--;
      return 1;
    }
    if (p->done) return 0;
    p->qhead = 0;
    int rc = read_packet(p);
    if (rc <= 0) return rc;
  }
}

/* pftrace_read.c: a streaming decoder of Perfetto protobuf traces into
 * trace events: packets one at a time, interned names, defaults and clocks
 * per sequence, timestamps converted to the trace's clock, track
 * descriptors resolved to processes and threads. */
#include "pftrace_read.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IN_BUF_SIZE (256u * 1024u)
#define QUEUE_MAX 4
/* Track parents followed to find an event's process and thread. */
#define PARENT_DEPTH 8
#define LOST_NAME "traced: events lost (ring full)"

enum {
  WT_VARINT = 0,
  WT_I64 = 1,
  WT_LEN = 2,
  WT_I32 = 5,
};

enum { TYPE_SLICE_BEGIN = 1, TYPE_SLICE_END = 2, TYPE_INSTANT = 3 };
enum { TYPE_COUNTER = 4 };
#define SEQ_INCREMENTAL_STATE_CLEARED 1u
#define SEQ_NEEDS_INCREMENTAL_STATE 2u

/* Clock ids (clock_snapshot.proto): 1..63 builtin clocks, the same for
 * every sequence; 64..127 sequence-scoped clocks, whose meaning a clock
 * snapshot on the sequence gives. */
#define CLOCK_BOOTTIME 6u
#define BUILTIN_CLOCK_MAX 63u
#define SEQ_CLOCK_MIN 64u
#define SEQ_CLOCK_MAX 127u
/* Clocks of one snapshot that are looked at; more are ignored. */
#define SNAPSHOT_CLOCKS_MAX 16

/* ---- a u64 -> u32 map ---------------------------------------------------- */

typedef struct kslot {
  uint64_t key;
  uint32_t v; /* value + 1; 0: empty */
} kslot;

typedef struct kmap {
  kslot *s;
  uint32_t cap, n;
} kmap;

static uint32_t khash(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return (uint32_t)k;
}

static kslot *kmap_slot(const kmap *m, uint64_t key) {
  uint32_t i = khash(key) & (m->cap - 1);
  while (m->s[i].v != 0 && m->s[i].key != key) i = (i + 1) & (m->cap - 1);
  return &m->s[i];
}

static int64_t kmap_get(const kmap *m, uint64_t key) {
  if (m->cap == 0) return -1;
  kslot *s = kmap_slot(m, key);
  return s->v ? (int64_t)s->v - 1 : -1;
}

static int kmap_put(kmap *m, uint64_t key, uint32_t v) {
  if ((m->n + 1) * 2 > m->cap) {
    uint32_t cap = m->cap ? m->cap * 2 : 64;
    kslot *s = calloc(cap, sizeof(*s));
    if (s == NULL) return -ENOMEM;
    kmap old = *m;
    m->s = s;
    m->cap = cap;
    for (uint32_t i = 0; i < old.cap; i++)
      if (old.s[i].v) *kmap_slot(m, old.s[i].key) = old.s[i];
    free(old.s);
  }
  kslot *s = kmap_slot(m, key);
  if (s->v == 0) m->n++;
  s->key = key;
  s->v = v + 1;
  return 0;
}

static void kmap_clear(kmap *m) {
  if (m->s) memset(m->s, 0, m->cap * sizeof(*m->s));
  m->n = 0;
}

/* ---- state --------------------------------------------------------------- */

/* A sequence-scoped clock, as its latest snapshot on the sequence
 * declared it. */
typedef struct seqclock {
  uint32_t id;
  bool incremental; /* packet timestamps are deltas from `last` */
  bool anchored;    /* the snapshot related it to the trace clock */
  uint64_t mult;    /* nanoseconds per unit */
  uint64_t ref;     /* its value in the snapshot */
  uint64_t last;    /* incremental: the last packet's value */
  int64_t anchor;   /* trace time at `ref` */
} seqclock;

/* One packet sequence's incremental state. */
typedef struct seq {
  uint32_t id;
  /* Set by previous_packet_dropped until the state is cleared again:
   * packets that need incremental state are skipped meanwhile. */
  bool lost_state;
  kmap names; /* event name iid -> index in offs */
  char *arena;
  size_t alen, acap;
  uint64_t *offs; /* per name: where it starts in arena */
  uint32_t *lens;
  uint32_t nnames, capnames;
  /* Interned debug annotation names the reader cares about. */
  uint64_t iid_unfinished, iid_count;
  bool has_default_track;
  uint64_t default_track;
  uint32_t default_clock; /* TracePacketDefaults.timestamp_clock_id, or 0 */
  /* Clocks survive a reset of incremental state, as in trace_processor:
   * they are the clock tracker's, not the sequence's. */
  seqclock *clocks;
  uint32_t nclocks, capclocks;
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
  kmap seqmap;
  track *tracks;
  uint32_t ntracks, captracks;
  kmap trackmap;

  /* The trace clock (primary_trace_clock, BOOTTIME by default) and, per
   * builtin clock, its unit and its offset to the trace clock from the
   * latest snapshot that held both. */
  uint32_t trace_clock;
  bool has_off[BUILTIN_CLOCK_MAX + 1];
  int64_t off[BUILTIN_CLOCK_MAX + 1];
  uint64_t unit[BUILTIN_CLOCK_MAX + 1];

  tr_trace_event queue[QUEUE_MAX];
  unsigned qhead, qlen;
  char namebuf[64]; /* a name for an iid that was never interned */
};

int tr_pftrace_new(tr_pftrace **out, tr_pftrace_read_fn read, void *ctx) {
  tr_pftrace *p = calloc(1, sizeof(*p));
  if (p == NULL) return -ENOMEM;
  p->read = read;
  p->ctx = ctx;
  p->trace_clock = CLOCK_BOOTTIME;
  for (unsigned c = 0; c <= BUILTIN_CLOCK_MAX; c++) p->unit[c] = 1;
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
  kmap_clear(&s->names);
  s->alen = 0;
  s->nnames = 0;
  s->iid_unfinished = s->iid_count = 0;
  seq_defaults_clear(s);
  s->lost_state = false;
}

void tr_pftrace_free(tr_pftrace *p) {
  if (p == NULL) return;
  for (uint32_t i = 0; i < p->nseqs; i++) {
    free(p->seqs[i].names.s);
    free(p->seqs[i].arena);
    free(p->seqs[i].offs);
    free(p->seqs[i].lens);
    free(p->seqs[i].clocks);
  }
  free(p->seqs);
  free(p->seqmap.s);
  free(p->tracks);
  free(p->trackmap.s);
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

/* ---- protobuf in memory -------------------------------------------------- */

typedef struct pb {
  const uint8_t *p, *end;
} pb;

typedef struct pbfield {
  uint32_t num;
  int wt;
  uint64_t v; /* varint, fixed64, fixed32 */
  const uint8_t *data;
  size_t len; /* WT_LEN */
} pbfield;

static bool pb_varint(pb *b, uint64_t *v) {
  *v = 0;
  for (int i = 0; i < 10 && b->p < b->end; i++) {
    uint8_t c = *b->p++;
    *v |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) return true;
  }
  return false;
}

/* The next field: 1, 0 at the end, -1 when malformed. */
static int pb_next(pb *b, pbfield *f) {
  if (b->p >= b->end) return 0;
  uint64_t tag;
  if (!pb_varint(b, &tag)) return -1;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (int)(tag & 7);
  if (f->num == 0 || tag >> 3 > UINT32_MAX) return -1;
  switch (f->wt) {
    case WT_VARINT:
      return pb_varint(b, &f->v) ? 1 : -1;
    case WT_I64:
      if (b->end - b->p < 8) return -1;
      memcpy(&f->v, b->p, 8); /* little-endian hosts */
      b->p += 8;
      return 1;
    case WT_I32: {
      if (b->end - b->p < 4) return -1;
      uint32_t x;
      memcpy(&x, b->p, 4);
      f->v = x;
      b->p += 4;
      return 1;
    }
    case WT_LEN: {
      uint64_t n;
      if (!pb_varint(b, &n) || n > (uint64_t)(b->end - b->p)) return -1;
      f->data = b->p;
      f->len = (size_t)n;
      b->p += n;
      return 1;
    }
    default:
      return -1; /* groups (3, 4) and 6, 7 */
  }
}

static pb pb_of(const pbfield *f) { return (pb){f->data, f->data + f->len}; }

/* ---- sequences and tracks ------------------------------------------------ */

static seq *seq_get(tr_pftrace *p, uint32_t id) {
  int64_t i = kmap_get(&p->seqmap, id);
  if (i >= 0) return &p->seqs[i];
  if (p->nseqs == p->capseqs) {
    uint32_t cap = p->capseqs ? p->capseqs * 2 : 8;
    seq *s = realloc(p->seqs, cap * sizeof(*s));
    if (s == NULL) return NULL;
    p->seqs = s;
    p->capseqs = cap;
  }
  if (kmap_put(&p->seqmap, id, p->nseqs) < 0) return NULL;
  seq *s = &p->seqs[p->nseqs++];
  memset(s, 0, sizeof(*s));
  s->id = id;
  return s;
}

static int seq_add_name(seq *s, uint64_t iid, const uint8_t *name, size_t n) {
  if (n > UINT32_MAX) n = UINT32_MAX;
  if (s->nnames == s->capnames) {
    uint32_t cap = s->capnames ? s->capnames * 2 : 64;
    uint64_t *o = realloc(s->offs, cap * sizeof(*o));
    if (o == NULL) return -ENOMEM;
    s->offs = o;
    uint32_t *l = realloc(s->lens, cap * sizeof(*l));
    if (l == NULL) return -ENOMEM;
    s->lens = l;
    s->capnames = cap;
  }
  if (s->arena == NULL || s->alen + n > s->acap) {
    size_t cap = s->acap ? s->acap : 4096;
    while (s->alen + n > cap) cap *= 2;
    char *a = realloc(s->arena, cap);
    if (a == NULL) return -ENOMEM;
    s->arena = a;
    s->acap = cap;
  }
  if (n) memcpy(s->arena + s->alen, name, n);
  s->offs[s->nnames] = s->alen;
  s->lens[s->nnames] = (uint32_t)n;
  s->alen += n;
  if (kmap_put(&s->names, iid, s->nnames) < 0) return -ENOMEM;
  s->nnames++;
  return 0;
}

static track *track_get(tr_pftrace *p, uint64_t uuid, bool create) {
  int64_t i = kmap_get(&p->trackmap, uuid);
  if (i >= 0) return &p->tracks[i];
  if (!create) return NULL;
  if (p->ntracks == p->captracks) {
    uint32_t cap = p->captracks ? p->captracks * 2 : 16;
    track *t = realloc(p->tracks, cap * sizeof(*t));
    if (t == NULL) return NULL;
    p->tracks = t;
    p->captracks = cap;
  }
  if (kmap_put(&p->trackmap, uuid, p->ntracks) < 0) return NULL;
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

/* ---- clocks --------------------------------------------------------------
 * A packet's timestamp is in the clock its timestamp_clock_id names, or
 * its sequence's default one, or, with neither, already in trace time.
 * traced writes each thread's timestamps as deltas on an incremental
 * sequence clock (64) that a snapshot on the sequence equates with
 * CLOCK_MONOTONIC, the trace clock its first snapshot declares; a
 * timestamp that went backwards is written absolute in MONOTONIC (3).
 *
 * Conversions follow the snapshots the way trace_processor's clock
 * tracker does for those cases: a builtin clock through its offset to the
 * trace clock in the latest snapshot that held both; a sequence clock
 * through the trace time its latest snapshot on the sequence anchored it
 * to (directly, or through a builtin clock of the same snapshot).  Unlike
 * trace_processor, a builtin clock no snapshot relates to the trace clock
 * is taken to be the trace clock (a producer that writes no snapshots
 * uses one clock), rather than dropping its events.  Arithmetic wraps, as
 * trace_processor's casts do: a hostile timestamp gives a wrong time,
 * never undefined behaviour. */

static int64_t as_i64(uint64_t v) {
  int64_t r;
  memcpy(&r, &v, sizeof(r));
  return r;
}

static seqclock *seqclock_get(seq *s, uint32_t id, bool create) {
  for (uint32_t i = 0; i < s->nclocks; i++)
    if (s->clocks[i].id == id) return &s->clocks[i];
  if (!create) return NULL;
  if (s->nclocks == s->capclocks) {
    uint32_t cap = s->capclocks ? s->capclocks * 2 : 2;
    seqclock *c = realloc(s->clocks, cap * sizeof(*c));
    if (c == NULL) return NULL;
    s->clocks = c;
    s->capclocks = cap;
  }
  seqclock *c = &s->clocks[s->nclocks++];
  memset(c, 0, sizeof(*c));
  c->id = id;
  return c;
}

typedef struct snapclock {
  uint32_t id;
  uint64_t ts, mult;
  bool incremental;
} snapclock;

/* A ClockSnapshot on sequence s: 0, -1 when malformed, -ENOMEM. */
static int on_clock_snapshot(tr_pftrace *p, seq *s, pb b) {
  snapclock c[SNAPSHOT_CLOCKS_MAX];
  int n = 0;
  uint64_t primary = 0;
  pbfield f;
  int rc;
  while ((rc = pb_next(&b, &f)) > 0) {
    if (f.num == 2 && f.wt == WT_VARINT) primary = f.v;
    if (f.num != 1 || f.wt != WT_LEN || n == SNAPSHOT_CLOCKS_MAX) continue;
    pb cb = pb_of(&f);
    pbfield g;
    int r2;
    snapclock k = {.mult = 1};
    uint64_t id = 0;
    while ((r2 = pb_next(&cb, &g)) > 0) {
      if (g.wt != WT_VARINT) continue;
      if (g.num == 1) id = g.v;
      if (g.num == 2) k.ts = g.v;
      if (g.num == 3) k.incremental = g.v != 0;
      if (g.num == 4 && g.v != 0) k.mult = g.v;
    }
    if (r2 < 0) return -1;
    if (id == 0 || id > SEQ_CLOCK_MAX) continue; /* reserved ids */
    k.id = (uint32_t)id;
    c[n++] = k;
  }
  if (rc < 0) return -1;
  if (primary >= 1 && primary <= BUILTIN_CLOCK_MAX &&
      primary != p->trace_clock) {
    /* Offsets to the old trace clock mean nothing for the new one. */
    p->trace_clock = (uint32_t)primary;
    memset(p->has_off, 0, sizeof(p->has_off));
  }
  /* The trace clock's reading, if the snapshot has one. */
  int at = -1;
  for (int i = 0; i < n; i++)
    if (c[i].id == p->trace_clock) at = i;
  for (int i = 0; i < n; i++) {
    if (c[i].id > BUILTIN_CLOCK_MAX) continue;
    p->unit[c[i].id] = c[i].mult;
    if (at >= 0) {
      p->off[c[i].id] = as_i64(c[at].ts * c[at].mult - c[i].ts * c[i].mult);
      p->has_off[c[i].id] = true;
    }
  }
  /* The trace time the snapshot was taken at: the trace clock's reading,
   * else a builtin clock's converted, else none. */
  bool anchored = false;
  int64_t anchor = 0;
  for (int pass = 0; pass < 3 && !anchored; pass++)
    for (int i = 0; i < n && !anchored; i++) {
      uint32_t id = c[i].id;
      if (id > BUILTIN_CLOCK_MAX) continue;
      uint64_t ns = c[i].ts * c[i].mult;
      if (pass == 0 && i == at) {
        anchor = as_i64(ns);
      } else if (pass == 1 && p->has_off[id]) {
        anchor = as_i64(ns + (uint64_t)p->off[id]);
      } else if (pass == 2) {
        anchor = as_i64(ns);
      } else {
        continue;
      }
      anchored = true;
    }
  for (int i = 0; i < n; i++) {
    if (c[i].id < SEQ_CLOCK_MIN) continue;
    seqclock *sc = seqclock_get(s, c[i].id, true);
    if (sc == NULL) return -ENOMEM;
    sc->incremental = c[i].incremental;
    sc->mult = c[i].mult;
    sc->ref = sc->last = c[i].ts;
    sc->anchored = anchored;
    sc->anchor = anchor;
  }
  return 0;
}

/* Converts the timestamp v of a packet on sequence s, in clock `clock` (0:
 * trace time), to trace time.  An incremental clock advances.  False when
 * the clock means nothing here (a sequence clock no snapshot on s
 * declared, or one its snapshot could not place in trace time). */
static bool to_trace_time(tr_pftrace *p, seq *s, uint32_t clock, uint64_t v,
                          int64_t *out) {
  if (clock == 0) {
    *out = as_i64(v);
    return true;
  }
  if (clock <= BUILTIN_CLOCK_MAX) {
    uint64_t ns = v * p->unit[clock];
    if (clock != p->trace_clock && p->has_off[clock])
      ns += (uint64_t)p->off[clock];
    *out = as_i64(ns);
    return true;
  }
  seqclock *c = clock <= SEQ_CLOCK_MAX ? seqclock_get(s, clock, false) : NULL;
  if (c == NULL || !c->anchored) return false;
  if (c->incremental) {
    v += c->last;
    c->last = v;
  }
  *out = as_i64((uint64_t)c->anchor + (v - c->ref) * c->mult);
  return true;
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

static int on_interned(seq *s, pb b) {
  pbfield f;
  int rc;
  while ((rc = pb_next(&b, &f)) > 0) {
    if ((f.num != 2 && f.num != 3) || f.wt != WT_LEN) continue;
    pb e = pb_of(&f);
    pbfield g;
    uint64_t iid = 0;
    const uint8_t *name = NULL;
    size_t nlen = 0;
    int r2;
    while ((r2 = pb_next(&e, &g)) > 0) {
      if (g.num == 1 && g.wt == WT_VARINT) iid = g.v;
      if (g.num == 2 && g.wt == WT_LEN) {
        name = g.data;
        nlen = g.len;
      }
    }
    if (r2 < 0) return -1;
    if (name == NULL) continue;
    if (f.num == 2) {
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
static int on_defaults(seq *s, pb b) {
  pbfield f;
  int rc;
  seq_defaults_clear(s);
  while ((rc = pb_next(&b, &f)) > 0) {
    if (f.num == 58 && f.wt == WT_VARINT) s->default_clock = (uint32_t)f.v;
    if (f.num != 11 || f.wt != WT_LEN) continue;
    pb d = pb_of(&f);
    pbfield g;
    int r2;
    while ((r2 = pb_next(&d, &g)) > 0)
      if (g.num == 11 && g.wt == WT_VARINT) {
        s->has_default_track = true;
        s->default_track = g.v;
      }
    if (r2 < 0) return -1;
  }
  return rc < 0 ? -1 : 0;
}

/* A ProcessDescriptor or ThreadDescriptor: pid, tid and the name field. */
static int descriptor(pb b, uint32_t name_field, int64_t *pid, int64_t *tid,
                      const uint8_t **name, size_t *nlen) {
  pbfield f;
  int rc;
  while ((rc = pb_next(&b, &f)) > 0) {
    if (f.num == 1 && f.wt == WT_VARINT) *pid = (int32_t)f.v;
    if (f.num == 2 && f.wt == WT_VARINT && tid != NULL) *tid = (int32_t)f.v;
    if (f.num == name_field && f.wt == WT_LEN) {
      *name = f.data;
      *nlen = f.len;
    }
  }
  return rc < 0 ? -1 : 0;
}

static int on_track_descriptor(tr_pftrace *p, pb b) {
  pbfield f;
  int rc;
  uint64_t uuid = 0, parent = 0;
  bool has_parent = false;
  pbfield proc = {0}, thr = {0};
  while ((rc = pb_next(&b, &f)) > 0) {
    if (f.num == 1 && f.wt == WT_VARINT) uuid = f.v;
    if (f.num == 5 && f.wt == WT_VARINT) {
      parent = f.v;
      has_parent = true;
    }
    if (f.num == 3 && f.wt == WT_LEN) proc = f;
    if (f.num == 4 && f.wt == WT_LEN) thr = f;
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
    if (descriptor(pb_of(&thr), 5, &pid, &tid, &name, &nlen) < 0) return -1;
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
    if (descriptor(pb_of(&proc), 6, &pid, NULL, &name, &nlen) < 0) return -1;
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

static int on_track_event(tr_pftrace *p, seq *s, pb b, bool has_ts,
                          int64_t ts) {
  pbfield f;
  int rc;
  uint64_t type = 0, name_iid = 0, uuid = 0, count = 0;
  bool has_uuid = false, has_iid = false, unfinished = false;
  const uint8_t *name = NULL;
  size_t nlen = 0;
  while ((rc = pb_next(&b, &f)) > 0) {
    switch (f.num) {
      case 9:
        if (f.wt == WT_VARINT) type = f.v;
        break;
      case 10:
        if (f.wt == WT_VARINT) {
          name_iid = f.v;
          has_iid = true;
        }
        break;
      case 11:
        if (f.wt == WT_VARINT) {
          uuid = f.v;
          has_uuid = true;
        }
        break;
      case 23:
        if (f.wt == WT_LEN) {
          name = f.data;
          nlen = f.len;
        }
        break;
      case 4: {
        if (f.wt != WT_LEN) break;
        pb a = pb_of(&f);
        pbfield g;
        int r2;
        bool is_unf = false, is_count = false;
        uint64_t val = 0;
        while ((r2 = pb_next(&a, &g)) > 0) {
          if (g.num == 1 && g.wt == WT_VARINT) {
            is_unf = s->iid_unfinished != 0 && g.v == s->iid_unfinished;
            is_count = s->iid_count != 0 && g.v == s->iid_count;
          }
          if (g.num == 10 && g.wt == WT_LEN) {
            is_unf = bytes_eq(g.data, g.len, "unfinished");
            is_count = bytes_eq(g.data, g.len, "count");
          }
          if ((g.num == 2 || g.num == 3 || g.num == 4) && g.wt == WT_VARINT)
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
    case TYPE_SLICE_BEGIN:
      e->kind = TR_EV_BEGIN;
      break;
    case TYPE_SLICE_END:
      e->kind = TR_EV_END;
      break;
    case TYPE_INSTANT:
      e->kind = TR_EV_INSTANT;
      break;
    case TYPE_COUNTER:
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
    int64_t i = kmap_get(&s->names, name_iid);
    if (i >= 0) {
      name = (const uint8_t *)s->arena + s->offs[i];
      nlen = s->lens[i];
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
  return 0;
}

/* Decodes one packet into the queue, in trace_processor's order (see
 * pftrace_read.h).  Malformed packets are counted and dropped whole (their
 * events are not half-delivered). */
static int on_packet(tr_pftrace *p, const uint8_t *data, size_t n) {
  pb b = {data, data + n};
  pbfield f, te = {0}, in = {0}, td = {0}, df = {0}, cs = {0};
  uint64_t ts = 0, seq_id = 0, flags = 0, clock = 0;
  bool has_ts = false, dropped = false;
  int rc;
  while ((rc = pb_next(&b, &f)) > 0) {
    switch (f.num) {
      case 8:
        if (f.wt == WT_VARINT) {
          ts = f.v;
          has_ts = true;
        }
        break;
      case 58:
        if (f.wt == WT_VARINT) clock = f.v;
        break;
      case 10:
        if (f.wt == WT_VARINT) seq_id = f.v;
        break;
      case 13:
        if (f.wt == WT_VARINT) flags |= f.v;
        break;
      case 41:
        if (f.wt == WT_VARINT && f.v) flags |= SEQ_INCREMENTAL_STATE_CLEARED;
        break;
      case 42:
        if (f.wt == WT_VARINT && f.v) dropped = true;
        break;
      case 6:
        if (f.wt == WT_LEN) cs = f;
        break;
      case 11:
        if (f.wt == WT_LEN) te = f;
        break;
      case 12:
        if (f.wt == WT_LEN) in = f;
        break;
      case 59:
        if (f.wt == WT_LEN) df = f;
        break;
      case 60:
        if (f.wt == WT_LEN) td = f;
        break;
      default:
        break;
    }
  }
  if (rc < 0) goto malformed;
  seq *s = seq_get(p, (uint32_t)seq_id);
  if (s == NULL) return -ENOMEM;
  if (flags & SEQ_INCREMENTAL_STATE_CLEARED)
    seq_clear(s);
  else if (dropped)
    s->lost_state = true;
  if (df.data != NULL && on_defaults(s, pb_of(&df)) < 0) goto malformed;
  if (in.data != NULL) {
    rc = on_interned(s, pb_of(&in));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
  }
  if (cs.data != NULL) {
    /* As in trace_processor, a snapshot's packet holds nothing else. */
    rc = on_clock_snapshot(p, s, pb_of(&cs));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
    return 0;
  }
  if ((flags & SEQ_NEEDS_INCREMENTAL_STATE) && s->lost_state) {
    /* Its interned ids and clock deltas refer to packets that are lost. */
    p->skipped++;
    return 0;
  }
  int64_t when = 0;
  bool timed = false;
  if (has_ts) {
    if (clock == 0) clock = s->default_clock;
    timed =
        clock <= UINT32_MAX && to_trace_time(p, s, (uint32_t)clock, ts, &when);
  }
  if (td.data != NULL) {
    rc = on_track_descriptor(p, pb_of(&td));
    if (rc == -ENOMEM) return rc;
    if (rc < 0) goto malformed;
  }
  if (te.data != NULL) {
    /* An event whose time cannot be placed is counted as one without. */
    rc = on_track_event(p, s, pb_of(&te), timed, when);
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
    case WT_VARINT:
      rc = in_varint(p, &n);
      if (rc == 0) goto cut;
      if (rc == -ENODATA) goto cut;
      return rc < 0 ? rc : 1;
    case WT_I64:
    case WT_I32:
      rc = in_bytes(p, NULL, wt == WT_I64 ? 8 : 4);
      if (rc == -ENODATA) goto cut;
      return rc < 0 ? rc : 1;
    case WT_LEN:
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
  if ((tag >> 3) != 1 || n > TR_PFTRACE_PACKET_MAX) {
    /* Not a packet, or one too large to hold: passed over. */
    if ((tag >> 3) == 1) p->skipped++;
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

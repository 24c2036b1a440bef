/* pftrace_clock.c: the Perfetto trace reader's clock tracker (see
 * pftrace_clock.h). */
#include "pftrace_clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Clocks of one snapshot that are looked at; more are ignored. */
#define SNAPSHOT_CLOCKS_MAX 16

void tr_pfclock_init(tr_pfclock *c) {
  memset(c, 0, sizeof(*c));
  c->trace_clock = TR_PF_BUILTIN_CLOCK_BOOTTIME;
  for (unsigned i = 0; i <= TR_PF_BUILTIN_CLOCK_MAX; i++) c->unit[i] = 1;
}

void tr_pfclock_seqs_free(tr_pfclock_seqs *s) {
  free(s->v);
  memset(s, 0, sizeof(*s));
}

static int64_t as_i64(uint64_t v) {
  int64_t r;
  memcpy(&r, &v, sizeof(r));
  return r;
}

/* A sequence has a clock or two: a scan finds them. */
static tr_pfclock_seq *seq_clock(tr_pfclock_seqs *s, uint32_t id, bool create) {
  for (uint32_t i = 0; i < s->n; i++)
    if (s->v[i].id == id) return &s->v[i];
  if (!create) return NULL;
  if (s->n == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 2;
    tr_pfclock_seq *c = realloc(s->v, cap * sizeof(*c));
    if (c == NULL) return NULL;
    s->v = c;
    s->cap = cap;
  }
  tr_pfclock_seq *c = &s->v[s->n++];
  memset(c, 0, sizeof(*c));
  c->id = id;
  return c;
}

typedef struct snapclock {
  uint32_t id;
  uint64_t ts, mult;
  bool incremental;
} snapclock;

int tr_pfclock_snapshot(tr_pfclock *p, tr_pfclock_seqs *s, tr_pbr b) {
  snapclock c[SNAPSHOT_CLOCKS_MAX];
  int n = 0;
  uint64_t primary = 0;
  tr_pbr_field f;
  int rc;
  while ((rc = tr_pbr_next(&b, &f)) > 0) {
    if (f.num == TR_PF_SNAPSHOT_PRIMARY_CLOCK && f.wt == TR_PB_VARINT)
      primary = f.v;
    if (f.num != TR_PF_SNAPSHOT_CLOCKS || f.wt != TR_PB_LEN ||
        n == SNAPSHOT_CLOCKS_MAX)
      continue;
    tr_pbr cb = tr_pbr_sub(&f);
    tr_pbr_field g;
    int r2;
    snapclock k = {.mult = 1};
    uint64_t id = 0;
    while ((r2 = tr_pbr_next(&cb, &g)) > 0) {
      if (g.wt != TR_PB_VARINT) continue;
      if (g.num == TR_PF_CLOCK_ID) id = g.v;
      if (g.num == TR_PF_CLOCK_TIMESTAMP) k.ts = g.v;
      if (g.num == TR_PF_CLOCK_IS_INCREMENTAL) k.incremental = g.v != 0;
      if (g.num == TR_PF_CLOCK_UNIT_MULTIPLIER_NS && g.v != 0) k.mult = g.v;
    }
    if (r2 < 0) return -1;
    if (id == 0 || id > TR_PF_SEQ_CLOCK_MAX) continue; /* reserved ids */
    k.id = (uint32_t)id;
    c[n++] = k;
  }
  if (rc < 0) return -1;
  if (primary >= 1 && primary <= TR_PF_BUILTIN_CLOCK_MAX &&
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
    if (c[i].id > TR_PF_BUILTIN_CLOCK_MAX) continue;
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
      if (id > TR_PF_BUILTIN_CLOCK_MAX) continue;
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
    if (c[i].id < TR_PF_SEQ_CLOCK_MIN) continue;
    tr_pfclock_seq *sc = seq_clock(s, c[i].id, true);
    if (sc == NULL) return -ENOMEM;
    sc->incremental = c[i].incremental;
    sc->mult = c[i].mult;
    sc->ref = sc->last = c[i].ts;
    sc->anchored = anchored;
    sc->anchor = anchor;
  }
  return 0;
}

bool tr_pfclock_to_trace(const tr_pfclock *p, tr_pfclock_seqs *s,
                         uint32_t clock, uint64_t v, int64_t *out) {
  if (clock == 0) {
    *out = as_i64(v);
    return true;
  }
  if (clock <= TR_PF_BUILTIN_CLOCK_MAX) {
    uint64_t ns = v * p->unit[clock];
    if (clock != p->trace_clock && p->has_off[clock])
      ns += (uint64_t)p->off[clock];
    *out = as_i64(ns);
    return true;
  }
  tr_pfclock_seq *c =
      clock <= TR_PF_SEQ_CLOCK_MAX ? seq_clock(s, clock, false) : NULL;
  if (c == NULL || !c->anchored) return false;
  if (c->incremental) {
    v += c->last;
    c->last = v;
  }
  *out = as_i64((uint64_t)c->anchor + (v - c->ref) * c->mult);
  return true;
}

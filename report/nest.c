/* nest.c: how a thread's calls nest: each call is counted when its event
 * arrives and corrected when its callers and callees are known, in end
 * order (traced) or start order (other producers). */
#include "nest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Timestamps of other producers' JSON are rounded to nanoseconds field by
 * field, so a child's end may pass its parent's by one nanosecond. */
#define END_SLACK_NS 1

/* Each call is counted when its event arrives (calls, self = total = its
 * duration, one primitive call) and corrected when its place in the call
 * tree becomes known: a caller's self time loses each direct callee's
 * duration, and a call below a call of the same function loses its total
 * time and its primitive count.
 *
 * traced writes a call's X event when the call returns, so a thread's
 * events arrive in end order: callees before their caller.  A thread's
 * finished calls wait in `v` (sorted by start, disjoint) until an event
 * that contains them arrives and claims them as its direct callees.
 * Other producers sort by start: a caller arrives before its callees and
 * `v` is then the stack of open calls.  The first event that lies inside
 * or around an earlier one decides which order a thread's events are in;
 * an event that fits neither is counted as misnested and the thread's
 * nesting starts afresh from it. */

/* ---- per-function counts below a call ----------------------------------- */

/* A topmap holds, for a finished call's subtree, each function's topmost
 * calls there (the ones with no call of the same function above them in
 * the subtree): how many, and their summed duration.  When a call of f
 * claims its callees, the topmost f calls below it stop being outermost.
 * In start-ordered input the same structure counts, per thread, how many
 * calls of each function are open. */

typedef struct topent {
  uint32_t fn;
  uint64_t count;
  int64_t dur;
} topent;

/* Most subtrees hold a few functions: up to TOP_SCAN entries are found by
 * a scan, which is cheaper than hashing and needs no index; past that,
 * through `at`.  (A thread's top-level calls keep their topmap for the
 * whole report: it is kept small.) */
#define TOP_SCAN 32u

struct topmap {
  tr_map *at; /* fn -> index in e, once n > TOP_SCAN */
  uint32_t n, cap;
  topent e[];
};

static void top_free(topmap *m) {
  if (m == NULL) return;
  if (m->at != NULL) tr_map_free(m->at);
  free(m->at);
  free(m);
}

static topent *top_find(topmap *m, uint32_t fn) {
  if (m == NULL) return NULL;
  if (m->at == NULL) {
    for (uint32_t i = 0; i < m->n; i++)
      if (m->e[i].fn == fn) return &m->e[i];
    return NULL;
  }
  const uint64_t *i = tr_map_get(m->at, fn);
  return i != NULL ? &m->e[*i] : NULL;
}

/* Indexes the entries of m by function. */
static int top_index(topmap *m) {
  m->at = calloc(1, sizeof(*m->at));
  if (m->at == NULL) return -ENOMEM;
  for (uint32_t i = 0; i < m->n; i++)
    if (tr_map_set(m->at, m->e[i].fn, i) < 0) {
      tr_map_free(m->at);
      free(m->at);
      m->at = NULL;
      return -ENOMEM;
    }
  return 0;
}

/* The entry of fn, added (zero) when absent; *mp may move, and is
 * created when NULL. */
static topent *top_get(topmap **mp, uint32_t fn) {
  topmap *m = *mp;
  topent *e = top_find(m, fn);
  if (e != NULL) return e;
  if (m == NULL || m->n == m->cap) {
    uint32_t cap = m ? m->cap * 2 : 4;
    topmap *g = realloc(m, sizeof(*g) + cap * sizeof(topent));
    if (g == NULL) return NULL;
    if (m == NULL) {
      g->at = NULL;
      g->n = 0;
    }
    g->cap = cap;
    *mp = m = g;
  }
  if (m->at == NULL && m->n >= TOP_SCAN && top_index(m) < 0) return NULL;
  if (m->at != NULL && tr_map_set(m->at, fn, m->n) < 0) return NULL;
  m->e[m->n] = (topent){.fn = fn};
  return &m->e[m->n++];
}

void tr_nest_reset(thread *t) {
  for (size_t i = 0; i < t->n; i++) top_free(t->v[i].map);
  t->n = 0;
  top_free(t->active);
  t->active = NULL;
}

/* ---- nesting calls ------------------------------------------------------- */

/* a <= b + END_SLACK_NS, without overflowing near INT64_MAX. */
static bool ends_by(int64_t a, int64_t b) {
  return a <= b || (uint64_t)a - (uint64_t)b <= END_SLACK_NS;
}

static bool contains(int64_t s, int64_t e, const entry *in) {
  return s <= in->start && ends_by(in->end, e);
}

static bool inside(int64_t s, int64_t e, const entry *out) {
  return out->start <= s && ends_by(e, out->end);
}

static void misnest(tr_report *r, thread *t) {
  r->misnested++;
  tr_nest_reset(t);
}

static int push(thread *t, int64_t s, int64_t e, uint32_t fn, uint32_t stat,
                topmap *map) {
  if (tr_report_grow((void **)&t->v, &t->cap, t->n, sizeof(entry)) < 0) {
    top_free(map);
    return -ENOMEM;
  }
  t->v[t->n++] =
      (entry){.start = s, .end = e, .fn = fn, .stat = stat, .map = map};
  return 0;
}

/* End order: the call [s, e] of fn claims the finished calls inside it. */
static int claim(tr_report *r, thread *t, int64_t s, int64_t e, uint32_t fn,
                 uint32_t stat) {
  topmap *acc = NULL;
  int64_t callees = 0;
  while (t->n > 0 && t->v[t->n - 1].start >= s) {
    entry *c = &t->v[t->n - 1];
    if (!ends_by(c->end, e)) {
      top_free(acc);
      misnest(r, t);
      return push(t, s, e, fn, stat, NULL);
    }
    int64_t dur = tr_report_span(c->start, c->end);
    callees = WADD(callees, dur);
    t->n--;
    if (c->map == NULL && acc != NULL) {
      /* A leaf: its subtree is itself. */
      topent *d = top_get(&acc, c->fn);
      if (d == NULL) {
        top_free(acc);
        return -ENOMEM;
      }
      d->count++;
      d->dur = WADD(d->dur, dur);
      continue;
    }
    /* The callee's subtree: what lies below it, with the callee itself as
     * the topmost call of its function. */
    topmap *m = c->map;
    c->map = NULL;
    topent *self = top_get(&m, c->fn);
    if (self == NULL) {
      top_free(m);
      top_free(acc);
      return -ENOMEM;
    }
    self->count = 1;
    self->dur = dur;
    if (acc == NULL) {
      acc = m;
    } else {
      if (m->n > acc->n) {
        topmap *x = m;
        m = acc;
        acc = x;
      }
      for (uint32_t i = 0; i < m->n; i++) {
        topent *d = top_get(&acc, m->e[i].fn);
        if (d == NULL) {
          top_free(m);
          top_free(acc);
          return -ENOMEM;
        }
        d->count += m->e[i].count;
        d->dur = WADD(d->dur, m->e[i].dur);
      }
      top_free(m);
    }
  }
  tr_report_fn *st = &r->stats[stat].s;
  st->self_ns = WSUB(st->self_ns, callees);
  topent *inner = top_find(acc, fn);
  if (inner != NULL) {
    st->total_ns = WSUB(st->total_ns, inner->dur);
    st->primitive -= inner->count;
  }
  /* What remains must end before this call starts. */
  if (t->n > 0 && t->v[t->n - 1].end > s) {
    top_free(acc);
    misnest(r, t);
    return push(t, s, e, fn, stat, NULL);
  }
  return push(t, s, e, fn, stat, acc);
}

/* Start order: [s, e] of fn is a callee of the innermost open call that
 * contains it. */
static int open_call(tr_report *r, thread *t, int64_t s, int64_t e, uint32_t fn,
                     uint32_t stat) {
  while (t->n > 0) {
    entry *top = &t->v[t->n - 1];
    if (inside(s, e, top)) break;
    if (top->end <= s) {
      topent *a = top_find(t->active, top->fn);
      if (a != NULL && a->count > 0) a->count--;
      t->n--;
      continue;
    }
    misnest(r, t);
    break;
  }
  int64_t dur = tr_report_span(s, e);
  if (t->n > 0) {
    tr_report_fn *caller = &r->stats[t->v[t->n - 1].stat].s;
    caller->self_ns = WSUB(caller->self_ns, dur);
  }
  topent *a = top_get(&t->active, fn);
  if (a == NULL) return -ENOMEM;
  if (a->count > 0) {
    tr_report_fn *st = &r->stats[stat].s;
    st->total_ns = WSUB(st->total_ns, dur);
    st->primitive--;
  }
  a->count++;
  return push(t, s, e, fn, stat, NULL);
}

int tr_nest_call(tr_report *r, thread *t, uint32_t fn, int64_t s, int64_t e,
                 bool unfinished) {
  int64_t si = tr_report_stat(r, t->proc, fn);
  if (si < 0) return -ENOMEM;
  if (e < s) e = s;
  tr_report_fn *st = &r->stats[si].s;
  st->calls++;
  st->primitive++;
  st->self_ns = WADD(st->self_ns, tr_report_span(s, e));
  st->total_ns = WADD(st->total_ns, tr_report_span(s, e));
  if (unfinished) {
    st->unfinished++;
    r->procs[t->proc].unfinished++;
    r->unfinished++;
  }
  uint32_t f = fn, stat = (uint32_t)si;
  if (t->n == 0) return push(t, s, e, f, stat, NULL);
  entry *top = &t->v[t->n - 1];
  if (t->mode != MODE_START_ORDER) {
    if (contains(s, e, top)) {
      t->mode = MODE_END_ORDER;
      return claim(r, t, s, e, f, stat);
    }
    if (top->end <= s) return push(t, s, e, f, stat, NULL);
    if (t->mode == MODE_UNKNOWN && inside(s, e, top)) {
      /* The events so far were disjoint: all but the last are finished
       * top-level calls, and the last is open. */
      t->mode = MODE_START_ORDER;
      entry keep = *top;
      keep.map = NULL; /* none: nothing was claimed yet */
      tr_nest_reset(t);
      t->v[0] = keep;
      t->n = 1;
      topent *a = top_get(&t->active, keep.fn);
      if (a == NULL) return -ENOMEM;
      a->count = 1;
      return open_call(r, t, s, e, f, stat);
    }
    misnest(r, t);
    return push(t, s, e, f, stat, NULL);
  }
  return open_call(r, t, s, e, f, stat);
}

/* report.c: `traced report`: aggregates a trace's calls per process and
 * function into cProfile's numbers (calls, self time, total time) and
 * prints them as tables or JSON. */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "output/json_escape.h"

/* Timestamps of other producers' JSON are rounded to nanoseconds field by
 * field, so a child's end may pass its parent's by one nanosecond. */
#define END_SLACK_NS 1

/* Sums of durations wrap instead of overflowing (undefined behaviour): a
 * hostile file may hold durations near 2^63; real ones never get close. */
#define WADD(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define WSUB(a, b) ((int64_t)((uint64_t)(a) - (uint64_t)(b)))

/* e - s for e >= s, at most INT64_MAX. */
static int64_t span(int64_t s, int64_t e) {
  uint64_t d = (uint64_t)e - (uint64_t)s;
  return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* ---- interned function names --------------------------------------------- */

typedef struct names {
  char *bytes; /* every name, back to back */
  size_t len, cap;
  uint64_t *off; /* per id */
  uint32_t *nlen, *hash;
  uint32_t n, idcap;
  uint32_t *slots; /* id + 1; 0: empty */
  uint32_t nslots; /* a power of two */
} names;

static uint32_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (uint8_t)s[i];
    h *= 1099511628211ull;
  }
  return (uint32_t)(h ^ (h >> 32));
}

static void names_free(names *t) {
  free(t->bytes);
  free(t->off);
  free(t->nlen);
  free(t->hash);
  free(t->slots);
}

static int names_rehash(names *t, uint32_t nslots) {
  uint32_t *s = calloc(nslots, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  for (uint32_t id = 0; id < t->n; id++) {
    uint32_t i = t->hash[id] & (nslots - 1);
    while (s[i] != 0) i = (i + 1) & (nslots - 1);
    s[i] = id + 1;
  }
  free(t->slots);
  t->slots = s;
  t->nslots = nslots;
  return 0;
}

/* The id of a name, added when new.  Returns the id or -ENOMEM. */
static int64_t names_intern(names *t, const char *s, size_t n) {
  if (t->nslots == 0 && names_rehash(t, 1024) < 0) return -ENOMEM;
  uint32_t h = hash_bytes(s, n);
  uint32_t i = h & (t->nslots - 1);
  for (; t->slots[i] != 0; i = (i + 1) & (t->nslots - 1)) {
    uint32_t id = t->slots[i] - 1;
    if (t->hash[id] == h && t->nlen[id] == n &&
        memcmp(t->bytes + t->off[id], s, n) == 0)
      return id;
  }
  if (t->n == UINT32_MAX - 1 || n > UINT32_MAX) return -ENOMEM;
  if (t->n == t->idcap) {
    uint32_t cap = t->idcap ? t->idcap * 2 : 256;
    uint64_t *off = realloc(t->off, cap * sizeof(*off));
    if (off == NULL) return -ENOMEM;
    t->off = off;
    uint32_t *nl = realloc(t->nlen, cap * sizeof(*nl));
    if (nl == NULL) return -ENOMEM;
    t->nlen = nl;
    uint32_t *hs = realloc(t->hash, cap * sizeof(*hs));
    if (hs == NULL) return -ENOMEM;
    t->hash = hs;
    t->idcap = cap;
  }
  /* Allocated even for an empty name: names are read as bytes + offset. */
  if (t->bytes == NULL || t->len + n > t->cap) {
    size_t cap = t->cap ? t->cap : 64 * 1024;
    while (t->len + n > cap) cap *= 2;
    char *b = realloc(t->bytes, cap);
    if (b == NULL) return -ENOMEM;
    t->bytes = b;
    t->cap = cap;
  }
  uint32_t id = t->n++;
  if (n > 0) memcpy(t->bytes + t->len, s, n);
  t->off[id] = t->len;
  t->nlen[id] = (uint32_t)n;
  t->hash[id] = h;
  t->len += n;
  t->slots[i] = id + 1;
  if ((uint64_t)t->n * 2 > t->nslots && names_rehash(t, t->nslots * 2) < 0)
    return -ENOMEM;
  return id;
}

/* ---- a map from two 64-bit keys to an index ------------------------------ */

typedef struct idslot {
  uint64_t a, b;
  uint32_t v; /* value + 1; 0: empty */
} idslot;

typedef struct idmap {
  idslot *s;
  size_t cap, n; /* cap: a power of two */
} idmap;

static size_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 29;
  return (size_t)x;
}

/* The slot of (a, b): its value + 1 in ->v, or an empty slot where it
 * goes. */
static idslot *idmap_slot(const idmap *m, uint64_t a, uint64_t b) {
  size_t i = mix(a, b) & (m->cap - 1);
  while (m->s[i].v != 0 && (m->s[i].a != a || m->s[i].b != b))
    i = (i + 1) & (m->cap - 1);
  return &m->s[i];
}

static int idmap_grow(idmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 256;
  idslot *s = calloc(cap, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  idmap old = *m;
  m->s = s;
  m->cap = cap;
  for (size_t i = 0; i < old.cap; i++)
    if (old.s[i].v != 0) *idmap_slot(m, old.s[i].a, old.s[i].b) = old.s[i];
  free(old.s);
  return 0;
}

/* Returns the value of (a, b), or -1 when absent. */
static int64_t idmap_get(const idmap *m, uint64_t a, uint64_t b) {
  if (m->cap == 0) return -1;
  idslot *s = idmap_slot(m, a, b);
  return s->v == 0 ? -1 : (int64_t)s->v - 1;
}

static int idmap_put(idmap *m, uint64_t a, uint64_t b, uint32_t v) {
  if ((m->n + 1) * 2 > m->cap && idmap_grow(m) < 0) return -ENOMEM;
  idslot *s = idmap_slot(m, a, b);
  if (s->v == 0) m->n++;
  s->a = a;
  s->b = b;
  s->v = v + 1;
  return 0;
}

/* ---- per-function counts below a call ----------------------------------- */

/* A topmap holds, for a finished call's subtree, each function's topmost
 * calls there (the ones with no call of the same function above them in
 * the subtree): how many, and their summed duration.  When a call of f
 * claims its callees, the topmost f calls below it stop being outermost.
 * In start-ordered input the same structure counts, per thread, how many
 * calls of each function are open. */

typedef struct topent {
  uint64_t count;
  int64_t dur;
  uint32_t fn1; /* function id + 1; 0: empty */
} topent;

typedef struct topmap {
  uint32_t cap, n; /* cap: a power of two */
  topent e[];
} topmap;

static topent *top_slot(topmap *m, uint32_t fn) {
  uint32_t i = (fn * 2654435761u) & (m->cap - 1);
  while (m->e[i].fn1 != 0 && m->e[i].fn1 != fn + 1) i = (i + 1) & (m->cap - 1);
  return &m->e[i];
}

static topent *top_find(topmap *m, uint32_t fn) {
  if (m == NULL) return NULL;
  topent *e = top_slot(m, fn);
  return e->fn1 != 0 ? e : NULL;
}

/* The entry of fn, added (zero) when absent; *mp may move. */
static topent *top_get(topmap **mp, uint32_t fn) {
  topmap *m = *mp;
  if (m == NULL || (m->n + 1) * 4 > m->cap * 3) {
    uint32_t cap = m ? m->cap * 2 : 4;
    topmap *g = calloc(1, sizeof(*g) + cap * sizeof(topent));
    if (g == NULL) return NULL;
    g->cap = cap;
    if (m != NULL) {
      for (uint32_t i = 0; i < m->cap; i++)
        if (m->e[i].fn1 != 0) {
          *top_slot(g, m->e[i].fn1 - 1) = m->e[i];
          g->n++;
        }
      free(m);
    }
    *mp = m = g;
  }
  topent *e = top_slot(m, fn);
  if (e->fn1 == 0) {
    e->fn1 = fn + 1;
    e->count = 0;
    e->dur = 0;
    m->n++;
  }
  return e;
}

/* ---- processes, threads, statistics -------------------------------------- */

typedef struct proc {
  int64_t pid;
  char *name; /* NULL: no process_name */
  size_t name_len;
  bool has_sort;
  int64_t sort_index;
  bool has_meta_dropped;
  uint64_t meta_dropped, lost;
  uint64_t events, unfinished, threads;
} proc;

/* A finished call kept until its caller's event claims it (end-ordered
 * input), or an open call (start-ordered input). */
typedef struct entry {
  int64_t start, end;
  uint32_t fn, stat;
  topmap *map; /* end-ordered: topmost calls below, by function */
} entry;

typedef struct bopen {
  int64_t start;
  uint32_t fn;
} bopen;

enum { MODE_UNKNOWN = 0, MODE_END_ORDER = 1, MODE_START_ORDER = 2 };

typedef struct thread {
  int64_t pid, tid;
  uint32_t proc;
  int mode;
  entry *v;
  size_t n, cap;
  bopen *b; /* B events waiting for their E */
  size_t bn, bcap;
  topmap *active; /* start-ordered: open calls per function */
  bool any_ts;
  int64_t last_ts;
} thread;

typedef struct stat_rec {
  uint32_t proc, fn;
  tr_report_fn s;
} stat_rec;

struct tr_report {
  names fns;
  idmap procmap, threadmap, statmap;
  proc *procs;
  size_t nprocs, capprocs;
  thread *threads;
  size_t nthreads, capthreads;
  stat_rec *stats;
  size_t nstats, capstats;
  uint64_t events, unfinished, misnested;
  bool any_ts;
  int64_t first_ts, last_ts;
  /* the source */
  char *path;
  int format;
  bool compressed, cut_short;
  uint64_t skipped;
};

int tr_report_new(tr_report **out) {
  *out = calloc(1, sizeof(**out));
  return *out == NULL ? -ENOMEM : 0;
}

static void thread_reset(thread *t) {
  for (size_t i = 0; i < t->n; i++) free(t->v[i].map);
  t->n = 0;
  free(t->active);
  t->active = NULL;
}

void tr_report_free(tr_report *r) {
  if (r == NULL) return;
  names_free(&r->fns);
  free(r->procmap.s);
  free(r->threadmap.s);
  free(r->statmap.s);
  for (size_t i = 0; i < r->nprocs; i++) free(r->procs[i].name);
  free(r->procs);
  for (size_t i = 0; i < r->nthreads; i++) {
    thread_reset(&r->threads[i]);
    free(r->threads[i].v);
    free(r->threads[i].b);
  }
  free(r->threads);
  free(r->stats);
  free(r->path);
  free(r);
}

void tr_report_set_source(tr_report *r, const char *path, int format,
                          bool compressed, bool cut_short, uint64_t skipped) {
  free(r->path);
  r->path = path ? strdup(path) : NULL;
  r->format = format;
  r->compressed = compressed;
  r->cut_short = cut_short;
  r->skipped = skipped;
}

/* Grows a vector of `size`-byte elements to hold one more. */
static int grow(void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t c = *cap ? *cap * 2 : 16;
  void *p = realloc(*v, c * size);
  if (p == NULL) return -ENOMEM;
  *v = p;
  *cap = c;
  return 0;
}

static int64_t proc_get(tr_report *r, int64_t pid) {
  int64_t i = idmap_get(&r->procmap, (uint64_t)pid, 0);
  if (i >= 0) return i;
  if (r->nprocs >= UINT32_MAX - 1 ||
      grow((void **)&r->procs, &r->capprocs, r->nprocs, sizeof(proc)) < 0 ||
      idmap_put(&r->procmap, (uint64_t)pid, 0, (uint32_t)r->nprocs) < 0)
    return -ENOMEM;
  proc *p = &r->procs[r->nprocs];
  memset(p, 0, sizeof(*p));
  p->pid = pid;
  return (int64_t)r->nprocs++;
}

static thread *thread_get(tr_report *r, int64_t pid, int64_t tid) {
  int64_t i = idmap_get(&r->threadmap, (uint64_t)pid, (uint64_t)tid);
  if (i >= 0) return &r->threads[i];
  int64_t p = proc_get(r, pid);
  if (p < 0 || r->nthreads >= UINT32_MAX - 1 ||
      grow((void **)&r->threads, &r->capthreads, r->nthreads, sizeof(thread)) <
          0 ||
      idmap_put(&r->threadmap, (uint64_t)pid, (uint64_t)tid,
                (uint32_t)r->nthreads) < 0)
    return NULL;
  thread *t = &r->threads[r->nthreads++];
  memset(t, 0, sizeof(*t));
  t->pid = pid;
  t->tid = tid;
  t->proc = (uint32_t)p;
  r->procs[p].threads++;
  return t;
}

static int64_t stat_get(tr_report *r, uint32_t proc, uint32_t fn) {
  int64_t i = idmap_get(&r->statmap, proc, fn);
  if (i >= 0) return i;
  if (r->nstats >= UINT32_MAX - 1 ||
      grow((void **)&r->stats, &r->capstats, r->nstats, sizeof(stat_rec)) < 0 ||
      idmap_put(&r->statmap, proc, fn, (uint32_t)r->nstats) < 0)
    return -ENOMEM;
  stat_rec *s = &r->stats[r->nstats];
  memset(s, 0, sizeof(*s));
  s->proc = proc;
  s->fn = fn;
  return (int64_t)r->nstats++;
}

/* ---- nesting calls ------------------------------------------------------- */

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
  thread_reset(t);
}

static int push(thread *t, int64_t s, int64_t e, uint32_t fn, uint32_t stat,
                topmap *map) {
  if (grow((void **)&t->v, &t->cap, t->n, sizeof(entry)) < 0) {
    free(map);
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
      free(acc);
      misnest(r, t);
      return push(t, s, e, fn, stat, NULL);
    }
    int64_t dur = span(c->start, c->end);
    callees = WADD(callees, dur);
    t->n--;
    if (c->map == NULL && acc != NULL) {
      /* A leaf: its subtree is itself. */
      topent *d = top_get(&acc, c->fn);
      if (d == NULL) {
        free(acc);
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
      free(m);
      free(acc);
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
      for (uint32_t i = 0; i < m->cap; i++) {
        if (m->e[i].fn1 == 0) continue;
        topent *d = top_get(&acc, m->e[i].fn1 - 1);
        if (d == NULL) {
          free(m);
          free(acc);
          return -ENOMEM;
        }
        d->count += m->e[i].count;
        d->dur = WADD(d->dur, m->e[i].dur);
      }
      free(m);
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
    free(acc);
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
  int64_t dur = span(s, e);
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

static int add_call(tr_report *r, thread *t, uint32_t fn, int64_t s, int64_t e,
                    bool unfinished) {
  int64_t si = stat_get(r, t->proc, fn);
  if (si < 0) return -ENOMEM;
  if (e < s) e = s;
  tr_report_fn *st = &r->stats[si].s;
  st->calls++;
  st->primitive++;
  st->self_ns = WADD(st->self_ns, span(s, e));
  st->total_ns = WADD(st->total_ns, span(s, e));
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
      thread_reset(t);
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

int tr_report_add(tr_report *r, const tr_trace_event *ev) {
  if (TR_EV_IS_META(ev->kind)) {
    int64_t pi = proc_get(r, ev->pid);
    if (pi < 0) return -ENOMEM;
    proc *p = &r->procs[pi];
    switch (ev->kind) {
      case TR_EV_PROCESS_NAME: {
        char *n = malloc(ev->name_len + 1);
        if (n == NULL) return -ENOMEM;
        memcpy(n, ev->name, ev->name_len);
        n[ev->name_len] = '\0';
        free(p->name);
        p->name = n;
        p->name_len = ev->name_len;
        if (ev->has_dropped) {
          p->has_meta_dropped = true;
          p->meta_dropped = ev->dropped;
        }
        break;
      }
      case TR_EV_THREAD_NAME:
        if (thread_get(r, ev->pid, ev->tid) == NULL) return -ENOMEM;
        break;
      case TR_EV_SORT_INDEX:
        p->has_sort = true;
        p->sort_index = ev->sort_index;
        break;
      default:
        break;
    }
    return 0;
  }
  thread *t = thread_get(r, ev->pid, ev->tid);
  if (t == NULL) return -ENOMEM;
  proc *p = &r->procs[t->proc];
  if (ev->has_ts) {
    int64_t end = ev->ts_ns;
    if (ev->kind == TR_EV_COMPLETE && ev->dur_ns > 0 &&
        ev->ts_ns <= INT64_MAX - ev->dur_ns)
      end = ev->ts_ns + ev->dur_ns;
    if (!r->any_ts || ev->ts_ns < r->first_ts) r->first_ts = ev->ts_ns;
    if (!r->any_ts || end > r->last_ts) r->last_ts = end;
    r->any_ts = true;
    if (!t->any_ts || end > t->last_ts) t->last_ts = end;
    t->any_ts = true;
  }
  if (ev->kind != TR_EV_END) {
    r->events++;
    p->events++;
  }
  switch (ev->kind) {
    case TR_EV_COMPLETE: {
      int64_t fn = names_intern(&r->fns, ev->name, ev->name_len);
      if (fn < 0) return -ENOMEM;
      int64_t e = ev->ts_ns <= INT64_MAX - ev->dur_ns ? ev->ts_ns + ev->dur_ns
                                                      : INT64_MAX;
      return add_call(r, t, (uint32_t)fn, ev->ts_ns, e, ev->unfinished);
    }
    case TR_EV_BEGIN: {
      int64_t fn = names_intern(&r->fns, ev->name, ev->name_len);
      if (fn < 0 || grow((void **)&t->b, &t->bcap, t->bn, sizeof(bopen)) < 0)
        return -ENOMEM;
      t->b[t->bn++] = (bopen){.start = ev->ts_ns, .fn = (uint32_t)fn};
      return 0;
    }
    case TR_EV_END:
      if (t->bn == 0) {
        r->misnested++; /* an end without a begin */
        return 0;
      }
      t->bn--;
      return add_call(r, t, t->b[t->bn].fn, t->b[t->bn].start, ev->ts_ns,
                      ev->unfinished);
    case TR_EV_LOST:
      p->lost += ev->count;
      return 0;
    default:
      return 0;
  }
}

int tr_report_finish(tr_report *r) {
  for (size_t i = 0; i < r->nthreads; i++) {
    thread *t = &r->threads[i];
    /* Innermost first, as traced ends open calls. */
    while (t->bn > 0) {
      t->bn--;
      int rc =
          add_call(r, t, t->b[t->bn].fn, t->b[t->bn].start, t->last_ts, true);
      if (rc < 0) return rc;
    }
    thread_reset(t);
  }
  return 0;
}

/* ---- queries ------------------------------------------------------------- */

bool tr_report_has_pid(const tr_report *r, int64_t pid) {
  return idmap_get(&r->procmap, (uint64_t)pid, 0) >= 0;
}

static uint64_t proc_dropped(const proc *p) {
  return p->has_meta_dropped && p->meta_dropped > p->lost ? p->meta_dropped
                                                          : p->lost;
}

bool tr_report_lookup(const tr_report *r, bool overall, int64_t pid,
                      const char *name, tr_report_fn *out) {
  memset(out, 0, sizeof(*out));
  bool found = false;
  size_t n = strlen(name);
  for (size_t i = 0; i < r->nstats; i++) {
    const stat_rec *s = &r->stats[i];
    if (!overall && r->procs[s->proc].pid != pid) continue;
    if (r->fns.nlen[s->fn] != n ||
        memcmp(r->fns.bytes + r->fns.off[s->fn], name, n) != 0)
      continue;
    out->calls += s->s.calls;
    out->primitive += s->s.primitive;
    out->unfinished += s->s.unfinished;
    out->self_ns = WADD(out->self_ns, s->s.self_ns);
    out->total_ns = WADD(out->total_ns, s->s.total_ns);
    found = true;
  }
  return found;
}

/* ---- printing ------------------------------------------------------------ */

typedef struct row {
  uint32_t fn;
  tr_report_fn s;
} row;

typedef struct sort_ctx {
  const names *fns;
  int key;
} sort_ctx;

/* qsort has no context argument; the report is printed by one thread. */
static sort_ctx g_sort;

static int cmp_name(const row *a, const row *b) {
  const names *t = g_sort.fns;
  uint32_t la = t->nlen[a->fn], lb = t->nlen[b->fn];
  int c = memcmp(t->bytes + t->off[a->fn], t->bytes + t->off[b->fn],
                 la < lb ? la : lb);
  if (c != 0) return c;
  return la < lb ? -1 : la > lb;
}

static int cmp_rows(const void *pa, const void *pb) {
  const row *a = pa, *b = pb;
  int64_t x = 0, y = 0;
  switch (g_sort.key) {
    case TR_SORT_SELF:
      x = a->s.self_ns;
      y = b->s.self_ns;
      break;
    case TR_SORT_CALLS:
      x = (int64_t)a->s.calls;
      y = (int64_t)b->s.calls;
      break;
    case TR_SORT_NAME:
      return cmp_name(a, b);
    default:
      x = a->s.total_ns;
      y = b->s.total_ns;
  }
  if (x != y) return x > y ? -1 : 1;
  return cmp_name(a, b);
}

/* The rows of one process (pi >= 0) or of the selected processes summed
 * (pi < 0).  Returns the count, or -ENOMEM. */
static int64_t collect(const tr_report *r, int64_t pi, const tr_report_opts *o,
                       row **out) {
  *out = NULL;
  row *rows;
  size_t n = 0;
  if (pi >= 0) {
    rows = malloc((r->nstats ? r->nstats : 1) * sizeof(*rows));
    if (rows == NULL) return -ENOMEM;
    for (size_t i = 0; i < r->nstats; i++)
      if (r->stats[i].proc == (uint32_t)pi)
        rows[n++] = (row){.fn = r->stats[i].fn, .s = r->stats[i].s};
  } else {
    rows = calloc(r->fns.n ? r->fns.n : 1, sizeof(*rows));
    if (rows == NULL) return -ENOMEM;
    for (size_t i = 0; i < r->nstats; i++) {
      const stat_rec *s = &r->stats[i];
      if (o->has_pid && r->procs[s->proc].pid != o->pid) continue;
      row *d = &rows[s->fn];
      d->s.calls += s->s.calls;
      d->s.primitive += s->s.primitive;
      d->s.unfinished += s->s.unfinished;
      d->s.self_ns = WADD(d->s.self_ns, s->s.self_ns);
      d->s.total_ns = WADD(d->s.total_ns, s->s.total_ns);
    }
    for (uint32_t f = 0; f < r->fns.n; f++)
      if (rows[f].s.calls > 0) {
        rows[n] = rows[f];
        rows[n++].fn = f;
      }
  }
  *out = rows;
  return (int64_t)n;
}

static void sort_rows(const tr_report *r, row *rows, size_t n, int key) {
  g_sort.fns = &r->fns;
  g_sort.key = key;
  qsort(rows, n, sizeof(*rows), cmp_rows);
}

/* Processes in the order of their process_sort_index (traced: the order
 * they joined the session, the program's main process first), then of
 * their first event. */
static const tr_report *g_order_report;

static int cmp_procs(const void *pa, const void *pb) {
  const proc *a = &g_order_report->procs[*(const uint32_t *)pa];
  const proc *b = &g_order_report->procs[*(const uint32_t *)pb];
  if (a->has_sort != b->has_sort) return a->has_sort ? -1 : 1;
  if (a->has_sort && a->sort_index != b->sort_index)
    return a->sort_index < b->sort_index ? -1 : 1;
  uint32_t ia = *(const uint32_t *)pa, ib = *(const uint32_t *)pb;
  return ia < ib ? -1 : ia > ib;
}

static uint32_t *proc_order(const tr_report *r) {
  uint32_t *ord = malloc((r->nprocs ? r->nprocs : 1) * sizeof(*ord));
  if (ord == NULL) return NULL;
  for (size_t i = 0; i < r->nprocs; i++) ord[i] = (uint32_t)i;
  g_order_report = r;
  qsort(ord, r->nprocs, sizeof(*ord), cmp_procs);
  return ord;
}

/* A name for the terminal: printable UTF-8 as is, control characters
 * (C0, DEL, C1) and invalid bytes as \xNN, so a hostile function name
 * cannot drive the terminal. */
static void put_text(FILE *f, const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s, *end = p + n;
  while (p < end) {
    uint8_t c = *p;
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\')
        fputs("\\\\", f);
      else
        fputc(c, f);
      p++;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && end - p >= len;
    for (int i = 1; ok && i < len; i++) {
      if ((p[i] & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || cp < 0xa0))
      ok = false;
    if (ok) {
      fwrite(p, 1, (size_t)len, f);
      p += len;
    } else {
      fprintf(f, "\\x%02x", c);
      p++;
    }
  }
}

/* Nanoseconds as milliseconds with three decimals. */
static void put_ms(FILE *f, int width, int64_t ns) {
  bool neg = ns < 0;
  uint64_t u = neg ? 0 - (uint64_t)ns : (uint64_t)ns;
  uint64_t us = (u + 500) / 1000; /* to the nearest microsecond */
  char buf[40];
  snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%03" PRIu64, neg ? "-" : "",
           us / 1000, us % 1000);
  fprintf(f, "%*s", width, buf);
}

static const char *sort_title(int key) {
  switch (key) {
    case TR_SORT_SELF:
      return "self time (tottime)";
    case TR_SORT_CALLS:
      return "calls";
    case TR_SORT_NAME:
      return "name";
    default:
      return "total time (cumtime)";
  }
}

static void print_table(const tr_report *r, FILE *f, row *rows, size_t n,
                        int key, unsigned top) {
  sort_rows(r, rows, n, key);
  size_t shown = top && top < n ? top : n;
  if (shown < n)
    fprintf(f, "  top %zu of %zu functions by %s\n", shown, n, sort_title(key));
  else
    fprintf(f, "  %zu function%s by %s\n", n, n == 1 ? "" : "s",
            sort_title(key));
  fprintf(f, "  %14s %11s %11s %11s %11s  %s\n", "ncalls", "tottime", "percall",
          "cumtime", "percall", "function");
  for (size_t i = 0; i < shown; i++) {
    const tr_report_fn *s = &rows[i].s;
    char calls[48];
    if (s->primitive != s->calls)
      snprintf(calls, sizeof(calls), "%" PRIu64 "/%" PRIu64, s->calls,
               s->primitive);
    else
      snprintf(calls, sizeof(calls), "%" PRIu64, s->calls);
    fprintf(f, "  %14s ", calls);
    put_ms(f, 11, s->self_ns);
    fputc(' ', f);
    put_ms(f, 11, s->calls ? s->self_ns / (int64_t)s->calls : 0);
    fputc(' ', f);
    put_ms(f, 11, s->total_ns);
    fputc(' ', f);
    put_ms(f, 11, s->primitive ? s->total_ns / (int64_t)s->primitive : 0);
    fputs("  ", f);
    put_text(f, r->fns.bytes + r->fns.off[rows[i].fn], r->fns.nlen[rows[i].fn]);
    if (s->unfinished) fprintf(f, "  [%" PRIu64 " unfinished]", s->unfinished);
    fputc('\n', f);
  }
}

static int print_section(const tr_report *r, FILE *f, int64_t pi,
                         const tr_report_opts *o) {
  row *rows;
  int64_t n = collect(r, pi, o, &rows);
  if (n < 0) return (int)n;
  if (n == 0) {
    fputs("  no calls\n", f);
  } else if (o->sort == TR_SORT_BOTH) {
    print_table(r, f, rows, (size_t)n, TR_SORT_TOTAL, o->top);
    fputc('\n', f);
    print_table(r, f, rows, (size_t)n, TR_SORT_SELF, o->top);
  } else {
    print_table(r, f, rows, (size_t)n, o->sort, o->top);
  }
  free(rows);
  return 0;
}

static const char *format_name(const tr_report *r) {
  if (r->format == TR_TRACE_PERFETTO)
    return r->compressed ? "gzip-compressed Perfetto protobuf"
                         : "Perfetto protobuf";
  return r->compressed ? "gzip-compressed Chrome JSON" : "Chrome JSON";
}

static void proc_title(FILE *f, const proc *p) {
  if (p->name != NULL)
    put_text(f, p->name, p->name_len);
  else
    fputs("process", f);
  fprintf(f, " (pid %" PRId64 ")", p->pid);
}

int tr_report_print_text(tr_report *r, FILE *f, const tr_report_opts *o) {
  uint64_t dropped = 0, threads = 0;
  for (size_t i = 0; i < r->nprocs; i++) dropped += proc_dropped(&r->procs[i]);
  threads = r->nthreads;
  fputs("traced report: ", f);
  if (r->path) put_text(f, r->path, strlen(r->path));
  fprintf(f, " (%s%s)\n", format_name(r), r->cut_short ? ", cut short" : "");
  if (r->cut_short)
    fputs(
        "  the file ends before the trace does (was its writer stopped?);\n"
        "  every complete event before the cut is counted\n",
        f);
  fputs("  ", f);
  put_ms(f, 0, r->any_ts ? span(r->first_ts, r->last_ts) : 0);
  fprintf(f,
          " ms, first event to last; %zu process%s, %" PRIu64
          " thread%s, %" PRIu64 " events, %" PRIu64 " dropped\n",
          r->nprocs, r->nprocs == 1 ? "" : "es", threads,
          threads == 1 ? "" : "s", r->events, dropped);
  if (r->unfinished)
    fprintf(f,
            "  %" PRIu64
            " unfinished call%s (still running when %s thread's recording\n"
            "  ended) counted with the duration recorded\n",
            r->unfinished, r->unfinished == 1 ? "" : "s",
            r->unfinished == 1 ? "its" : "their");
  if (r->misnested)
    fprintf(f,
            "  %" PRIu64
            " call%s did not nest within the others on %s thread: the self\n"
            "  times around %s may be overstated\n",
            r->misnested, r->misnested == 1 ? "" : "s",
            r->misnested == 1 ? "its" : "their",
            r->misnested == 1 ? "it" : "them");
  if (r->skipped)
    fprintf(f,
            "  %" PRIu64
            " event%s skipped: a field the report needs is missing or not a\n"
            "  number\n",
            r->skipped, r->skipped == 1 ? "" : "s");
  fputs(
      "  times in milliseconds; tottime: self time (callees excluded);\n"
      "  cumtime: total time (a recursive function's outermost calls only);\n"
      "  ncalls: calls, or calls/outermost calls when they differ\n",
      f);
  uint32_t *ord = proc_order(r);
  if (ord == NULL) return -ENOMEM;
  size_t selected = 0;
  for (size_t i = 0; i < r->nprocs; i++)
    if (!o->has_pid || r->procs[i].pid == o->pid) selected++;
  int rc = 0;
  if (selected > 1) {
    fprintf(f, "\n== all %zu processes\n", selected);
    rc = print_section(r, f, -1, o);
  }
  for (size_t k = 0; rc == 0 && k < r->nprocs; k++) {
    const proc *p = &r->procs[ord[k]];
    if (o->has_pid && p->pid != o->pid) continue;
    fputs("\n== ", f);
    proc_title(f, p);
    fprintf(f,
            ": %" PRIu64 " thread%s, %" PRIu64 " events, %" PRIu64 " dropped",
            p->threads, p->threads == 1 ? "" : "s", p->events, proc_dropped(p));
    if (p->unfinished) fprintf(f, ", %" PRIu64 " unfinished", p->unfinished);
    fputc('\n', f);
    rc = print_section(r, f, ord[k], o);
  }
  free(ord);
  if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = -EIO;
  return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static int put_json_rows(const tr_report *r, FILE *f, int64_t pi,
                         const tr_report_opts *o) {
  row *rows;
  int64_t n = collect(r, pi, o, &rows);
  if (n < 0) return (int)n;
  sort_rows(r, rows, (size_t)n,
            o->sort == TR_SORT_BOTH ? TR_SORT_TOTAL : o->sort);
  size_t shown = o->top && o->top < (size_t)n ? o->top : (size_t)n;
  fputc('[', f);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < shown; i++) {
    const tr_report_fn *s = &rows[i].s;
    fputs(i ? ",\n    {\"name\":" : "\n    {\"name\":", f);
    tr_json_put_str(f, r->fns.bytes + r->fns.off[rows[i].fn],
                    r->fns.nlen[rows[i].fn]);
    fprintf(f,
            ",\"calls\":%" PRIu64 ",\"primitive_calls\":%" PRIu64
            ",\"self_ns\":%" PRId64 ",\"total_ns\":%" PRId64
            ",\"unfinished\":%" PRIu64 "}",
            s->calls, s->primitive, s->self_ns, s->total_ns, s->unfinished);
  }
  fputs(shown ? "\n  ]" : "]", f);
  free(rows);
  return rc;
}

int tr_report_print_json(tr_report *r, FILE *f, const tr_report_opts *o) {
  uint64_t dropped = 0;
  for (size_t i = 0; i < r->nprocs; i++) dropped += proc_dropped(&r->procs[i]);
  static const char *const sorts[] = {"total", "total", "self", "calls",
                                      "name"};
  fputs("{\"file\":", f);
  tr_json_put_str(f, r->path ? r->path : "", r->path ? strlen(r->path) : 0);
  fprintf(f,
          ",\"format\":\"%s\",\"compressed\":%s,\"cut_short\":%s,\n"
          " \"start_ns\":%" PRId64 ",\"end_ns\":%" PRId64
          ",\"duration_ns\":%" PRId64
          ",\n \"processes\":%zu,\"threads\":%zu,"
          "\"events\":%" PRIu64 ",\"dropped\":%" PRIu64
          ",\"unfinished\":%" PRIu64 ",\"misnested\":%" PRIu64
          ",\"skipped\":%" PRIu64 ",\n \"sort\":\"%s\",\"top\":%u,\n",
          r->format == TR_TRACE_PERFETTO ? "perfetto" : "json",
          r->compressed ? "true" : "false", r->cut_short ? "true" : "false",
          r->any_ts ? r->first_ts : 0, r->any_ts ? r->last_ts : 0,
          r->any_ts ? span(r->first_ts, r->last_ts) : 0, r->nprocs, r->nthreads,
          r->events, dropped, r->unfinished, r->misnested, r->skipped,
          sorts[o->sort >= 0 && o->sort <= TR_SORT_NAME ? o->sort : 0], o->top);
  fputs(" \"overall\":", f);
  int rc = put_json_rows(r, f, -1, o);
  if (rc < 0) return rc;
  fputs(",\n \"process_reports\":[", f);
  uint32_t *ord = proc_order(r);
  if (ord == NULL) return -ENOMEM;
  bool first = true;
  for (size_t k = 0; rc == 0 && k < r->nprocs; k++) {
    const proc *p = &r->procs[ord[k]];
    if (o->has_pid && p->pid != o->pid) continue;
    fprintf(f, "%s\n  {\"pid\":%" PRId64 ",\"name\":", first ? "" : ",",
            p->pid);
    first = false;
    if (p->name != NULL)
      tr_json_put_str(f, p->name, p->name_len);
    else
      fputs("null", f);
    fprintf(f,
            ",\"threads\":%" PRIu64 ",\"events\":%" PRIu64
            ",\"dropped\":%" PRIu64 ",\"unfinished\":%" PRIu64
            ",\n   \"functions\":",
            p->threads, p->events, proc_dropped(p), p->unfinished);
    if (rc == 0) rc = put_json_rows(r, f, ord[k], o);
    fputc('}', f);
  }
  free(ord);
  fputs("]}\n", f);
  if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = -EIO;
  return rc;
}

/* ---- reading a file ------------------------------------------------------ */

int tr_report_load(const char *path, FILE *err, const char *who,
                   tr_report **out) {
  *out = NULL;
  char msg[512];
  tr_trace *t;
  int rc = tr_trace_open_path(&t, path, msg, sizeof(msg));
  if (rc < 0) {
    fprintf(err, "%s: %s: %s\n", who, path, msg);
    return rc;
  }
  tr_report *r;
  rc = tr_report_new(&r);
  if (rc < 0) {
    tr_trace_close(t);
    fprintf(err, "%s: out of memory\n", who);
    return rc;
  }
  tr_trace_event ev;
  while ((rc = tr_trace_next(t, &ev)) > 0) {
    rc = tr_report_add(r, &ev);
    if (rc < 0) break;
  }
  if (rc == 0) rc = tr_report_finish(r);
  if (rc == -ENOMEM) {
    fprintf(err, "%s: %s: out of memory\n", who, path);
  } else if (rc < 0) {
    fprintf(err, "%s: %s: %s\n", who, path, tr_trace_error(t));
  } else {
    tr_report_set_source(r, path, tr_trace_get_format(t),
                         tr_trace_compressed(t), tr_trace_cut_short(t),
                         tr_trace_skipped(t));
  }
  tr_trace_close(t);
  if (rc < 0) {
    tr_report_free(r);
    return rc;
  }
  *out = r;
  return 0;
}

int tr_report_file(const char *path, FILE *out, FILE *err, const char *who) {
  tr_report *r;
  int rc = tr_report_load(path, err, who, &r);
  if (rc < 0) return rc;
  tr_report_opts o = {.sort = TR_SORT_BOTH, .top = 20};
  rc = tr_report_print_text(r, out, &o);
  tr_report_free(r);
  return rc;
}

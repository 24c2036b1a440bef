/* proc.c: one traced process on the daemon side: draining its threads'
 * rings and turning their records into trace events, pairing each thread's
 * enters and exits into complete slices. */
#include "proc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metaseen.h"
#include "recargs.h"

typedef struct drain_ctx {
  tr_proc *p;
  tr_thread *t;
} drain_ctx;

/* Cuts n so that s[0..n) fits in max-1 bytes and does not end inside a
 * UTF-8 sequence. */
static size_t clip_utf8(const char *s, size_t n, size_t max) {
  if (n < max) return n;
  n = max - 1;
  for (int i = 0; i < 3 && n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80; i++) n--;
  return n;
}

static uint16_t copy_name(char *dst, const char *s, size_t n) {
  n = clip_utf8(s, n, TR_NAME_MAX);
  memcpy(dst, s, n);
  dst[n] = '\0';
  return (uint16_t)n;
}

void tr_proc_init(tr_proc *p, pid_t kpid, uid_t uid, gid_t gid) {
  memset(p, 0, sizeof(*p));
  p->kpid = kpid;
  p->uid = uid;
  p->gid = gid;
  p->pid = (uint32_t)kpid;
  pthread_mutex_init(&p->lock, NULL);
  p->worker = -1;
  p->ops_tail = &p->ops;
}

/* Frees a thread and gives its memory back to its user's budget. */
static void thread_free(tr_proc *p, tr_thread *t) {
  if (p->usage != NULL) {
    p->usage->open_slots -= t->cap + t->argcap / sizeof(tr_open_call);
    p->usage->rings--;
    p->usage->ring_bytes -= t->ring.map_size;
  }
  tr_ringview_unmap(&t->ring);
  p->args_bytes -= t->argcap;
  free(t->argstack);
  free(t->stack);
  free(t);
}

void tr_proc_fini(tr_proc *p) {
  for (uint32_t i = 0; i < p->nthreads; i++) thread_free(p, p->threads[i]);
  free(p->threads);
  p->stack_slots = 0;
  tr_wstream_close(p->out); /* detached already, unless in a unit test */
  p->out = NULL;
  free(p->raw);
  free(p->pending);
  p->pending = NULL;
  if (p->has_arena) tr_arena_unmap(&p->arena);
  p->threads = NULL;
  p->nthreads = 0;
  p->raw = NULL;
  p->has_arena = false;
  pthread_mutex_destroy(&p->lock);
}

void tr_proc_set_arena(tr_proc *p, const tr_arenaview *a) {
  if (p->has_arena) tr_arena_unmap(&p->arena);
  p->arena = *a;
  p->has_arena = true;
}

void tr_proc_set_state(tr_proc *p, uint64_t state) {
  if (p->has_arena) tr_arena_set_state(&p->arena, state);
}

void tr_proc_beat(tr_proc *p, uint64_t beat) {
  if (p->has_arena) tr_arena_beat(&p->arena, beat);
}

/* The session's metadata memory is shared by every worker writing into
 * its output: each use holds its lock. */
static void seen_lock(tr_proc *p) {
  if (p->seen_mu != NULL) pthread_mutex_lock(p->seen_mu);
}

static void seen_unlock(tr_proc *p) {
  if (p->seen_mu != NULL) pthread_mutex_unlock(p->seen_mu);
}

static void write_process_meta(tr_proc *p, tr_metaseen *seen) {
  if (p->out == NULL) return;
  if (p->name_len > 0 &&
      (seen == NULL || tr_metaseen_name(seen, p->pid, 0, p->name, p->name_len)))
    tr_wstream_process_name(p->out, p->name, p->name_len, p->stats.dropped);
}

static void write_thread_name(tr_proc *p, tr_thread *t, tr_metaseen *seen) {
  if (p->out != NULL && t->name_len > 0 &&
      (seen == NULL ||
       tr_metaseen_name(seen, p->pid, t->tid, t->name, t->name_len)))
    tr_wstream_thread_name(p->out, t->tid, t->name, t->name_len, t->dropped);
}

void tr_proc_set_name(tr_proc *p, const char *name, size_t n) {
  p->name_len = copy_name(p->name, name, n);
}

int tr_proc_add_thread(tr_proc *p, const tr_ringview *v, const char *name,
                       size_t n) {
  tr_ringview view = *v;
  if (p->nthreads >= TR_PROC_MAX_THREADS) {
    tr_ringview_unmap(&view);
    return -EMFILE;
  }
  if (p->nthreads == p->threads_cap) {
    uint32_t cap = p->threads_cap ? p->threads_cap * 2 : 8;
    tr_thread **a = realloc(p->threads, cap * sizeof(*a));
    if (a == NULL) goto nomem;
    p->threads = a;
    p->threads_cap = cap;
  }
  tr_thread *t = calloc(1, sizeof(*t));
  if (t == NULL) goto nomem;
  t->ring = view;
  t->tid = view.tid;
  t->name_len = copy_name(t->name, name, n);
  /* The producer records from the moment it creates the ring, before this
   * RING_ADD is read: while in a session (joined, even if its worker has
   * not attached it yet), every drop since then counts. */
  bool recording = p->out != NULL || p->session != NULL;
  t->dropped_base = recording ? 0 : tr_ringview_dropped(&t->ring);
  p->threads[p->nthreads++] = t;
  if (p->usage != NULL) {
    p->usage->rings++;
    p->usage->ring_bytes += t->ring.map_size;
  }
  if (p->out != NULL) p->stats.threads++;
  return 0;
nomem:
  tr_ringview_unmap(&view);
  return -ENOMEM;
}

/* ---- names ----------------------------------------------------------------
 */

/* Reads string `id` out of the arena into p->raw (a private copy: the
 * producer may rewrite shared memory at any time). */
static bool name_raw(tr_proc *p, uint32_t id, uint32_t *len) {
  const char *src;
  if (!p->has_arena || tr_arena_get(&p->arena, id, &src, len) < 0) return false;
  if (p->raw == NULL && (p->raw = malloc(TR_STRING_MAX_LEN)) == NULL)
    return false;
  memcpy(p->raw, src, *len);
  return true;
}

/* The writer's view of this process's strings (tr_name_fn). */
static bool proc_name(void *ctx, uint32_t id, const char **s, uint32_t *len) {
  tr_proc *p = ctx;
  if (!name_raw(p, id, len)) return false;
  *s = p->raw;
  return true;
}

/* ---- arguments -------------------------------------------------------- */

/* Keeps the arguments of a call that was just pushed (innermost last).
 * Returns false when the process's budget, or its user's budget for open
 * calls (argument bytes count as open-call slots of 16 bytes), does not
 * allow it. */
static bool argstack_push(tr_proc *p, tr_thread *t, const uint8_t *a,
                          uint32_t n) {
  uint64_t need = (uint64_t)t->arglen + n + 4;
  if (need > t->argcap) {
    uint64_t cap = t->argcap ? (uint64_t)t->argcap * 2 : 4096;
    while (cap < need) cap *= 2;
    if (p->args_bytes - t->argcap + cap > TR_PROC_MAX_ARGS_BYTES) return false;
    uint64_t more = (cap - t->argcap) / sizeof(tr_open_call);
    tr_usage *u = p->usage;
    if (u != NULL && u->open_slots + more > u->open_slots_max) return false;
    uint8_t *s = realloc(t->argstack, cap);
    if (s == NULL) return false;
    p->args_bytes += cap - t->argcap;
    if (u != NULL) u->open_slots += more;
    t->argstack = s;
    t->argcap = (uint32_t)cap;
  }
  memcpy(t->argstack + t->arglen, a, n);
  memcpy(t->argstack + t->arglen + n, &n, 4);
  t->arglen = (uint32_t)need;
  return true;
}

static const uint8_t *argstack_top(const tr_thread *t, uint32_t *n) {
  memcpy(n, t->argstack + t->arglen - 4, 4);
  return t->argstack + t->arglen - 4 - *n;
}

static void argstack_pop(tr_thread *t) {
  uint32_t n;
  argstack_top(t, &n);
  t->arglen -= n + 4;
}

/* Takes the pending ARGS payload for the record being handled; *n = 0
 * when there is none. */
static const uint8_t *take_pending(tr_proc *p, uint32_t *n) {
  if (!p->has_pending) {
    *n = 0;
    return NULL;
  }
  p->has_pending = false;
  *n = p->pending_len;
  return p->pending;
}

/* Decodes a payload the daemon already validated (it is a private copy). */
static uint32_t decode(const uint8_t *a, uint32_t n, tr_arg *out,
                       uint32_t max) {
  int k = a != NULL && n > 0 ? tr_args_decode(a, n, out, max) : 0;
  return k > 0 ? (uint32_t)k : 0;
}

/* ---- pairing ----------------------------------------------------------------
 */

static int cat_of(uint16_t kind) {
  switch (kind) {
    case TR_REC_PY_CALL:
      return TR_CAT_PYTHON;
    case TR_REC_C_CALL:
      return TR_CAT_C;
    default:
      return TR_CAT_API;
  }
}

/* The call c (the innermost open call of t) ends at `end`: written as a
 * slice with the arguments of its enter and those of its exit (xa, xn
 * bytes; e.g. the return value), then its arguments leave the stack. */
static void close_call(tr_proc *p, tr_thread *t, const tr_open_call *c,
                       uint64_t end, bool unfinished, const uint8_t *xa,
                       uint32_t xn) {
  uint64_t dur = end >= c->ts ? end - c->ts : 0;
  if (c->flags & TR_CALL_NO_BEGIN) {
    /* Counted at its enter. */
  } else if (c->flags & TR_CALL_LATE_BEGIN && dur < p->min_duration_ns &&
             !unfinished) {
    /* The minimum duration shapes which Python and C calls are written
     * (pair_enter); spans and other events the program asked for are
     * always written, and so are calls cut short (their duration is not
     * known). */
    p->stats.filtered++;
  } else if (c->flags & TR_CALL_LATE_BEGIN &&
             tr_wstream_enter(p->out, t->tid, cat_of(c->kind), c->id, c->ts) <
                 0) {
    p->stats.malformed++;
  } else {
    tr_arg args[2 * TR_ARGS_MAX_ENTRIES];
    uint32_t nargs = 0, an = 0;
    if (c->flags & TR_CALL_ARGS) {
      const uint8_t *a = argstack_top(t, &an);
      nargs = decode(a, an, args, TR_ARGS_MAX_ENTRIES);
    }
    nargs += decode(xa, xn, args + nargs, TR_ARGS_MAX_ENTRIES);
    if (tr_wstream_slice(p->out, t->tid, cat_of(c->kind), c->id, c->ts, dur,
                         unfinished, args, nargs) < 0)
      p->stats.malformed++;
  }
  if (c->flags & TR_CALL_ARGS) argstack_pop(t);
}

/* Doubles a thread's stack, within the per-thread depth limit and the
 * per-process budget (so a hostile producer cannot make the daemon
 * allocate 16 MiB for each of thousands of rings). */
static bool stack_grow(tr_proc *p, tr_thread *t) {
  if (t->cap >= TR_PAIR_MAX_DEPTH) return false;
  uint32_t cap = t->cap ? t->cap * 2 : 64;
  if (cap > TR_PAIR_MAX_DEPTH) cap = TR_PAIR_MAX_DEPTH;
  if (p->stack_slots - t->cap + cap > TR_PROC_MAX_OPEN) return false;
  tr_usage *u = p->usage;
  if (u != NULL && u->open_slots - t->cap + cap > u->open_slots_max)
    return false;
  tr_open_call *s = realloc(t->stack, (size_t)cap * sizeof(*s));
  if (s == NULL) return false;
  p->stack_slots += cap - t->cap;
  if (u != NULL) u->open_slots += cap - t->cap;
  t->stack = s;
  t->cap = cap;
  return true;
}

static void pair_enter(tr_proc *p, tr_thread *t, const tr_record *r) {
  uint32_t an;
  const uint8_t *a = take_pending(p, &an);
  if (__builtin_expect(t->depth == t->cap, 0) && !stack_grow(p, t)) {
    t->overflow++;
    p->stats.dropped++;
    return;
  }
  tr_open_call *c = &t->stack[t->depth++];
  c->ts = r->ts;
  c->id = r->id;
  c->kind = r->kind;
  c->flags = 0;
  if (__builtin_expect(an != 0, 0)) {
    if (argstack_push(p, t, a, an))
      c->flags = TR_CALL_ARGS;
    else
      p->stats.args_dropped++;
  }
  if (p->min_duration_ns != 0 &&
      (r->kind == TR_REC_PY_CALL || r->kind == TR_REC_C_CALL)) {
    /* Whether it is written depends on its duration: the begin waits for
     * the end (docs/options.md says what that means for Perfetto). */
    c->flags |= TR_CALL_LATE_BEGIN;
    return;
  }
  /* Writers that stream begin/end pairs write the begin now, so each
   * thread's calls reach them in nesting order. */
  if (tr_wstream_enter(p->out, t->tid, cat_of(r->kind), r->id, r->ts) < 0) {
    c->flags |= TR_CALL_NO_BEGIN;
    p->stats.malformed++;
  }
}

/* An exit pops the innermost open call when the ids agree.  Otherwise the
 * call it names is searched a bounded way down the stack: the calls above
 * it end here as unfinished (their exits were never committed).  An exit
 * matching nothing is counted and ignored. */
static void pair_exit(tr_proc *p, tr_thread *t, const tr_record *r) {
  if (__builtin_expect(t->overflow != 0, 0)) {
    t->overflow--;
    return;
  }
  uint32_t xn;
  const uint8_t *xa = take_pending(p, &xn);
  uint32_t d = t->depth;
  if (__builtin_expect(d != 0 && t->stack[d - 1].id == r->id, 1)) {
    t->depth = d - 1;
    close_call(p, t, &t->stack[d - 1], r->ts, false, xa, xn);
    return;
  }
  if (d == 0) {
    p->stats.unmatched++;
    return;
  }
  uint32_t lo = d > TR_PAIR_SEARCH ? d - TR_PAIR_SEARCH : 0;
  uint32_t i = d - 1;
  for (;;) {
    if (i <= lo) {
      p->stats.unmatched++;
      return;
    }
    i--;
    if (t->stack[i].id == r->id) break;
  }
  for (uint32_t j = d - 1; j > i; j--)
    close_call(p, t, &t->stack[j], r->ts, true, NULL, 0);
  close_call(p, t, &t->stack[i], r->ts, false, xa, xn);
  t->depth = i;
}

static void on_thread_name(tr_proc *p, tr_thread *t, uint32_t id) {
  uint32_t n;
  if (!name_raw(p, id, &n)) {
    p->stats.malformed++;
    return;
  }
  t->name_len = copy_name(t->name, p->raw, n);
}

/* An ARGS record: its payload waits for the record after it.  Its length
 * must fill exactly its extra slots and its entries must decode. */
static void on_args(tr_proc *p, const tr_record *r, const tr_record *extra) {
  p->has_pending = false;
  uint32_t len = r->id;
  tr_arg scratch[TR_ARGS_MAX_ENTRIES];
  if (len == 0 || len > TR_ARGS_MAX_BYTES || (len + 15) / 16 != r->extra ||
      tr_args_decode((const uint8_t *)extra, len, scratch,
                     TR_ARGS_MAX_ENTRIES) < 0) {
    p->stats.malformed++;
    return;
  }
  if (p->pending == NULL && (p->pending = malloc(TR_ARGS_MAX_BYTES)) == NULL) {
    p->stats.args_dropped++;
    return;
  }
  memcpy(p->pending, extra, len);
  p->pending_len = len;
  p->has_pending = true;
}

static void on_record(void *ctx, const tr_record *r, const tr_record *extra) {
  drain_ctx *c = ctx;
  tr_proc *p = c->p;
  tr_thread *t = c->t;
  if (r->ts > t->last_ts) t->last_ts = r->ts;
  if (__builtin_expect(r->kind == TR_REC_ARGS, 0)) {
    on_args(p, r, extra);
    return;
  }
  switch (r->kind) {
    case TR_REC_PY_CALL:
    case TR_REC_C_CALL:
    case TR_REC_BEGIN:
      pair_enter(p, t, r);
      break;
    case TR_REC_PY_RETURN:
    case TR_REC_C_RETURN:
    case TR_REC_END:
      pair_exit(p, t, r);
      break;
    case TR_REC_INSTANT: {
      uint32_t an;
      const uint8_t *a = take_pending(p, &an);
      tr_arg args[TR_ARGS_MAX_ENTRIES];
      uint32_t nargs = decode(a, an, args, TR_ARGS_MAX_ENTRIES);
      if (tr_wstream_instant(p->out, t->tid, TR_CAT_API, r->id, r->ts, args,
                             nargs) < 0)
        p->stats.malformed++;
      break;
    }
    case TR_REC_COUNTER: {
      uint32_t an;
      const uint8_t *a = take_pending(p, &an);
      if (r->extra < 1) {
        p->stats.malformed++;
        break;
      }
      double v;
      memcpy(&v, &extra[0], sizeof(v));
      /* With arguments, they are the counter's series. */
      tr_arg args[TR_ARGS_MAX_ENTRIES];
      uint32_t nargs = decode(a, an, args, TR_ARGS_MAX_ENTRIES);
      if (tr_wstream_counter(p->out, t->tid, r->id, r->ts, v, args, nargs) < 0)
        p->stats.malformed++;
      break;
    }
    case TR_REC_THREAD_NAME:
      on_thread_name(p, t, r->id);
      break;
    case TR_REC_LOST:
      p->stats.lost += r->id;
      t->lost_marked += r->id;
      tr_wstream_lost(p->out, t->tid, r->ts, r->id);
      break;
    default:
      break; /* a newer kind: skipped (ringread already skipped `extra`) */
  }
  /* Arguments belong to the record right after them, whatever it was. */
  p->has_pending = false;
}

/* ---- draining ---------------------------------------------------------- */

static int64_t drain_thread(tr_proc *p, tr_thread *t, uint64_t budget,
                            bool *more) {
  if (p->out == NULL)
    return tr_ringview_drain_max(&t->ring, 0, NULL, NULL, NULL, budget, more);
  drain_ctx c = {p, t};
  tr_drain_stats st = {0, 0, 0};
  /* ARGS never reach across rings (a producer publishes them with the
   * record they belong to, and a batch never ends between the two). */
  p->has_pending = false;
  int64_t n = tr_ringview_drain_max(&t->ring, p->min_ts, on_record, &c, &st,
                                    budget, more);
  p->has_pending = false;
  p->stats.late += st.late;
  p->stats.malformed += st.malformed;
  return n;
}

/* Calls still open when a thread's recording ends become slices ending at
 * its last timestamp, marked unfinished. */
static void close_open_calls(tr_proc *p, tr_thread *t) {
  if (p->out != NULL)
    for (uint32_t j = t->depth; j-- > 0;)
      close_call(p, t, &t->stack[j], t->last_ts, true, NULL, 0);
  t->depth = 0;
  t->overflow = 0;
  t->arglen = 0;
}

void tr_proc_drop_marks(tr_proc *p, tr_drop_mark **out, uint32_t *n) {
  *out = NULL;
  *n = 0;
  if (p->nthreads == 0) return;
  tr_drop_mark *m = malloc(p->nthreads * sizeof(*m));
  if (m == NULL) return;
  for (uint32_t i = 0; i < p->nthreads; i++) {
    tr_thread *t = p->threads[i];
    m[i] =
        (tr_drop_mark){t->ring.dev, t->ring.ino, tr_ringview_dropped(&t->ring)};
  }
  *out = m;
  *n = p->nthreads;
}

/* The mark of t's ring among marks, or NULL. */
static const tr_drop_mark *find_mark(const tr_thread *t,
                                     const tr_drop_mark *marks,
                                     uint32_t nmarks) {
  for (uint32_t i = 0; i < nmarks; i++)
    if (marks[i].dev == t->ring.dev && marks[i].ino == t->ring.ino)
      return &marks[i];
  return NULL;
}

/* Adds what the producer dropped since the last count, up to `upto`. The
 * counter only grows; a value that went backwards is a lie and adds
 * nothing, and the base stays the highest value seen, so going back and up
 * again does not count the same drops twice. */
static void count_drops_upto(tr_proc *p, tr_thread *t, uint64_t upto) {
  uint64_t d = tr_ringview_dropped(&t->ring);
  if (upto < d) d = upto;
  if (d <= t->dropped_base) return;
  if (p->out != NULL) {
    p->stats.dropped += d - t->dropped_base;
    t->dropped += d - t->dropped_base;
  }
  t->dropped_base = d;
}

/* A thread's recording ends: the events its producer dropped that no LOST
 * record marked (it dropped until it ended, say, with a dead or stopped
 * daemon) get one marker at its last timestamp, so the markers in a trace
 * add up to the dropped count its summary gives. */
static void mark_drops(tr_proc *p, tr_thread *t, uint64_t upto) {
  count_drops_upto(p, t, upto);
  if (p->out != NULL && t->dropped > t->lost_marked) {
    tr_wstream_lost(p->out, t->tid, t->last_ts, t->dropped - t->lost_marked);
    t->lost_marked = t->dropped;
  }
}

int tr_proc_drain(tr_proc *p) {
  uint64_t used;
  bool more;
  return tr_proc_drain_some(p, UINT64_MAX, &used, &more);
}

int tr_proc_drain_some(tr_proc *p, uint64_t budget, uint64_t *used,
                       bool *more) {
  int rc = 0;
  *used = 0;
  *more = false;
  uint32_t n = p->nthreads;
  if (n == 0) return 0;
  /* Rings take turns at the head of the budget: each budgeted turn starts
   * one ring further round, so while one thread's ring always holds more
   * than a turn, every other ring is still reached within as many turns
   * as there are rings. */
  uint32_t first = budget != UINT64_MAX ? p->rr++ % n : 0;
  bool gone = false;
  for (uint32_t k = 0; k < n; k++) {
    uint32_t i = (first + k) % n;
    tr_thread *t = p->threads[i];
    if (t->broken) continue;
    if (*used >= budget) {
      *more = true;
      break;
    }
    /* Read `closed` before draining: if it was set, the drain that follows
     * sees the producer's final head. */
    bool closed = tr_ringview_closed(&t->ring);
    bool left = false;
    int64_t got = drain_thread(p, t, budget - *used, &left);
    if (got < 0) {
      t->broken = true;
      if (!p->failed) {
        p->failed_tid = t->tid;
        p->failed_rc = (int)got;
      }
      p->failed = true;
      rc = (int)got;
      continue;
    }
    *used += (uint64_t)got;
    if (left) *more = true;
    if (!closed || left) continue;
    close_open_calls(p, t);
    mark_drops(p, t, UINT64_MAX);
    seen_lock(p);
    write_thread_name(p, t, p->seen);
    seen_unlock(p);
    p->stack_slots -= t->cap;
    thread_free(p, t);
    p->threads[i] = NULL;
    gone = true;
  }
  /* Finished rings leave the list afterwards, so the others keep their
   * order (and their turns). */
  if (gone) {
    uint32_t j = 0;
    for (uint32_t i = 0; i < n; i++)
      if (p->threads[i] != NULL) p->threads[j++] = p->threads[i];
    p->nthreads = j;
  }
  return rc;
}

uint64_t tr_proc_dropped_now(const tr_proc *p) {
  if (p->out == NULL) return 0;
  uint64_t n = p->stats.dropped;
  for (uint32_t i = 0; i < p->nthreads; i++) {
    uint64_t d = tr_ringview_dropped(&p->threads[i]->ring);
    if (d > p->threads[i]->dropped_base) n += d - p->threads[i]->dropped_base;
  }
  return n;
}

int tr_proc_attach(tr_proc *p, tr_writer *out, unsigned lane, tr_metaseen *seen,
                   pthread_mutex_t *seen_mu, uint64_t min_ts,
                   const tr_drop_mark *marks, uint32_t nmarks) {
  tr_wstream *s;
  int rc = tr_wstream_open(out, lane, p->pid, proc_name, p, &s);
  if (rc < 0) return rc;
  tr_wstream_close(p->out);
  p->out = s;
  p->seen = seen;
  p->seen_mu = seen_mu;
  p->min_ts = min_ts;
  memset(&p->stats, 0, sizeof(p->stats));
  p->stats.threads = p->nthreads;
  for (uint32_t i = 0; i < p->nthreads; i++) {
    tr_thread *t = p->threads[i];
    t->depth = 0;
    t->overflow = 0;
    t->arglen = 0;
    /* The base moves up to the ring's mark taken at the join (the
     * producer's drops before it belong elsewhere), and never down; a
     * ring without one was registered after the join and keeps the base
     * its registration gave it. */
    const tr_drop_mark *m = find_mark(t, marks, nmarks);
    if (m != NULL && m->dropped > t->dropped_base) t->dropped_base = m->dropped;
    t->dropped = 0;
    t->lost_marked = 0;
  }
  /* What the rings hold from before min_ts was not meant for this output
   * (an adopted worker's leftovers): discarded, and not counted as late,
   * which is for records that arrive after the output began.  Records
   * from min_ts on are this output's first events: the attach may run a
   * little after the join that asked for it (on the process's worker). */
  tr_proc_drain(p);
  p->stats.late = 0;
  return 0;
}

void tr_proc_detach(tr_proc *p, tr_proc_stats *st, const tr_drop_mark *marks,
                    uint32_t nmarks) {
  tr_metaseen *seen = p->seen;
  if (p->out == NULL) return;
  tr_proc_drain(p);
  for (uint32_t i = 0; i < p->nthreads; i++) {
    tr_thread *t = p->threads[i];
    close_open_calls(p, t);
    const tr_drop_mark *m = find_mark(t, marks, nmarks);
    mark_drops(p, t,
               m != NULL       ? m->dropped
               : marks != NULL ? t->dropped_base
                               : UINT64_MAX);
  }
  /* Names are written once per output, when recording ends, so each
   * carries the final name (see docs/daemon.md, "Metadata").  A pid seen
   * before in this output (it exec()ed) only adds what changed. */
  seen_lock(p);
  bool again = seen != NULL && tr_metaseen_has(seen, p->pid, 0);
  write_process_meta(p, seen);
  for (uint32_t i = 0; i < p->nthreads; i++)
    write_thread_name(p, p->threads[i], seen);
  seen_unlock(p);
  /* The arena's `dropped` is loaded relaxed, here and below: a count the
   * producer adds to (arena_append), ordering nothing. */
  if (!again || p->stats.dropped > 0 || p->stats.late > 0 ||
      p->stats.malformed > 0 || p->stats.args_dropped > 0 ||
      (p->has_arena && atomic_load_explicit(&p->arena.hdr->dropped,
                                            memory_order_relaxed) > 0)) {
    tr_wstream_sort_index(p->out, p->sort_index);
    char label[256];
    int n = snprintf(label, sizeof(label), "ppid %u", p->ppid);
    if (p->stats.dropped > 0)
      n += snprintf(label + n, sizeof(label) - (size_t)n,
                    ", traced: %llu events dropped",
                    (unsigned long long)p->stats.dropped);
    if (p->stats.late + p->stats.malformed > 0 && n > 0 &&
        (size_t)n < sizeof(label))
      n += snprintf(label + n, sizeof(label) - (size_t)n,
                    ", traced: %llu late, %llu malformed records discarded",
                    (unsigned long long)p->stats.late,
                    (unsigned long long)p->stats.malformed);
    /* Names the producer could not intern (string table full) are shown
     * as "<unknown>"; the events themselves were kept. */
    uint32_t lost_names =
        p->has_arena
            ? atomic_load_explicit(&p->arena.hdr->dropped, memory_order_relaxed)
            : 0;
    if (lost_names > 0 && n > 0 && (size_t)n < sizeof(label))
      n += snprintf(label + n, sizeof(label) - (size_t)n,
                    ", traced: %u names lost (string table full)", lost_names);
    /* A process that recorded nothing would be a bare name: say why.
     * Its first call opens its first ring, so no ring means no call. */
    if (!again && p->stats.threads == 0 && n > 0 && (size_t)n < sizeof(label))
      n += snprintf(label + n, sizeof(label) - (size_t)n, ", %s",
                    p->ended ? TR_LABEL_ENDED_EARLY : TR_LABEL_IDLE);
    /* Calls whose arguments the daemon had no room for were written
     * without them. */
    if (p->stats.args_dropped > 0 && n > 0 && (size_t)n < sizeof(label))
      n += snprintf(label + n, sizeof(label) - (size_t)n,
                    ", traced: %llu argument sets dropped (memory limit)",
                    (unsigned long long)p->stats.args_dropped);
    if (n < 0 || (size_t)n >= sizeof(label)) n = (int)strlen(label);
    tr_wstream_labels(p->out, label, (size_t)n);
  }
  if (st != NULL) {
    st->threads += p->stats.threads;
    st->dropped += p->stats.dropped;
    st->lost += p->stats.lost;
    st->late += p->stats.late;
    st->malformed += p->stats.malformed;
    st->unmatched += p->stats.unmatched;
    st->filtered += p->stats.filtered;
  }
  tr_wstream_close(p->out);
  p->out = NULL;
  /* The session's metadata memory and its lock go with the session. */
  p->seen = NULL;
  p->seen_mu = NULL;
}

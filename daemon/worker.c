/* worker.c: the drain workers (worker.h): each a thread serving its own
 * processes in turns, carrying out the loop's requests in order. */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "server.h"

/* A process's turn: at most this much cost before the next one's turn. */
#define TURN_COST (TR_DRAIN_QUANTUM * 4u)
/* A final drain may take this many rings' worth of slots past what the
 * process had committed when it was asked to leave. */
#define FINAL_EXTRA_RINGS 2u

struct tr_worker {
  tr_workers *ws;
  unsigned index;
  pthread_t thread;
  pthread_mutex_t mu; /* guards procs, nprocs, kicked, stop */
  pthread_cond_t cv;
  tr_proc **procs; /* assigned processes; removed only by this thread */
  uint32_t nprocs, cap;
  bool kicked;
  bool stop;
  bool running;
  tr_tsclock *clock; /* this worker's TSC conversion, or NULL */
  /* This thread's private copy of procs for one pass. */
  tr_proc **snap;
  uint32_t snap_cap;
  uint32_t rr; /* where the next pass starts (fairness) */
};

/* ---- completions --------------------------------------------------------- */

static void post_done(tr_workers *ws, tr_op *op) {
  op->next = NULL;
  pthread_mutex_lock(&ws->done_mu);
  *ws->done_tail = op;
  ws->done_tail = &op->next;
  pthread_mutex_unlock(&ws->done_mu);
  uv_async_send(ws->async);
}

tr_op *tr_workers_take_done(tr_workers *ws) {
  pthread_mutex_lock(&ws->done_mu);
  tr_op *all = ws->done;
  ws->done = NULL;
  ws->done_tail = &ws->done;
  pthread_mutex_unlock(&ws->done_mu);
  return all;
}

/* ---- cost and fairness ---------------------------------------------------
 * Cost = ring slots consumed + bytes formatted / 16: one call of a short
 * name costs about 2 + 8, a call of a 4000-byte name about 2 + 500, so a
 * user sending long names gets proportionally fewer events per turn. */

/* How much p may drain now: its turn, cut to its user's share and rate. */
static uint64_t allowance(tr_workers *ws, const tr_proc *p) {
  uint64_t allow = TURN_COST;
  tr_usage *u = p->usage;
  if (u == NULL) return allow;
  /* Relaxed: counters read and charged on their own (proc.h). */
  if (atomic_load_explicit(&ws->fair, memory_order_relaxed)) {
    uint64_t used = atomic_load_explicit(&u->window_used, memory_order_relaxed);
    uint64_t left = used >= ws->window_share ? 0 : ws->window_share - used;
    if (left < allow) allow = left;
  }
  if (atomic_load_explicit(&ws->rate_on, memory_order_relaxed)) {
    uint64_t t = atomic_load_explicit(&u->rate_tokens, memory_order_relaxed);
    if (t < allow) allow = t;
  }
  return allow;
}

static void charge(tr_workers *ws, tr_proc *p, uint64_t cost, bool more) {
  tr_usage *u = p->usage;
  if (u == NULL) return;
  atomic_fetch_add_explicit(&u->window_used, cost, memory_order_relaxed);
  if (!atomic_load_explicit(&ws->rate_on, memory_order_relaxed)) return;
  uint64_t t = atomic_load_explicit(&u->rate_tokens, memory_order_relaxed);
  uint64_t n;
  do {
    n = cost < t ? t - cost : 0;
  } while (!atomic_compare_exchange_weak_explicit(
      &u->rate_tokens, &t, n, memory_order_relaxed, memory_order_relaxed));
  if (more && n == 0)
    atomic_fetch_add_explicit(&u->throttled, 1, memory_order_relaxed);
}

/* Drains p within `allow` cost; returns the cost, *slots the ring slots
 * consumed, *more whether records were left. */
static uint64_t drain_turn(tr_worker *w, tr_proc *p, uint64_t allow,
                           uint64_t *slots, bool *more) {
  *more = false;
  *slots = 0;
  if (allow == 0 || p->nthreads == 0) return 0;
  uint64_t used = 0, bytes0 = 0, bytes1 = 0;
  if (p->out != NULL) bytes0 = tr_writer_lane_bytes(p->out->w, w->index);
  /* Slots first: a turn of `allow` slots formats at most allow events. */
  if (tr_proc_drain_some(p, allow, &used, more) < 0 &&
      !atomic_exchange(&p->failed_noted, true)) {
    tr_op *op = calloc(1, sizeof(*op));
    if (op != NULL) {
      op->kind = TR_OP_FAILED;
      op->proc = p;
      post_done(w->ws, op);
    }
  }
  if (p->out != NULL) bytes1 = tr_writer_lane_bytes(p->out->w, w->index);
  *slots = used;
  return used + (bytes1 - bytes0) / 16;
}

/* ---- requests ------------------------------------------------------------ */

static void remove_proc(tr_worker *w, tr_proc *p) {
  pthread_mutex_lock(&w->mu);
  for (uint32_t i = 0; i < w->nprocs; i++) {
    if (w->procs[i] == p) {
      w->procs[i] = w->procs[--w->nprocs];
      break;
    }
  }
  pthread_mutex_unlock(&w->mu);
}

/* Serves p's oldest request.  Returns true when it is done (the next may
 * start), false when it needs more turns (a final drain). */
static bool serve_op(tr_worker *w, tr_proc *p, tr_op *op, uint64_t *cost) {
  switch (op->kind) {
    case TR_OP_ATTACH: {
      /* Before the attach: it writes what the rings already hold, which
       * must be filtered like the rest. */
      p->min_duration_ns = op->min_duration_ns;
      int rc = tr_proc_attach(p, op->writer, w->index, op->seen, op->seen_mu,
                              op->min_ts, op->marks, op->nmarks);
      if (rc < 0)
        tr_log(TR_LOG_ERROR, "event=attach_error pid=%u uid=%lu reason=\"%s\"",
               p->pid, (unsigned long)p->uid, strerror(-rc));
      return true;
    }
    case TR_OP_DETACH:
    case TR_OP_CLOSE: {
      /* What was committed before the request is drained first, in turns
       * like any other work, so a huge final drain does not hold this
       * worker (and the other processes it serves) for long. */
      bool more = false;
      if (op->budget > 0 && !p->failed) {
        uint64_t slots;
        *cost += drain_turn(w, p, TURN_COST, &slots, &more);
        op->budget = slots < op->budget ? op->budget - slots : 0;
      }
      if (more && op->budget > 0) return false;
      tr_writer *out = p->out != NULL ? p->out->w : NULL;
      memset(&op->stats, 0, sizeof(op->stats));
      if (op->kind == TR_OP_CLOSE) p->ended = true;
      tr_proc_detach(p, &op->stats, op->marks, op->nmarks);
      if (out != NULL) tr_writer_lane_flush(out, w->index, true);
      return true;
    }
    case TR_OP_FAILED:
      break;
  }
  return true;
}

/* Serves process p (under its lock): requests in order, then a turn of
 * draining.  Returns true when it has more to do.  *closed gets the CLOSE
 * request once it is done: p is then out of this worker's list, and the
 * caller unlocks it before posting the completion, after which the loop
 * may free it. */
static bool serve(tr_worker *w, tr_proc *p, uint64_t *cost, tr_op **closed) {
  *closed = NULL;
  while (p->ops != NULL) {
    tr_op *op = p->ops;
    if (!serve_op(w, p, op, cost)) return true;
    p->ops = op->next;
    if (p->ops == NULL) p->ops_tail = &p->ops;
    free(op->marks);
    op->marks = NULL;
    if (op->kind == TR_OP_ATTACH) {
      free(op);
    } else if (op->kind == TR_OP_CLOSE) {
      remove_proc(w, p);
      *closed = op;
      return false;
    } else {
      post_done(w->ws, op);
    }
  }
  /* A session whose file cannot keep up is not fed: its producers wait
   * (their heartbeat stays fresh), and other sessions go on. */
  if (p->out != NULL && tr_writer_backlog(p->out->w) > TR_BACKLOG_MAX)
    return false;
  if (p->failed) return false;
  bool more;
  uint64_t slots, allow = allowance(w->ws, p);
  uint64_t c = drain_turn(w, p, allow, &slots, &more);
  *cost += c;
  charge(w->ws, p, c, more);
  return more && allow > 0;
}

/* ---- the thread ---------------------------------------------------------- */

static void flush_lanes(tr_worker *w, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    tr_proc *p = w->snap[i];
    if (p == NULL) continue;
    pthread_mutex_lock(&p->lock);
    if (p->out != NULL) tr_writer_lane_flush(p->out->w, w->index, false);
    pthread_mutex_unlock(&p->lock);
  }
}

/* One pass: turns for every process until none has more or the pass's
 * cost is spent.  Returns true when work was left (the next pass starts at
 * once instead of after a tick). */
static bool pass(tr_worker *w, uint32_t n) {
  uint64_t cost = 0;
  bool more = true;
  while (more && cost < TR_PASS_COST_MAX) {
    more = false;
    for (uint32_t k = 0; k < n; k++) {
      uint32_t i = (w->rr + k) % n;
      tr_proc *p = w->snap[i];
      if (p == NULL) continue;
      /* The loop holds the lock only briefly; never wait for it here. */
      if (pthread_mutex_trylock(&p->lock) != 0) {
        more = true;
        continue;
      }
      tr_op *closed;
      if (serve(w, p, &cost, &closed)) more = true;
      pthread_mutex_unlock(&p->lock);
      if (closed != NULL) {
        w->snap[i] = NULL; /* the loop frees it once told */
        post_done(w->ws, closed);
      }
    }
  }
  w->rr++;
  flush_lanes(w, n);
  return more;
}

static void *worker_main(void *arg) {
  tr_worker *w = arg;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    if (!w->kicked) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)TR_DRAIN_INTERVAL_MS * 1000000L;
      if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
      }
      pthread_cond_timedwait(&w->cv, &w->mu, &ts);
      if (w->stop) break;
    }
    w->kicked = false;
    uint32_t n = w->nprocs;
    if (n > w->snap_cap) {
      tr_proc **s = realloc(w->snap, n * sizeof(*s));
      if (s == NULL)
        n = w->snap_cap; /* serve those that fit this time */
      else {
        w->snap = s;
        w->snap_cap = n;
      }
    }
    if (n > 0) memcpy(w->snap, w->procs, n * sizeof(*w->snap));
    pthread_mutex_unlock(&w->mu);
    bool more = n > 0 && pass(w, n);
    pthread_mutex_lock(&w->mu);
    if (more) w->kicked = true;
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---- the pool ------------------------------------------------------------ */

int tr_workers_start(tr_workers *ws, unsigned n, uv_async_t *async, bool tsc) {
  memset(ws, 0, sizeof(*ws));
  if (n == 0) n = 1;
  if (n > TR_THREADS_MAX) n = TR_THREADS_MAX;
  ws->w = calloc(n, sizeof(*ws->w));
  if (ws->w == NULL) return -ENOMEM;
  ws->async = async;
  ws->done_tail = &ws->done;
  ws->window_share = TR_DRAIN_PASS_PER_UID;
  pthread_mutex_init(&ws->done_mu, NULL);
  int rc = 0;
  for (unsigned i = 0; i < n; i++) {
    tr_worker *w = &ws->w[i];
    w->ws = ws;
    w->index = i;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (tsc) {
      w->clock = malloc(sizeof(*w->clock));
      if (w->clock == NULL) {
        rc = -ENOMEM;
        break;
      }
      tr_tsclock_init(w->clock, NULL, NULL, 1000);
    }
    int e = pthread_create(&w->thread, NULL, worker_main, w);
    if (e != 0) {
      rc = -e;
      break;
    }
    w->running = true;
    ws->n = i + 1;
  }
  ws->started = true;
  if (rc < 0) tr_workers_stop(ws);
  return rc;
}

void tr_workers_stop(tr_workers *ws) {
  if (!ws->started) return;
  for (unsigned i = 0; i < ws->n; i++) {
    tr_worker *w = &ws->w[i];
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
  }
  for (unsigned i = 0; i < ws->n; i++) {
    tr_worker *w = &ws->w[i];
    if (w->running) pthread_join(w->thread, NULL);
    free(w->procs);
    free(w->snap);
    free(w->clock);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
  }
  /* Ops still queued (their processes' connections are gone). */
  for (tr_op *op = tr_workers_take_done(ws), *next; op != NULL; op = next) {
    next = op->next;
    free(op->marks);
    free(op);
  }
  pthread_mutex_destroy(&ws->done_mu);
  free(ws->w);
  ws->w = NULL;
  ws->n = 0;
  ws->started = false;
}

int tr_workers_add(tr_workers *ws, tr_proc *p) {
  tr_worker *best = NULL;
  uint32_t fewest = UINT32_MAX;
  for (unsigned i = 0; i < ws->n; i++) {
    pthread_mutex_lock(&ws->w[i].mu);
    uint32_t n = ws->w[i].nprocs;
    pthread_mutex_unlock(&ws->w[i].mu);
    if (n < fewest) {
      fewest = n;
      best = &ws->w[i];
    }
  }
  pthread_mutex_lock(&best->mu);
  if (best->nprocs == best->cap) {
    uint32_t cap = best->cap ? best->cap * 2 : 16;
    tr_proc **a = realloc(best->procs, cap * sizeof(*a));
    if (a == NULL) {
      pthread_mutex_unlock(&best->mu);
      return -ENOMEM;
    }
    best->procs = a;
    best->cap = cap;
  }
  p->worker = (int)best->index;
  best->procs[best->nprocs++] = p;
  pthread_mutex_unlock(&best->mu);
  return 0;
}

tr_tsclock *tr_workers_clock(tr_workers *ws, const tr_proc *p) {
  return p->worker < 0 ? NULL : ws->w[p->worker].clock;
}

void tr_workers_kick(tr_workers *ws, const tr_proc *p) {
  if (p->worker < 0) return;
  tr_worker *w = &ws->w[p->worker];
  pthread_mutex_lock(&w->mu);
  w->kicked = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

void tr_workers_request(tr_workers *ws, tr_op *op) {
  tr_proc *p = op->proc;
  op->next = NULL;
  if (op->kind == TR_OP_DETACH || op->kind == TR_OP_CLOSE) {
    /* What the rings hold now, and some more for what producers commit
     * before they see the disabled state word. */
    uint64_t budget = 0;
    pthread_mutex_lock(&p->lock);
    for (uint32_t i = 0; i < p->nthreads; i++)
      budget += (uint64_t)p->threads[i]->ring.capacity * FINAL_EXTRA_RINGS;
    pthread_mutex_unlock(&p->lock);
    op->budget = budget + TR_RING_MIN_SLOTS;
  }
  pthread_mutex_lock(&p->lock);
  *p->ops_tail = op;
  p->ops_tail = &op->next;
  pthread_mutex_unlock(&p->lock);
  tr_workers_kick(ws, p);
}

/* worker.h: the drain workers, threads that empty the rings of the traced
 * processes assigned to them, pair their calls and write the events through
 * their sessions' writers (one writer lane per worker), so that the event
 * loop only does connections, control and scheduling (docs/pipeline.md).
 *
 * Ownership.  A process (tr_proc) is assigned to one worker when it says
 * HELLO and stays with it for life, so its records are drained, paired and
 * written by one thread, in order.  The worker serves it under p->lock; the
 * loop takes the same lock for the short operations it does itself (a ring
 * added, a name changed, counters read).  Everything that drains or writes
 * (attaching to a session's output, leaving it, the final drain of a
 * connection that closed) is a request, a tr_op, that the loop queues on the
 * process and the worker carries out in order; requests that the loop must
 * hear back from come back through tr_workers' completion queue, which the
 * loop empties in its async callback.
 *
 * Work is bounded per turn: a process gets at most a quantum of cost (ring
 * slots plus bytes formatted) per turn, its user at most a share per
 * window and its record rate, and a final drain is budgeted like any other
 * (a closing connection's rings stay mapped and queued until drained). */
#ifndef TRACED_WORKER_H
#define TRACED_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "metaseen.h"
#include "output/writer.h"
#include "proc.h"
#include "server.h"
#include "tsclock.h"

/* A worker's pass over its processes ends after this much cost, so its
 * lanes are flushed (the file lags by about a pass) and requests served. */
#define TR_PASS_COST_MAX (4u << 20)
/* A session's writer with more than this many bytes sealed and not yet
 * written (a slow disk) is not fed: its processes are not drained, their
 * producers wait, nothing is lost, and other sessions go on.  Writing a
 * JSON trace into the page cache is slower than formatting it, so a
 * session's backlog sits at this bound: 64 MiB made the daemon's RSS
 * 86 MB on a 1 GB trace, 16 MiB makes it 25-28 MB at the same speed
 * (docs/benchmarks.md, "Cheaper bytes"). */
#define TR_BACKLOG_MAX (16u << 20)

typedef enum tr_op_kind {
  TR_OP_ATTACH = 1, /* start writing into a session's output */
  TR_OP_DETACH = 2, /* drain what is committed, then leave the output */
  TR_OP_CLOSE = 3,  /* the connection closed: DETACH, then let go of it */
  TR_OP_FAILED = 4, /* (completion only) a ring was found broken */
} tr_op_kind;

/* A request from the loop to a process's worker.  The loop allocates it;
 * ATTACH is freed by the worker, the others come back through the
 * completion queue and the loop frees them. */
typedef struct tr_op {
  struct tr_op *next;
  tr_op_kind kind;
  tr_proc *proc;
  /* ATTACH */
  tr_writer *writer;
  tr_metaseen *seen;
  pthread_mutex_t *seen_mu; /* guards *seen (several workers write it) */
  uint64_t min_ts;
  uint64_t min_duration_ns;
  /* ATTACH, DETACH, CLOSE: the rings' drop counters when the state word
   * changed (proc.h), or NULL; the op owns them. */
  tr_drop_mark *marks;
  uint32_t nmarks;
  /* DETACH, CLOSE: the session being left (opaque here), and the
   * process's counters for it when done. */
  void *session;
  tr_proc_stats stats;
  uint64_t budget; /* slots the final drain may still take before the
                      process leaves whatever its rings hold (a producer
                      that keeps writing after it was disabled) */
} tr_op;

typedef struct tr_worker tr_worker;

typedef struct tr_workers {
  unsigned n;
  tr_worker *w;
  /* Completions for the loop: ops done, failures noticed. */
  pthread_mutex_t done_mu;
  tr_op *done;
  tr_op **done_tail;
  uv_async_t *async; /* the loop's wake-up (borrowed) */
  /* Fair sharing among users (docs/service.md): read by the workers. */
  _Atomic bool fair;     /* more than one user is connected */
  _Atomic bool rate_on;  /* a record rate limit is set */
  uint64_t window_share; /* cost per user per window when fair */
  bool started;
} tr_workers;

/* Starts n workers (n >= 1).  `async` is woken whenever a completion is
 * queued.  `tsc`: give each worker its own TSC clock (tsclock.h is not
 * thread-safe).  Returns 0 or a negative errno. */
int tr_workers_start(tr_workers *ws, unsigned n, uv_async_t *async, bool tsc);

/* Stops and joins every worker (their processes must be gone). */
void tr_workers_stop(tr_workers *ws);

/* Assigns p to the worker with the fewest processes; p->worker says which.
 * The worker serves it from its next pass on.  Returns 0 or -ENOMEM. */
int tr_workers_add(tr_workers *ws, tr_proc *p);

/* The TSC clock of p's worker (NULL without TSC clocks). */
tr_tsclock *tr_workers_clock(tr_workers *ws, const tr_proc *p);

/* Queues op on its process (takes p->lock) and wakes the worker.  The
 * process must have a worker. */
void tr_workers_request(tr_workers *ws, tr_op *op);

/* Wakes p's worker for an early pass (a DOORBELL). */
void tr_workers_kick(tr_workers *ws, const tr_proc *p);

/* Takes every completion queued so far (oldest first), for the loop. */
tr_op *tr_workers_take_done(tr_workers *ws);

/* The lane a process writes its events into: its worker's index. */
static inline unsigned tr_workers_lane(const tr_proc *p) {
  return p->worker < 0 ? 0u : (unsigned)p->worker;
}

#endif

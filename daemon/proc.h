/* proc.h: a traced process as the daemon sees it: who it is, its string
 * arena, its threads' rings, and how their records become trace events
 * (enter/exit records paired per thread into complete slices).
 *
 * A tr_proc lives inside its connection.  It writes events only while it is
 * attached to an output (a session's writer, tr_proc_attach); otherwise its
 * rings are still drained, and what they hold is discarded.  Process and
 * thread names are written once per output, when recording ends (a ring
 * closes, the process detaches), so each carries its final name.  Nothing
 * here knows about sockets or the event loop. */
#ifndef TRACED_PROC_H
#define TRACED_PROC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/platform.h"
#include "output/writer.h"
#include "ringread.h"

#define TR_NAME_MAX 256              /* process and thread display names */
#define TR_PROC_MAX_THREADS 4096     /* rings open at once per process */
#define TR_PAIR_MAX_DEPTH (1u << 20) /* open calls tracked per thread */
#define TR_PAIR_SEARCH 256           /* frames searched below a mismatch */
#define TR_PROC_MAX_OPEN (1u << 22)  /* open-call slots per process (64 MiB) */
/* Argument payloads of open calls kept per process (all threads). */
#define TR_PROC_MAX_ARGS_BYTES (64u * 1024u * 1024u)

struct tr_session;

/* A ring's producer-side drop counter as it was when its process's state
 * word changed (a session joined or left), by the ring's identity: the
 * loop takes these marks at the change, the worker attributes drops with
 * them when it attaches or detaches later, so every drop is counted in the
 * session it happened in, whenever the worker gets to it. */
typedef struct tr_drop_mark {
  uint64_t dev, ino;
  uint64_t dropped;
} tr_drop_mark;

/* A call seen entering and not yet exiting. */
typedef struct tr_open_call {
  uint64_t ts;
  uint32_t id;
  uint16_t kind;
  uint16_t flags; /* TR_CALL_* */
} tr_open_call;
#define TR_CALL_ARGS 1u

/* The writer refused the call's enter (its name does not resolve): its
 * exit writes nothing either. */
#define TR_CALL_NO_BEGIN 2u
/* Its begin is written with its end, if at all (--min-duration). */
#define TR_CALL_LATE_BEGIN 4u

typedef struct tr_thread {
  tr_ringview ring;
  uint32_t tid;
  bool broken;         /* impossible ring positions: never read again */
  tr_open_call *stack; /* grows by doubling up to TR_PAIR_MAX_DEPTH */
  uint32_t depth;
  uint32_t cap;
  uint32_t overflow; /* enters beyond the depth limit, not kept */
  uint64_t last_ts;  /* latest timestamp seen: unfinished calls end here */
  /* Argument payloads of the open calls that have some, innermost last:
   * each is its bytes followed by their u32 length. */
  uint8_t *argstack;
  uint32_t arglen, argcap;
  uint64_t dropped_base; /* ring `dropped` already counted (the highest
                            value seen when last counted) */
  uint16_t name_len;
  char name[TR_NAME_MAX];
  uint64_t dropped;     /* events its producer dropped into this output */
  uint64_t lost_marked; /* of which LOST markers in the output tell */
} tr_thread;

/* Counters since the last tr_proc_attach. */
/* The label of a process that recorded nothing into an output (joined,
 * named, no thread ever recorded): it ended before its first call, or was
 * still waiting for one when the session ended (an idle pool worker). */
#define TR_LABEL_ENDED_EARLY \
  "traced: nothing recorded (it ended before its first call)"
#define TR_LABEL_IDLE \
  "traced: nothing recorded (no call before the session ended)"

typedef struct tr_proc_stats {
  uint64_t threads;      /* rings that wrote into this output */
  uint64_t dropped;      /* events the producer refused (ring full) + enters
                            beyond the depth limit */
  uint64_t lost;         /* sum of LOST records (informational) */
  uint64_t late;         /* records older than the output's start */
  uint64_t malformed;    /* bad records, bad string ids */
  uint64_t unmatched;    /* exits without an open call */
  uint64_t filtered;     /* calls shorter than min_duration_ns, not written */
  uint64_t args_dropped; /* argument sets not kept: memory limit */
} tr_proc_stats;

/* What one user's connections hold in the daemon, shared by all of that
 * uid's processes (the server owns it); limits are checked against it.
 * The loop (admission, RING_ADD) and the drain workers (rings closing,
 * call stacks growing, drains charged) update the counters concurrently:
 * they are atomics, each a total read and updated on its own (a check
 * and the update after it may let two threads pass a limit together by
 * one step each, which the limits tolerate). */
typedef struct tr_usage {
  uid_t uid;
  uint32_t refs;                 /* connections of this uid (loop only) */
  _Atomic uint32_t rings;        /* rings mapped */
  _Atomic uint64_t ring_bytes;   /* bytes of rings mapped */
  _Atomic uint64_t open_slots;   /* open-call slots allocated */
  uint64_t open_slots_max;       /* limit for open_slots (set at creation) */
  _Atomic uint64_t rate_tokens;  /* cost it may still drain (rate limit) */
  _Atomic uint64_t window_used;  /* cost drained in the current window */
  _Atomic uint64_t throttled;    /* turns the rate limit cut short */
  _Atomic uint64_t limit_logged; /* loop ms the rate limit was last logged */
  struct tr_usage *next;
} tr_usage;

struct tr_op;

typedef struct tr_proc {
  /* Threading (daemon/worker.h).  `lock` is held by the drain worker that
   * owns the process while it serves it, and by the loop whenever it reads
   * or changes anything below that the worker uses (threads, name, out,
   * stats...).  Requests to the worker (attach, detach, close) queue in
   * `ops`, under the lock, and run in order. */
  pthread_mutex_t lock;
  int worker;        /* index of the owning worker; -1: none */
  struct tr_op *ops; /* requests for the worker, oldest first */
  struct tr_op **ops_tail;
  _Atomic bool failed_noted; /* the loop was told of `failed` */
  /* Identity.  kpid/uid/gid come from the kernel (SO_PEERCRED); pid and
   * ppid are what the client says and only label the trace. */
  pid_t kpid;
  uid_t uid;
  gid_t gid;
  uint32_t pid;
  uint32_t ppid;
  bool producer;
  bool tsc; /* its records carry TSC ticks (daemon/tsclock.h) */
  bool has_arena;
  /* Its connection closed: the process is gone (set by its worker before
   * the last detach, which labels a process that recorded nothing). */
  bool ended;
  _Atomic bool failed; /* a ring was found broken: the connection must end */
  uint32_t failed_tid; /* the first broken ring's thread, for the log */
  int failed_rc;       /* and why: -EPROTO (positions), -ENODATA (pages); set
                          before `failed`, read once `failed` is seen */
  uint16_t name_len;
  char name[TR_NAME_MAX];
  uint32_t sort_index; /* order of joining its current session, from 1 */

  tr_arenaview arena;
  tr_thread **threads;
  uint32_t nthreads;
  uint32_t threads_cap;
  uint32_t stack_slots; /* open-call slots allocated, all threads */
  uint32_t rr;          /* which ring drains first next (fair draining) */

  /* Output: this process's stream into its session's writer, NULL while
   * the process belongs to no session. */
  tr_wstream *out;
  struct tr_metaseen *seen; /* the output's metadata so far (borrowed) */
  pthread_mutex_t *seen_mu; /* guards *seen (borrowed), or NULL */
  uint64_t min_ts; /* records older than this belong to no session of ours */
  uint64_t min_duration_ns; /* Python and C calls shorter than this are not
                               written (0: every call is) */
  tr_proc_stats stats;
  char *raw; /* private copy of a string read from the arena */
  /* The arguments of an ARGS record, for the record that follows it in
   * the same ring (valid during one ring's drain only). */
  uint8_t *pending;
  uint32_t pending_len;
  bool has_pending;
  uint64_t args_bytes; /* argument stacks allocated, all threads */

  /* Owned by session.c. */
  struct tr_session *session; /* the session this process records into */
  struct tr_session *created; /* the open session this process created */
  uint64_t last_epoch;        /* epoch of its latest session (0: none) */
  void *owner;                /* the connection */
  tr_usage *usage;            /* its user's budget (borrowed), or NULL */
} tr_proc;

void tr_proc_init(tr_proc *p, pid_t kpid, uid_t uid, gid_t gid);

/* Unmaps every ring and the arena and frees everything.  Does not write
 * anything: detach first. */
void tr_proc_fini(tr_proc *p);

/* Takes over a mapped arena view (the proc unmaps it in fini). */
void tr_proc_set_arena(tr_proc *p, const tr_arenaview *a);

/* Sets the display name (truncated at a UTF-8 boundary to fit); it is
 * written as process_name metadata when the process detaches. */
void tr_proc_set_name(tr_proc *p, const char *name, size_t n);

/* Takes over a mapped ring view as a new thread named `name` (may be
 * empty).  Returns 0, -EMFILE past TR_PROC_MAX_THREADS, or -ENOMEM (the
 * view is then unmapped). */
int tr_proc_add_thread(tr_proc *p, const tr_ringview *v, const char *name,
                       size_t n);

/* Drains every ring: into the output when attached, else discarding.
 * Rings the producer closed are drained a last time, their open calls
 * closed as unfinished, and unmapped.  Returns 0, or -EPROTO when a ring's
 * positions are impossible, -ENODATA when it publishes records in pages it
 * never wrote (that ring is never read again, p->failed is set and
 * p->failed_rc says which: the caller ends the connection). */
int tr_proc_drain(tr_proc *p);

/* The same within a budget of ring slots (whole records; the rings take
 * turns at being first): *used gets the slots consumed, *more whether
 * records were left for later.  A ring the producer closed is finished
 * only once it is empty. */
int tr_proc_drain_some(tr_proc *p, uint64_t budget, uint64_t *used, bool *more);

/* Marks of every ring's drop counter now (the caller holds p->lock):
 * *out is NULL when there are no rings or no memory (the worker then
 * uses the counters it finds). */
void tr_proc_drop_marks(tr_proc *p, tr_drop_mark **out, uint32_t *n);

/* Starts writing into `out` through a stream of its own on lane `lane`:
 * forgets open calls from before, counts each ring's drops from the last
 * count on (the producer is enabled at the join, which may come a little
 * before this attach), discards
 * what the rings hold from before min_ts and writes what they hold from
 * then on.  Records older than min_ts arriving later are discarded as late.
 * `seen_mu` (may be NULL) guards *seen.  Drops count from each ring's
 * mark (taken at the join) or from where the last count left, whichever is
 * higher (a ring without a mark was registered after the join and counts
 * every drop since its registration).
 * Returns 0 or -ENOMEM (the process then stays detached). */
int tr_proc_attach(tr_proc *p, tr_writer *out, unsigned lane,
                   struct tr_metaseen *seen, pthread_mutex_t *seen_mu,
                   uint64_t min_ts, const tr_drop_mark *marks, uint32_t nmarks);

/* Stops writing: drains, closes open calls as unfinished slices at each
 * thread's last timestamp, writes the process and thread names, sort index
 * and labels (only what p->seen says the output lacks), closes the
 * stream, adds this output's counters into *st.  Drops count up to each
 * ring's mark (taken when the process left); a ring without one was added
 * after the leave and has none for this output; no marks: up to now. */
void tr_proc_detach(tr_proc *p, tr_proc_stats *st, const tr_drop_mark *marks,
                    uint32_t nmarks);

/* Events this process dropped into its current output so far: the depth
 * limit's and its producers' (counted by its rings, not yet collected). */
uint64_t tr_proc_dropped_now(const tr_proc *p);

/* Writes the daemon's heartbeat into the arena (no-op without one): the
 * process's threads waiting on a full ring keep waiting while it changes. */
void tr_proc_beat(tr_proc *p, uint64_t beat);

/* Writes the process state word (no-op without an arena). */
void tr_proc_set_state(tr_proc *p, uint64_t state);

#endif

/* session.h: sessions, the daemon's unit of ownership: one output file, one
 * owner uid, a token to join by, and the processes recording into it.
 *
 * Rules (PROTOCOL.md section 2): a process joins only with the token of an
 * open session owned by its own (kernel-reported) uid; the creator ends the
 * session, or its connection closing does; ending drains every member and
 * finalises the file.  Idle producers that descend from the creator of a
 * new session are adopted into it (docs/sessions.md).
 *
 * Everything here runs on the event-loop thread.  What drains or writes
 * (attaching a member to the output, detaching it) is a request to the
 * member's drain worker (worker.h); a session ends once every member has
 * left and its writer has written the footer (tr_session_end_poll). */
#ifndef TRACED_SESSION_H
#define TRACED_SESSION_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/platform.h"
#include "metaseen.h"
#include "output/writer.h"
#include "proc.h"
#include "proto/traced_proto.h"
#include "pychild.h"
#include "worker.h"

#define TR_SESSION_PATH_MAX 1024 /* display path, as in traced_summary */
#define TR_SESSIONS_PER_UID 64   /* open sessions per owner */

/* What SESSION_SUMMARY reports, plus counters only the log shows. */
typedef struct tr_session_stats {
  uint64_t processes; /* processes that recorded into the session */
  uint64_t threads;   /* rings that recorded into it */
  uint64_t events;    /* trace events written (metadata excluded) */
  uint64_t dropped;   /* events lost: full rings, write errors, depth limit */
  uint64_t bytes;     /* bytes written to the output */
  uint64_t lost;      /* LOST records' counts (part of `dropped`) */
  uint64_t late;      /* records older than their member's start */
  uint64_t malformed; /* records or string ids that made no sense */
  uint64_t unmatched; /* exits without an open call */
  uint64_t filtered;  /* calls not written: shorter than min_duration_ns */
  /* Why the trace ended short of its events (zeros: it did not): the size
   * bound it reached, the errno of its first failed write, whether its
   * ending could not be written, the events the writer dropped. */
  uint64_t max_size;
  int write_error;
  bool unclosed;
  uint64_t cut_dropped;
  /* The Python children its processes started (pychild.h), handed over by
   * tr_session_end_poll: the caller frees them (tr_pychildren_free). */
  tr_pychildren children;
} tr_session_stats;

struct client;

typedef struct tr_session {
  struct tr_session *next;
  char token[TR_TOKEN_HEX_LEN + 1];
  uid_t owner;
  uint64_t epoch;           /* unique per session in this daemon, from 1 */
  uint64_t start_ts;        /* CLOCK_MONOTONIC ns at creation */
  uint64_t min_duration_ns; /* shorter calls are not written (0: all are) */
  uint64_t max_size;        /* the trace's size bound, bytes (0: none) */
  tr_proc *creator;         /* the creating connection's process */
  int fd;                   /* the output, owned */
  tr_writer *out;
  bool ending;      /* SESSION_END is being carried out */
  bool closing;     /* every member left: the writer is writing the end */
  uint32_t pending; /* members that left and whose worker has not yet
                       detached them */
  struct client *reply_to; /* the creator to answer when it ends, or NULL */
  pthread_mutex_t seen_mu; /* guards `seen`: workers write metadata */
  tr_proc **members;
  uint32_t nmembers;
  uint32_t members_cap;
  tr_session_stats stats; /* of members that already left */
  tr_metaseen seen;       /* metadata already in the output */
  tr_pychildren children; /* Python processes its members started */
  uint64_t rate_events;   /* events at the last rate sample */
  uint64_t rate_ns;       /* CLOCK_MONOTONIC of that sample */
  uint64_t events_per_s;  /* events written per second, last sample */
  char label[32];         /* "session=<epoch>" for log lines */
  char path[TR_SESSION_PATH_MAX];
} tr_session;

typedef struct tr_sessions {
  tr_session *head;
  uint32_t count;
  uint64_t last_epoch;
  tr_workers *ws;            /* borrowed: who attaches and detaches members */
  void (*notify)(void *arg); /* called (any thread) when a writer is done */
  void *notify_arg;
} tr_sessions;

/* `notify(notify_arg)` is called from a writer's thread when it finished
 * a session's file (tr_session_end_poll can then complete it). */
void tr_sessions_init(tr_sessions *ss, tr_workers *ws, void (*notify)(void *),
                      void *notify_arg);

/* Creates a session owned by creator->uid writing `format` to `fd` (which
 * must be open for writing; the session owns it from success on) and
 * buffers the file header.  The creator is recorded as such but does not
 * become a member: the caller joins it when it is a producer.  Returns 0,
 * -EBADF (fd not writable), -EINVAL (not a regular file or character
 * device), -EMFILE (too many sessions for this uid), -ENOMEM, or
 * getrandom's error. */
int tr_session_create(tr_sessions *ss, tr_proc *creator, int fd,
                      tr_format format, const char *path, size_t path_len,
                      uint32_t max_per_uid, tr_session **out);

/* The open (not ending) session named by token, or NULL.  The comparison
 * takes the same time wherever the tokens differ. */
tr_session *tr_session_find(tr_sessions *ss, const char *token, size_t n);

/* Makes p a member: asks its worker to attach it to the output and enables
 * its state word (before the caller replies, as the protocol requires).
 * p must belong to no session and have a worker.  Returns 0, -EACCES
 * (other uid), -EINVAL (no worker: not a producer), -ENOMEM. */
int tr_session_join(tr_sessions *ss, tr_session *s, tr_proc *p);

/* p stops recording into its session: its state word is disabled and its
 * worker asked to drain it, end its open calls unfinished and detach it;
 * the session waits for that (tr_session_left).  No-op for a non-member. */
void tr_session_leave(tr_sessions *ss, tr_proc *p);

/* The request (DETACH or CLOSE) that takes p out of its session, if any:
 * p leaves the members, the session counts it as pending.  Not queued.
 * NULL when out of memory (nothing changed). */
tr_op *tr_session_leave_op(tr_op_kind kind, tr_proc *p);

/* The same into a request the caller allocated. */
void tr_session_leave_into(tr_op *op, tr_op_kind kind, tr_proc *p);

/* A DETACH or CLOSE of a member of s was carried out: its counters join
 * the session's. */
void tr_session_left(tr_session *s, const tr_proc_stats *ps);

/* A member of s announced a process it started, or an exec it is about
 * to make (PROCESS_INFO `child`): s remembers it if it is a Python
 * interpreter, to name it at the end unless a process with its pid joins
 * (pychild.h).  announcer_pid: the member's pid as its HELLO gave it
 * (the pids children are announced by). */
void tr_session_child(tr_session *s, const tr_msg_child *c,
                      uint32_t announcer_pid);

/* Whether an idle producer p is adopted by the new session s: same uid as
 * the owner, in no session, and a descendant of the creator's process. */
bool tr_session_may_adopt(const tr_session *s, const tr_proc *p);

/* Begins ending s (PROTOCOL.md section 2, steps 2-4; the caller has
 * already read the members' pending frames): nobody joins it any more,
 * every member is disabled and asked to leave (drained, open calls closed
 * as unfinished, metadata written). */
void tr_session_end_begin(tr_sessions *ss, tr_session *s);

/* Carries an ending session on: once every member has left, the writer
 * writes the footer; once it has, the file is closed, *st (may be NULL)
 * filled (st->children is the caller's to free), s unlinked and freed,
 * and true returned. */
bool tr_session_end_poll(tr_sessions *ss, tr_session *s, tr_session_stats *st);

/* What `traced status` shows of a running session: its counters so far,
 * members still connected included (their drops not yet collected too). */
typedef struct tr_session_live {
  uint64_t processes; /* processes that joined it */
  uint64_t members;   /* processes connected and recording now */
  uint64_t threads;
  uint64_t events;
  uint64_t events_per_s;
  uint64_t dropped;
  uint64_t bytes;
  uint64_t age_ns; /* since it was created */
} tr_session_live;
void tr_session_live_stats(const tr_session *s, uint64_t now_ns,
                           tr_session_live *out);

/* Takes each session's event rate since the last call (once a second). */
void tr_sessions_sample_rates(tr_sessions *ss, uint64_t now_ns);

uint32_t tr_sessions_count_uid(const tr_sessions *ss, uid_t uid);

/* Whether `ancestor` is `pid` or one of its ancestors, following the parent
 * links in /proc/<pid>/stat (at most 512 steps). */
bool tr_pid_is_descendant(pid_t pid, pid_t ancestor);

/* Reads CLOCK_MONOTONIC in nanoseconds (the producers' clock). */
uint64_t tr_monotonic_ns(void);

#endif

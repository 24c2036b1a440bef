/* session.c: creating, joining, adopting into and ending sessions. */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "output/formats.h"
#include "transport.h"

uint64_t tr_monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void tr_sessions_init(tr_sessions *ss, tr_workers *ws, void (*notify)(void *),
                      void *notify_arg) {
  memset(ss, 0, sizeof(*ss));
  ss->ws = ws;
  ss->notify = notify;
  ss->notify_arg = notify_arg;
}

static uint64_t state_enabled(const tr_session *s) {
  return TR_STATE_ENABLED | (s->epoch << TR_STATE_EPOCH_SHIFT);
}

static uint64_t state_disabled(const tr_session *s) {
  return s->epoch << TR_STATE_EPOCH_SHIFT;
}

static int make_token(char out[TR_TOKEN_HEX_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  uint8_t raw[TR_TOKEN_HEX_LEN / 2];
  int rc = tr_dtransport_random(raw, sizeof(raw));
  if (rc < 0) return rc;
  for (size_t i = 0; i < sizeof(raw); i++) {
    out[2 * i] = hex[raw[i] >> 4];
    out[2 * i + 1] = hex[raw[i] & 15];
  }
  out[TR_TOKEN_HEX_LEN] = '\0';
  return 0;
}

uint32_t tr_sessions_count_uid(const tr_sessions *ss, uid_t uid) {
  uint32_t n = 0;
  for (const tr_session *s = ss->head; s != NULL; s = s->next)
    if (s->owner == uid) n++;
  return n;
}

int tr_session_create(tr_sessions *ss, tr_proc *creator, int fd,
                      tr_format format, const char *path, size_t path_len,
                      uint32_t max_per_uid, tr_session **out) {
  /* A pipe, socket or terminal could block the daemon's one thread forever
   * when its reader stops (or a user types ^S); regular files and
   * /dev/null cannot. */
  int kind = tr_dtransport_output_kind(fd);
  if (kind < 0) return kind;
  if (tr_sessions_count_uid(ss, creator->uid) >= max_per_uid) return -EMFILE;
  /* Clients open the output without O_TRUNC, so that a refused session
   * leaves an existing file as it was: it is emptied here, once accepted. */
  if (kind == 1) {
    int rc = tr_dtransport_output_truncate(fd);
    if (rc < 0) return rc;
  }

  tr_session *s = calloc(1, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  int rc = make_token(s->token);
  if (rc < 0) goto err;
  s->epoch = ++ss->last_epoch;
  snprintf(s->label, sizeof(s->label), "session=%llu",
           (unsigned long long)s->epoch);
  rc = tr_writer_open(&s->out, fd, format, s->label, ss->ws->n);
  if (rc < 0) goto err;
  if (ss->notify != NULL)
    tr_writer_set_notify(s->out, ss->notify, ss->notify_arg);
  pthread_mutex_init(&s->seen_mu, NULL);
  tr_metaseen_init(&s->seen);
  tr_pychildren_init(&s->children);
  if (path_len >= sizeof(s->path)) path_len = sizeof(s->path) - 1;
  memcpy(s->path, path, path_len);
  s->path[path_len] = '\0';
  s->owner = creator->uid;
  s->start_ts = tr_monotonic_ns();
  s->creator = creator;
  s->fd = fd;
  creator->created = s;
  s->next = ss->head;
  ss->head = s;
  ss->count++;
  *out = s;
  return 0;
err:
  free(s);
  return rc;
}

tr_session *tr_session_find(tr_sessions *ss, const char *token, size_t n) {
  if (n != TR_TOKEN_HEX_LEN) return NULL;
  for (tr_session *s = ss->head; s != NULL; s = s->next) {
    unsigned diff = 0;
    for (size_t i = 0; i < TR_TOKEN_HEX_LEN; i++)
      diff |= (unsigned)(uint8_t)(s->token[i] ^ token[i]);
    if (diff == 0) return s->ending ? NULL : s;
  }
  return NULL;
}

int tr_session_join(tr_sessions *ss, tr_session *s, tr_proc *p) {
  if (p->uid != s->owner) return -EACCES;
  if (p->session == s) return 0;
  if (p->worker < 0) return -EINVAL; /* not a producer */
  if (s->nmembers == s->members_cap) {
    uint32_t cap = s->members_cap ? s->members_cap * 2 : 8;
    tr_proc **m = realloc(s->members, cap * sizeof(*m));
    if (m == NULL) return -ENOMEM;
    s->members = m;
    s->members_cap = cap;
  }
  tr_op *op = calloc(1, sizeof(*op));
  if (op == NULL) return -ENOMEM;
  s->members[s->nmembers++] = p;
  /* Records older than the join were not meant for this session (e.g. an
   * adopted worker's leftovers from a previous one).  The process's worker
   * attaches it; records written from now on are kept whenever it does. */
  uint64_t now = tr_monotonic_ns();
  op->kind = TR_OP_ATTACH;
  op->proc = p;
  op->writer = s->out;
  op->seen = &s->seen;
  op->seen_mu = &s->seen_mu;
  op->min_ts = now > s->start_ts ? now : s->start_ts;
  op->min_duration_ns = s->min_duration_ns;
  p->session = s;
  p->last_epoch = s->epoch;
  /* Viewers list processes by this index: the first to join (the program's
   * main process) comes first, its workers in the order they started.  A
   * pid joining again (it exec()ed) is the same process: same index.  Set
   * before the request is queued, which publishes it to the worker. */
  bool is_new;
  pthread_mutex_lock(&s->seen_mu);
  uint32_t index = tr_metaseen_sort_index(
      &s->seen, p->pid, (uint32_t)s->stats.processes + 1, &is_new);
  pthread_mutex_unlock(&s->seen_mu);
  /* The drops counted for this session start at the rings' counters now,
   * as the state word enables recording (proc.h, tr_drop_mark). */
  pthread_mutex_lock(&p->lock);
  p->sort_index = index;
  tr_proc_drop_marks(p, &op->marks, &op->nmarks);
  pthread_mutex_unlock(&p->lock);
  if (is_new) s->stats.processes++;
  tr_pychildren_joined(&s->children, p->pid, p->ppid);
  tr_workers_request(ss->ws, op);
  tr_proc_set_state(p, state_enabled(s));
  return 0;
}

tr_op *tr_session_leave_op(tr_op_kind kind, tr_proc *p) {
  tr_op *op = calloc(1, sizeof(*op));
  if (op != NULL) tr_session_leave_into(op, kind, p);
  return op;
}

void tr_session_leave_into(tr_op *op, tr_op_kind kind, tr_proc *p) {
  memset(op, 0, sizeof(*op));
  op->kind = kind;
  op->proc = p;
  tr_session *s = p->session;
  if (s == NULL) return;
  tr_proc_set_state(p, state_disabled(s));
  /* The drops counted for this session end at the rings' counters now,
   * as the state word disables recording. */
  pthread_mutex_lock(&p->lock);
  tr_proc_drop_marks(p, &op->marks, &op->nmarks);
  pthread_mutex_unlock(&p->lock);
  for (uint32_t i = 0; i < s->nmembers; i++) {
    if (s->members[i] == p) {
      s->members[i] = s->members[--s->nmembers];
      break;
    }
  }
  op->session = s;
  s->pending++;
  p->session = NULL;
}

void tr_session_leave(tr_sessions *ss, tr_proc *p) {
  if (p->session == NULL) return;
  tr_op *op = tr_session_leave_op(TR_OP_DETACH, p);
  if (op == NULL) {
    /* No memory for the request: the process stays attached until its
     * connection closes (which needs no allocation of its own). */
    tr_log(TR_LOG_ERROR, "event=leave_error pid=%u reason=\"out of memory\"",
           p->pid);
    return;
  }
  tr_workers_request(ss->ws, op);
}

void tr_session_left(tr_session *s, const tr_proc_stats *ps) {
  s->stats.threads += ps->threads;
  s->stats.dropped += ps->dropped;
  s->stats.lost += ps->lost;
  s->stats.late += ps->late;
  s->stats.malformed += ps->malformed;
  s->stats.unmatched += ps->unmatched;
  s->stats.filtered += ps->filtered;
  s->pending--;
}

void tr_session_child(tr_session *s, const tr_msg_child *c,
                      uint32_t announcer_pid) {
  tr_pychild_seen seen = {false, false};
  pthread_mutex_lock(&s->seen_mu);
  seen.pid_joined = tr_metaseen_joined(&s->seen, (uint32_t)c->pid);
  pthread_mutex_unlock(&s->seen_mu);
  /* A shell that forked the interpreter is its parent; the members are
   * all that can have joined in the moment since it was started. */
  for (uint32_t i = 0; i < s->nmembers && !seen.child_joined; i++)
    seen.child_joined = s->members[i]->ppid == (uint32_t)c->pid;
  if (tr_pychildren_announce(&s->children, c, announcer_pid, seen) < 0 &&
      s->children.unchecked == 1)
    tr_log(TR_LOG_WARN,
           "event=children_full %s reason=\"more than %u Python children "
           "not yet joined: later ones are not checked\"",
           s->label, TR_PYCHILD_MAX);
}

bool tr_session_may_adopt(const tr_session *s, const tr_proc *p) {
  return s->creator != NULL && p != s->creator && p->producer && p->has_arena &&
         p->session == NULL && p->created == NULL && p->uid == s->owner &&
         tr_pid_is_descendant(p->kpid, s->creator->kpid);
}

/* Asks every member's worker to detach it; false when a request could not
 * be allocated (the rest is retried on the next poll). */
static bool leave_members(tr_sessions *ss, tr_session *s) {
  while (s->nmembers > 0) {
    tr_op *op = tr_session_leave_op(TR_OP_DETACH, s->members[s->nmembers - 1]);
    if (op == NULL) return false;
    tr_workers_request(ss->ws, op);
  }
  return true;
}

void tr_session_end_begin(tr_sessions *ss, tr_session *s) {
  s->ending = true;
  /* Disable everyone first so no member records while others drain. */
  for (uint32_t i = 0; i < s->nmembers; i++)
    tr_proc_set_state(s->members[i], state_disabled(s));
  leave_members(ss, s);
  if (s->creator != NULL) s->creator->created = NULL;
  s->creator = NULL;
}

bool tr_session_end_poll(tr_sessions *ss, tr_session *s, tr_session_stats *st) {
  if (!s->ending || !leave_members(ss, s) || s->pending > 0) return false;
  if (!s->closing) {
    /* Every member's lane was flushed when it left: the writer writes
     * what is queued, then the footer, on its own thread. */
    s->closing = true;
    tr_writer_close(s->out);
  }
  int wrc;
  if (!tr_writer_done(s->out, &wrc)) return false;
  uint64_t events, dropped, bytes;
  tr_writer_stats(s->out, &events, &dropped, &bytes);
  s->stats.events = events;
  s->stats.dropped += dropped;
  s->stats.bytes = bytes;
  bool limited;
  tr_writer_cut(s->out, &limited, &s->stats.write_error, &s->stats.unclosed);
  s->stats.write_error = -s->stats.write_error;
  if (limited) s->stats.max_size = s->max_size;
  if (limited || wrc < 0) s->stats.cut_dropped = dropped;
  if (close(s->fd) < 0)
    tr_log(TR_LOG_ERROR,
           "event=write_error %s uid=%lu reason=\"closing the trace file "
           "failed: %s\"",
           s->label, (unsigned long)s->owner, strerror(errno));
  tr_log(
      TR_LOG_INFO,
      "event=session_end %s uid=%lu processes=%llu threads=%llu events=%llu "
      "dropped=%llu bytes=%llu late=%llu malformed=%llu unmatched=%llu "
      "filtered=%llu",
      s->label, (unsigned long)s->owner, (unsigned long long)s->stats.processes,
      (unsigned long long)s->stats.threads, (unsigned long long)s->stats.events,
      (unsigned long long)s->stats.dropped, (unsigned long long)s->stats.bytes,
      (unsigned long long)s->stats.late, (unsigned long long)s->stats.malformed,
      (unsigned long long)s->stats.unmatched,
      (unsigned long long)s->stats.filtered);
  if (st != NULL) {
    *st = s->stats;
    st->children = s->children;
  } else {
    tr_pychildren_free(&s->children);
  }

  for (tr_session **pp = &ss->head; *pp != NULL; pp = &(*pp)->next) {
    if (*pp == s) {
      *pp = s->next;
      ss->count--;
      break;
    }
  }
  tr_writer_free(s->out);
  tr_metaseen_free(&s->seen);
  pthread_mutex_destroy(&s->seen_mu);
  free(s->members);
  free(s);
  return true;
}

void tr_session_live_stats(const tr_session *s, uint64_t now_ns,
                           tr_session_live *out) {
  memset(out, 0, sizeof(*out));
  uint64_t events, dropped, bytes;
  tr_writer_stats(s->out, &events, &dropped, &bytes);
  out->processes = s->stats.processes;
  out->members = s->nmembers;
  out->threads = s->stats.threads;
  out->dropped = s->stats.dropped + dropped;
  for (uint32_t i = 0; i < s->nmembers; i++) {
    tr_proc *p = s->members[i];
    pthread_mutex_lock(&p->lock);
    out->threads += p->stats.threads;
    out->dropped += tr_proc_dropped_now(p);
    pthread_mutex_unlock(&p->lock);
  }
  out->events = events;
  out->bytes = bytes;
  out->age_ns = now_ns > s->start_ts ? now_ns - s->start_ts : 0;
  /* A session younger than its first sample: its average so far. */
  if (s->rate_ns != 0)
    out->events_per_s = s->events_per_s;
  else if (out->age_ns >= 1000000)
    out->events_per_s = out->events * 1000 / (out->age_ns / 1000000);
}

void tr_sessions_sample_rates(tr_sessions *ss, uint64_t now_ns) {
  for (tr_session *s = ss->head; s != NULL; s = s->next) {
    uint64_t since = s->rate_ns != 0 ? s->rate_ns : s->start_ts;
    uint64_t base = s->rate_ns != 0 ? s->rate_events : 0;
    uint64_t ms = now_ns > since ? (now_ns - since) / 1000000 : 0;
    if (ms == 0) continue;
    uint64_t events;
    tr_writer_stats(s->out, &events, NULL, NULL);
    s->events_per_s = (events - base) * 1000 / ms;
    s->rate_events = events;
    s->rate_ns = now_ns;
  }
}

bool tr_pid_is_descendant(pid_t pid, pid_t ancestor) {
  if (ancestor <= 0) return false;
  for (int i = 0; i < 512 && pid > 0; i++) {
    if (pid == ancestor) return true;
    if (pid == 1) return false;
    pid = tr_dtransport_parent_of(pid);
  }
  return false;
}

/* report.c: `traced report`: aggregates a trace's events per process,
 * thread and function into cProfile's numbers (calls, self time, total
 * time); nest.c places the calls, report_print.c prints the result. */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "nest.h"
#include "report_data.h"

int tr_report_new(tr_report **out) {
  *out = calloc(1, sizeof(**out));
  return *out == NULL ? -ENOMEM : 0;
}

void tr_report_free(tr_report *r) {
  if (r == NULL) return;
  tr_intern_free(&r->fns);
  tr_map_free(&r->procmap);
  tr_map_free(&r->threadmap);
  tr_map_free(&r->statmap);
  for (size_t i = 0; i < r->nprocs; i++) free(r->procs[i].name);
  free(r->procs);
  for (size_t i = 0; i < r->nthreads; i++) {
    tr_nest_reset(&r->threads[i]);
    free(r->threads[i].v);
    free(r->threads[i].b);
  }
  free(r->threads);
  free(r->stats);
  free(r->path);
  free(r->cut_why);
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

int tr_report_grow(void **v, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return 0;
  size_t c = *cap ? *cap * 2 : 16;
  void *p = realloc(*v, c * size);
  if (p == NULL) return -ENOMEM;
  *v = p;
  *cap = c;
  return 0;
}

static int64_t proc_get(tr_report *r, int64_t pid) {
  const uint64_t *i = tr_map_get(&r->procmap, (uint64_t)pid);
  if (i != NULL) return (int64_t)*i;
  if (r->nprocs >= UINT32_MAX - 1 ||
      tr_report_grow((void **)&r->procs, &r->capprocs, r->nprocs,
                     sizeof(proc)) < 0 ||
      tr_map_set(&r->procmap, (uint64_t)pid, r->nprocs) < 0)
    return -ENOMEM;
  proc *p = &r->procs[r->nprocs];
  memset(p, 0, sizeof(*p));
  p->pid = pid;
  return (int64_t)r->nprocs++;
}

typedef struct thread_key {
  const tr_report *r;
  int64_t pid, tid;
} thread_key;

static bool thread_is(const void *ctx, uint64_t i) {
  const thread_key *k = ctx;
  return k->r->threads[i].pid == k->pid && k->r->threads[i].tid == k->tid;
}

static thread *thread_get(tr_report *r, int64_t pid, int64_t tid) {
  uint64_t h = tr_map_hash_pair((uint64_t)pid, (uint64_t)tid);
  thread_key k = {r, pid, tid};
  const uint64_t *i = tr_map_find(&r->threadmap, h, thread_is, &k);
  if (i != NULL) return &r->threads[*i];
  int64_t p = proc_get(r, pid);
  if (p < 0 || r->nthreads >= UINT32_MAX - 1 ||
      tr_report_grow((void **)&r->threads, &r->capthreads, r->nthreads,
                     sizeof(thread)) < 0 ||
      tr_map_add(&r->threadmap, h, r->nthreads) < 0)
    return NULL;
  thread *t = &r->threads[r->nthreads++];
  memset(t, 0, sizeof(*t));
  t->pid = pid;
  t->tid = tid;
  t->proc = (uint32_t)p;
  r->procs[p].threads++;
  return t;
}

int64_t tr_report_stat(tr_report *r, uint32_t proc, uint32_t fn) {
  uint64_t key = (uint64_t)proc << 32 | fn;
  const uint64_t *i = tr_map_get(&r->statmap, key);
  if (i != NULL) return (int64_t)*i;
  if (r->nstats >= UINT32_MAX - 1 ||
      tr_report_grow((void **)&r->stats, &r->capstats, r->nstats,
                     sizeof(stat_rec)) < 0 ||
      tr_map_set(&r->statmap, key, r->nstats) < 0)
    return -ENOMEM;
  stat_rec *s = &r->stats[r->nstats];
  memset(s, 0, sizeof(*s));
  s->proc = proc;
  s->fn = fn;
  return (int64_t)r->nstats++;
}

int tr_report_add(tr_report *r, const tr_trace_event *ev) {
  if (ev->kind == TR_EV_CUT) {
    /* Not an event of any process: the writer's own note. */
    char *why = malloc(ev->name_len + 1);
    if (why == NULL) return -ENOMEM;
    memcpy(why, ev->name, ev->name_len);
    why[ev->name_len] = '\0';
    free(r->cut_why);
    r->cut_why = why;
    r->cut_dropped += ev->count;
    return 0;
  }
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
      int64_t fn = tr_intern_add(&r->fns, ev->name, ev->name_len);
      if (fn < 0) return -ENOMEM;
      int64_t e = ev->ts_ns <= INT64_MAX - ev->dur_ns ? ev->ts_ns + ev->dur_ns
                                                      : INT64_MAX;
      return tr_nest_call(r, t, (uint32_t)fn, ev->ts_ns, e, ev->unfinished);
    }
    case TR_EV_BEGIN: {
      int64_t fn = tr_intern_add(&r->fns, ev->name, ev->name_len);
      if (fn < 0 ||
          tr_report_grow((void **)&t->b, &t->bcap, t->bn, sizeof(bopen)) < 0)
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
      return tr_nest_call(r, t, t->b[t->bn].fn, t->b[t->bn].start, ev->ts_ns,
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
      int rc = tr_nest_call(r, t, t->b[t->bn].fn, t->b[t->bn].start, t->last_ts,
                            true);
      if (rc < 0) return rc;
    }
    tr_nest_reset(t);
  }
  return 0;
}

/* ---- queries ------------------------------------------------------------- */

bool tr_report_has_pid(const tr_report *r, int64_t pid) {
  return tr_map_get(&r->procmap, (uint64_t)pid) != NULL;
}

bool tr_report_lookup(const tr_report *r, bool overall, int64_t pid,
                      const char *name, tr_report_fn *out) {
  memset(out, 0, sizeof(*out));
  bool found = false;
  size_t n = strlen(name);
  for (size_t i = 0; i < r->nstats; i++) {
    const stat_rec *s = &r->stats[i];
    if (!overall && r->procs[s->proc].pid != pid) continue;
    size_t len;
    const char *fn = tr_intern_str(&r->fns, s->fn, &len);
    if (len != n || memcmp(fn, name, n) != 0) continue;
    out->calls += s->s.calls;
    out->primitive += s->s.primitive;
    out->unfinished += s->s.unfinished;
    out->self_ns = WADD(out->self_ns, s->s.self_ns);
    out->total_ns = WADD(out->total_ns, s->s.total_ns);
    found = true;
  }
  return found;
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

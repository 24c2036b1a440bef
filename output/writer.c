/* writer.c: what every trace writer backend shares: lanes and their
 * buffers, sealing them into the sink, streams, counters. */
#include "writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/platform.h"

int tr_writer_init(tr_writer *w, const tr_writer_ops *ops, tr_format format,
                   const char *label, int fd, unsigned nlanes,
                   size_t chunk_size, size_t first_skip) {
  w->ops = ops;
  w->format = format;
  w->label = label;
  w->first_skip = first_skip;
  w->seal_at = chunk_size;
  if (nlanes == 0) return -EINVAL;
  /* sizeof(tr_lane) is a multiple of its alignment (a cache line). */
  w->lanes = tr_aligned_alloc(_Alignof(tr_lane), nlanes * sizeof(tr_lane));
  if (w->lanes == NULL) return -ENOMEM;
  memset(w->lanes, 0, nlanes * sizeof(tr_lane));
  for (unsigned i = 0; i < nlanes; i++) {
    atomic_init(&w->lanes[i].events, 0);
    atomic_init(&w->lanes[i].dropped, 0);
  }
  w->nlanes = nlanes;
  /* Reused chunks: TR_SINK_KEEP_BYTES of them, and at least one per lane
   * being filled while another is written, and two more; beyond that (a
   * disk falling behind) chunks are made and, once written, freed. */
  size_t keep = TR_SINK_KEEP_BYTES / chunk_size;
  if (keep < (size_t)nlanes + 2) keep = (size_t)nlanes + 2;
  return tr_sink_init(&w->sink, fd, chunk_size, (unsigned)keep);
}

int tr_writer_start(tr_writer *w) {
  if (w->history > 0) {
    w->sink.hist = malloc(w->history);
    if (w->sink.hist == NULL) return -ENOMEM;
    for (unsigned i = 0; i < w->nlanes; i++) {
      w->lanes[i].dict = malloc(w->history);
      if (w->lanes[i].dict == NULL) return -ENOMEM;
    }
  }
  tr_lane *l = &w->lanes[0];
  if (l->c == NULL || l->c->len == 0) return -ENOMEM; /* no head */
  l->c = tr_sink_seal(w, 0, l->c, true, false);
  return tr_sink_start(w);
}

/* After a failure: what the lane holds will never be written; its events
 * move to `dropped`. */
static void discard(tr_lane *l) {
  tr_chunk *c = l->c;
  if (c == NULL || c->len == 0) return;
  tr_lane_count(&l->dropped, c->events);
  tr_lane_count(&l->events, (uint64_t)0 - c->events);
  c->len = 0;
  c->events = 0;
  l->since = 0;
}

/* `wake`: at the end of a pass (tr_writer_lane_flush), the I/O thread
 * writes what is ready now; a full buffer in the middle of one waits for
 * a few more. */
static void seal(tr_writer *w, tr_lane *l, bool wake) {
  l->c = tr_sink_seal(w, (unsigned)(l - w->lanes), l->c, false, wake);
  l->since = 0;
  l->unkicked = !wake;
}

char *tr_lane_reserve_slow(tr_writer *w, tr_lane *l, size_t need) {
  /* Relaxed: as in tr_lane_reserve. */
  if (atomic_load_explicit(&w->sink.failed, memory_order_relaxed)) {
    discard(l);
    return NULL;
  }
  if (l->c == NULL)
    l->c = tr_sink_chunk(&w->sink);
  else if (l->c->len > 0 && l->c->len + need > w->seal_at)
    seal(w, l, false);
  return l->c != NULL ? l->c->buf + l->c->len : NULL;
}

static uint64_t coarse_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The end of a pass that seals nothing: chunks it sealed when full are
 * written now all the same. */
static void kick_sealed(tr_writer *w, tr_lane *l) {
  if (!l->unkicked) return;
  l->unkicked = false;
  tr_sink_kick(&w->sink);
}

void tr_writer_lane_flush(tr_writer *w, unsigned lane, bool force) {
  tr_lane *l = &w->lanes[lane];
  if (l->c == NULL || l->c->len == 0) {
    kick_sealed(w, l);
    return;
  }
  /* Relaxed: as in tr_lane_reserve. */
  if (atomic_load_explicit(&w->sink.failed, memory_order_relaxed)) {
    discard(l);
    kick_sealed(w, l);
    return;
  }
  if (!force && (w->seal_min > 0 || w->seal_age_ns > 0)) {
    /* The buffer's age is counted from the first flush that saw it hold
     * bytes: a pass later than its first byte at most, and no clock read
     * per event. */
    uint64_t now = coarse_ns();
    if (l->since == 0) l->since = now;
    if (l->c->len < w->seal_min && now - l->since < w->seal_age_ns) {
      kick_sealed(w, l);
      return;
    }
  }
  seal(w, l, true);
}

void tr_writer_stats(const tr_writer *w, uint64_t *events, uint64_t *dropped,
                     uint64_t *bytes) {
  /* Acquire: pairs with the I/O thread's release add (sink.c,
   * write_chunk): the lane counts that held the lost events are then
   * visible to the loads below. */
  uint64_t lost = atomic_load_explicit(&w->sink.lost, memory_order_acquire);
  uint64_t e = 0, d = 0;
  for (unsigned i = 0; i < w->nlanes; i++) {
    /* Relaxed: each is one lane's running count (tr_lane_count). */
    e += atomic_load_explicit(&w->lanes[i].events, memory_order_relaxed);
    d += atomic_load_explicit(&w->lanes[i].dropped, memory_order_relaxed);
  }
  if (events != NULL) *events = e - lost;
  if (dropped != NULL) *dropped = d + lost;
  /* Relaxed: the I/O thread's running count (tr_writer_write_all). */
  if (bytes != NULL)
    *bytes = atomic_load_explicit(&w->sink.bytes, memory_order_relaxed);
}

void tr_writer_set_max_bytes(tr_writer *w, uint64_t max_bytes) {
  /* Under the mutex, which the I/O thread takes before it writes any
   * numbered chunk: it then sees the bound. */
  pthread_mutex_lock(&w->sink.mu);
  w->sink.max_bytes = max_bytes;
  pthread_mutex_unlock(&w->sink.mu);
  /* The bound is checked chunk by chunk: chunks of at most a sixteenth of
   * it end the trace within about that much of it. */
  if (max_bytes == 0) return;
  uint64_t at = max_bytes / 16;
  if (at < 4096) at = 4096;
  if (at < w->seal_at) w->seal_at = (size_t)at;
}

void tr_writer_cut(const tr_writer *w, bool *limited, int *err,
                   bool *unclosed) {
  *limited = false;
  *err = 0;
  *unclosed = false;
  int rc;
  if (!tr_writer_done(w, &rc)) return;
  /* Relaxed: ordered by the acquire load in tr_writer_done. */
  *limited = atomic_load_explicit(&w->sink.limited, memory_order_relaxed);
  *err = rc;
  *unclosed = w->sink.unclosed;
}

/* On the I/O thread, at the end: every lane is done by then, so the
 * counts are final. */
size_t tr_writer_cut_note(const tr_writer *w, char *buf, size_t cap,
                          uint64_t *ts) {
  const tr_sink *k = &w->sink;
  /* Relaxed: this thread stored them. */
  bool failed = atomic_load_explicit(&k->failed, memory_order_relaxed);
  bool limited = atomic_load_explicit(&k->limited, memory_order_relaxed);
  if (!failed && !limited) return 0;
  uint64_t dropped;
  tr_writer_stats(w, NULL, &dropped, NULL);
  char why[160];
  if (failed) {
    char err[96];
    snprintf(why, sizeof(why), "write failed: %s",
             strerror_r(-k->rc, err, sizeof(err)));
  } else {
    snprintf(why, sizeof(why), "size limit of %llu bytes reached",
             (unsigned long long)k->max_bytes);
  }
  /* strerror's words hold no quote or backslash. */
  int n =
      snprintf(buf, cap, "traced: trace cut short (%s): %llu events dropped",
               why, (unsigned long long)dropped);
  *ts = k->cut_ns;
  return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

void tr_writer_free(tr_writer *w) {
  if (w == NULL) return;
  tr_sink_fini(&w->sink);
  if (w->lanes != NULL)
    for (unsigned i = 0; i < w->nlanes; i++) {
      tr_chunk_free(w->lanes[i].c);
      free(w->lanes[i].dict);
    }
  tr_aligned_free(w->lanes);
  w->lanes = NULL;
  w->ops->free(w);
}

int tr_wstream_open(tr_writer *w, unsigned lane, uint32_t pid, tr_name_fn name,
                    void *name_ctx, tr_wstream **out) {
  if (lane >= w->nlanes) return -EINVAL;
  tr_wstream *s = calloc(1, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  s->w = w;
  s->lane = lane;
  s->pid = pid;
  s->name = name;
  s->name_ctx = name_ctx;
  int rc = w->ops->stream_open(s);
  if (rc < 0) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void tr_wstream_close(tr_wstream *s) {
  if (s == NULL) return;
  s->w->ops->stream_close(s);
  free(s);
}

/* sink.c: a writer's ordered chunk sink: the queue of sealed chunks and
 * the I/O thread that writes them, in order, with the footer after the
 * last; the first failed write; streaming writeback. */
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "writer.h"

/* Where a regular file's stream begins (for writeback), else -1. */
static int64_t writeback_base(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return -1;
  off_t off = lseek(fd, 0, SEEK_CUR);
  return off < 0 ? -1 : (int64_t)off;
}

int tr_sink_init(tr_sink *k, int fd, size_t chunk_size, unsigned max_free) {
  k->fd = fd;
  k->chunk_size = chunk_size;
  k->max_free = max_free;
  k->wb_base = writeback_base(fd);
  atomic_init(&k->failed, false);
  atomic_init(&k->done, false);
  atomic_init(&k->bytes, 0);
  atomic_init(&k->backlog, 0);
  atomic_init(&k->lost, 0);
  if (pthread_mutex_init(&k->mu, NULL) != 0) return -ENOMEM;
  if (pthread_cond_init(&k->wake, NULL) != 0) {
    pthread_mutex_destroy(&k->mu);
    return -ENOMEM;
  }
  if (pthread_cond_init(&k->idle, NULL) != 0) {
    pthread_cond_destroy(&k->wake);
    pthread_mutex_destroy(&k->mu);
    return -ENOMEM;
  }
  k->inited = true;
  return 0;
}

/* Chunks outlive their writer in a pool shared by every writer of the
 * process, up to TR_SINK_POOL_BYTES: a session's first chunks are
 * otherwise fresh pages, and faulting them in was 4-6% of the daemon's
 * time on a short trace; the rest are unmapped (docs/benchmarks.md, "Cheaper
 * bytes").  The pool holds chunks of one size (all the writers' today); one of
 * another size is freed. */
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static tr_chunk *pool;    /* under pool_mu */
static size_t pool_bytes; /* under pool_mu */

void tr_chunk_free(tr_chunk *c) {
  if (c == NULL) return;
  /* A pooled chunk holds no allocation: its gzip output buffer goes now
   * (leak checkers do not look inside mapped memory, and a JSON or
   * Perfetto writer would only carry it). */
  tr_gzpiece_free(&c->gz);
  pthread_mutex_lock(&pool_mu);
  if ((pool == NULL || pool->size == c->size) &&
      pool_bytes + c->size <= TR_SINK_POOL_BYTES) {
    c->next = pool;
    pool = c;
    pool_bytes += c->size;
    c = NULL;
  }
  pthread_mutex_unlock(&pool_mu);
  if (c != NULL) munmap(c, sizeof(*c) + c->size);
}

/* Empties a chunk for its next use; a gzip chunk keeps its output
 * buffer. */
static tr_chunk *chunk_reset(tr_chunk *c) {
  c->next = NULL;
  c->seq = 0;
  c->events = 0;
  c->len = 0;
  c->off = 0;
  c->err = 0;
  c->eventful = false;
  c->ready = false;
  c->gz.len = 0;
  return c;
}

/* A chunk from the pool, or a new one. */
static tr_chunk *chunk_new(size_t size) {
  pthread_mutex_lock(&pool_mu);
  tr_chunk *c = pool;
  if (c != NULL && c->size == size) {
    pool = c->next;
    pool_bytes -= c->size;
  } else {
    c = NULL;
  }
  pthread_mutex_unlock(&pool_mu);
  if (c != NULL) return chunk_reset(c);
  /* Mapped, not malloc'd: a chunk given back is returned to the system
   * whole (chunks freed into malloc's arenas kept the daemon's RSS at its
   * high-water mark once idle), and a new one is zeroed pages. */
  c = mmap(NULL, sizeof(*c) + size, PROT_READ | PROT_WRITE,
           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (c == MAP_FAILED) return NULL;
  c->size = size;
  return c;
}

/* A chunk off the free list, or NULL; under the mutex. */
static tr_chunk *take_free(tr_sink *k) {
  tr_chunk *c = k->free;
  if (c != NULL) {
    k->free = c->next;
    k->nfree--;
  }
  return c;
}

tr_chunk *tr_sink_chunk(tr_sink *k) {
  pthread_mutex_lock(&k->mu);
  tr_chunk *c = take_free(k);
  pthread_mutex_unlock(&k->mu);
  return c != NULL ? chunk_reset(c) : chunk_new(k->chunk_size);
}

/* Appends p[0..n) to the stream's history, keeping its last `cap`
 * bytes. */
static void history_add(tr_sink *k, size_t cap, const char *p, size_t n) {
  if (n >= cap) {
    memcpy(k->hist, p + n - cap, cap);
    k->hist_len = cap;
    return;
  }
  size_t keep = k->hist_len + n > cap ? cap - n : k->hist_len;
  memmove(k->hist, k->hist + k->hist_len - keep, keep);
  memcpy(k->hist + keep, p, n);
  k->hist_len = keep + n;
}

/* Under the mutex: tells the I/O thread to write what is ready. */
static void kick(tr_sink *k) {
  k->kick = true;
  pthread_cond_signal(&k->wake);
}

void tr_sink_kick(tr_sink *k) {
  pthread_mutex_lock(&k->mu);
  kick(k);
  pthread_mutex_unlock(&k->mu);
}

/* Under the mutex: chunk c may be written.  The I/O thread is woken at the
 * end of a pass, once a few chunks are ready, or when it was already told
 * to write (c may be the one holding the others back). */
static void make_ready(tr_sink *k, tr_chunk *c, bool wake) {
  c->ready = true;
  k->nready++;
  if (wake || k->kick || k->nready >= TR_SINK_WAKE_CHUNKS) kick(k);
}

tr_chunk *tr_sink_seal(tr_writer *w, unsigned lane, tr_chunk *c, bool head,
                       bool wake) {
  tr_sink *k = &w->sink;
  bool hook = w->ops->seal != NULL;
  pthread_mutex_lock(&k->mu);
  /* Numbered and queued in one step, so the queue is in number order. */
  c->seq = head ? TR_CHUNK_HEAD : k->next_seq++;
  c->off = c->seq == 0 ? w->first_skip : 0;
  if (w->history > 0) {
    /* What precedes c in the file, for the seal hook; then c's own bytes
     * join the history.  Two copies of at most `history` bytes, in
     * sequence order, so each chunk gets exactly the bytes before it. */
    tr_lane *l = &w->lanes[lane];
    memcpy(l->dict, k->hist, k->hist_len);
    l->dict_len = k->hist_len;
    history_add(k, w->history, c->buf + c->off, c->len - c->off);
  }
  c->ready = false;
  c->next = NULL;
  if (k->tail != NULL)
    k->tail->next = c;
  else
    k->head = c;
  k->tail = c;
  /* Relaxed: the backlog is a gauge for the caller's back-pressure;
   * nothing else is published through it. */
  atomic_fetch_add_explicit(&k->backlog, c->len, memory_order_relaxed);
  tr_chunk *next = take_free(k);
  if (!hook) make_ready(k, c, wake);
  pthread_mutex_unlock(&k->mu);
  if (hook) {
    /* Outside the mutex: the I/O thread leaves c alone until it is
     * ready, and the mutex orders this work before its reads. */
    int rc = w->ops->seal(w, lane, c);
    pthread_mutex_lock(&k->mu);
    c->err = rc;
    make_ready(k, c, wake);
    pthread_mutex_unlock(&k->mu);
  }
  return next != NULL ? chunk_reset(next) : chunk_new(k->chunk_size);
}

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The first failed write: logged once; from then on the I/O thread writes
 * nothing, and lanes stop formatting. */
static void fail(tr_writer *w, int err) {
  char buf[128];
  tr_log(TR_LOG_ERROR,
         "event=write_error %s reason=\"writing the trace failed: %s; the "
         "rest of this session's events are dropped\"",
         w->label ? w->label : "session=?", strerror_r(-err, buf, sizeof(buf)));
  w->sink.rc = err;
  w->sink.cut_ns = monotonic_ns();
  /* Relaxed: lanes use it only to stop early (tr_lane_reserve); what they
   * format after the failure is discarded and counted all the same. */
  atomic_store_explicit(&w->sink.failed, true, memory_order_relaxed);
}

/* After a failed write: cuts the file back to `at` bytes of this writer's
 * stream (the end of the last whole chunk, so of the last whole event) and
 * goes on writing from there.  A write that failed part way (a disk that
 * filled) would otherwise leave half an event for a reader to choke on.
 * Sets `clean` when the file ends at `at`. */
static void cut_back(tr_writer *w, uint64_t at) {
  tr_sink *k = &w->sink;
  /* Relaxed: only this thread stores `bytes` (tr_writer_write_all). */
  uint64_t bytes = atomic_load_explicit(&k->bytes, memory_order_relaxed);
  k->clean = false;
  if (k->wb_base < 0) return; /* not a regular file: nothing to cut */
  if (bytes != at) {
    off_t off = (off_t)(k->wb_base + (int64_t)at);
    if (ftruncate(k->fd, off) < 0 || lseek(k->fd, off, SEEK_SET) != off) {
      char buf[128];
      tr_log(TR_LOG_ERROR,
             "event=write_error %s reason=\"cutting the trace back to its "
             "last whole event failed: %s; the file ends mid-event\"",
             w->label ? w->label : "session=?",
             strerror_r(errno, buf, sizeof(buf)));
      return;
    }
    atomic_store_explicit(&k->bytes, at, memory_order_relaxed);
  }
  k->clean = true;
}

/* The bytes chunk c puts in the file, which begin at c->buf + *start
 * (gzip: its compressed piece).  The first numbered chunk written leaves
 * out the separator its first event begins with, whichever chunk it is:
 * past the size bound, the chunks before it may have been left out. */
static size_t chunk_out(const tr_writer *w, const tr_chunk *c, size_t *start) {
  *start = c->off;
  if (w->format == TR_FORMAT_JSON_GZ) return c->gz.len;
  if (c->seq != TR_CHUNK_HEAD && !w->sink.body && c->len >= w->first_skip)
    *start = w->first_skip;
  return c->len - *start;
}

/* Whether n more bytes (chunk c's) go in the file under the size bound.
 * The first chunk that would pass it (less the room its ending needs)
 * fills the trace: from then on lanes format no events, and chunks that
 * hold any are left out.  A chunk of metadata alone (the names written as
 * processes leave) still goes in while it fits, as names matter more than
 * events, but not in gzip, whose pieces refer back to the bytes before
 * them. */
static bool within_bound(tr_writer *w, const tr_chunk *c, size_t n) {
  tr_sink *k = &w->sink;
  if (k->max_bytes == 0 || c->seq == TR_CHUNK_HEAD) return true;
  /* Relaxed: only this thread stores `bytes` and `limited`. */
  uint64_t bytes = atomic_load_explicit(&k->bytes, memory_order_relaxed);
  bool fits = bytes + n + TR_WRITER_END_RESERVE <= k->max_bytes;
  if (!atomic_load_explicit(&k->limited, memory_order_relaxed)) {
    if (fits) return true;
    tr_log(TR_LOG_INFO,
           "event=size_limit %s max_size=%llu reason=\"the trace reached its "
           "size limit; the rest of this session's events are dropped\"",
           w->label ? w->label : "session=?", (unsigned long long)k->max_bytes);
    k->cut_ns = monotonic_ns();
    /* Relaxed: as `failed` (fail()): lanes only stop early. */
    atomic_store_explicit(&k->limited, true, memory_order_relaxed);
  }
  return fits && !c->eventful && w->format != TR_FORMAT_JSON_GZ;
}

/* Writes chunk c, or after a failure or past the size bound leaves it
 * out: its events move from `events` to `dropped`. */
static void write_chunk(tr_writer *w, tr_chunk *c) {
  tr_sink *k = &w->sink;
  /* Relaxed: only this thread stores `failed`. */
  if (!atomic_load_explicit(&k->failed, memory_order_relaxed)) {
    int rc = c->err;
    size_t start = 0, n = rc == 0 ? chunk_out(w, c, &start) : 0;
    if (rc != 0) {
      fail(w, rc);
      cut_back(w, atomic_load_explicit(&k->bytes, memory_order_relaxed));
    } else if (within_bound(w, c, n)) {
      uint64_t at = atomic_load_explicit(&k->bytes, memory_order_relaxed);
      rc = w->ops->io_chunk != NULL ? w->ops->io_chunk(w, c)
                                    : tr_writer_write_all(w, c->buf + start, n);
      if (rc == 0) {
        if (c->seq != TR_CHUNK_HEAD) k->body = true;
        return;
      }
      fail(w, rc);
      cut_back(w, at);
      /* Without its head the file is no trace an ending could close. */
      if (c->seq == TR_CHUNK_HEAD) k->clean = false;
    }
  }
  /* Release: pairs with the acquire load in tr_writer_stats.  The lane
   * counted these events before it sealed c (and sealing released the
   * mutex this thread acquired since), so a reader that sees them lost
   * also sees them counted, and its events - lost never goes below
   * zero. */
  atomic_fetch_add_explicit(&k->lost, c->events, memory_order_release);
}

/* The ending (io_end): after a failed write, only once the file was cut
 * back to a whole event; when it cannot be written either, the file is
 * cut back again and said to be unclosed. */
static void write_end(tr_writer *w) {
  tr_sink *k = &w->sink;
  /* Relaxed: only this thread stores `failed` and `bytes`. */
  bool failed = atomic_load_explicit(&k->failed, memory_order_relaxed);
  if (w->ops->io_end == NULL) return;
  if (failed && !k->clean) {
    k->unclosed = true;
    return;
  }
  uint64_t at = atomic_load_explicit(&k->bytes, memory_order_relaxed);
  int rc = w->ops->io_end(w);
  if (rc == 0) return;
  if (!failed) {
    fail(w, rc);
  } else {
    char buf[128];
    tr_log(TR_LOG_ERROR,
           "event=write_error %s reason=\"writing the trace's closing failed "
           "too: %s; the file ends at its last whole event, unclosed\"",
           w->label ? w->label : "session=?",
           strerror_r(-rc, buf, sizeof(buf)));
  }
  cut_back(w, at);
  k->unclosed = true;
}

/* Written chunks go back on the free list, up to max_free; the rest are
 * returned through *spare, to be freed outside the mutex. */
static void recycle(tr_sink *k, tr_chunk *list, tr_chunk **spare) {
  for (tr_chunk *c = list, *next; c != NULL; c = next) {
    next = c->next;
    if (k->nfree < k->max_free) {
      c->next = k->free;
      k->free = c;
      k->nfree++;
    } else {
      c->next = *spare;
      *spare = c;
    }
  }
}

static void *io_main(void *arg) {
  tr_writer *w = arg;
  tr_sink *k = &w->sink;
  pthread_mutex_lock(&k->mu);
  for (;;) {
    while (!k->stop &&
           !((k->kick || k->closing) && k->head != NULL && k->head->ready) &&
           !(k->closing && k->head == NULL))
      pthread_cond_wait(&k->wake, &k->mu);
    if (k->stop || k->head == NULL) break;
    /* The ready prefix of the queue, written without the mutex. */
    tr_chunk *batch = k->head, *last = batch;
    unsigned taken = 1;
    for (; last->next != NULL && last->next->ready; taken++) last = last->next;
    k->nready -= taken;
    k->kick = false;
    k->head = last->next;
    if (k->head == NULL) k->tail = NULL;
    last->next = NULL;
    k->writing = true;
    pthread_mutex_unlock(&k->mu);
    uint64_t n = 0;
    for (tr_chunk *c = batch; c != NULL; c = c->next) {
      write_chunk(w, c);
      n += c->len;
    }
    tr_chunk *spare = NULL;
    pthread_mutex_lock(&k->mu);
    recycle(k, batch, &spare);
    /* Relaxed: a gauge, as in tr_sink_seal. */
    atomic_fetch_sub_explicit(&k->backlog, n, memory_order_relaxed);
    k->writing = false;
    pthread_cond_broadcast(&k->idle);
    if (spare != NULL) {
      pthread_mutex_unlock(&k->mu);
      for (tr_chunk *c = spare, *next; c != NULL; c = next) {
        next = c->next;
        tr_chunk_free(c);
      }
      pthread_mutex_lock(&k->mu);
    }
  }
  bool closing = k->closing && !k->stop;
  pthread_mutex_unlock(&k->mu);
  if (!closing) return NULL;
  write_end(w);
  pthread_mutex_lock(&k->mu);
  /* Release: pairs with the acquire load in tr_writer_done, so whoever
   * sees done also sees rc, the final counters and every write. */
  atomic_store_explicit(&k->done, true, memory_order_release);
  void (*fn)(void *) = k->notify;
  void *fn_arg = k->notify_arg;
  pthread_cond_broadcast(&k->idle);
  pthread_mutex_unlock(&k->mu);
  /* The last thing this thread does with the writer: the callback may
   * lead to tr_writer_free, which joins this thread. */
  if (fn != NULL) fn(fn_arg);
  return NULL;
}

int tr_sink_start(tr_writer *w) {
  tr_sink *k = &w->sink;
  /* The I/O thread takes no signals: the event loop handles them, and a
   * reader gone from a pipe makes write(2) fail with EPIPE here rather
   * than raise SIGPIPE. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&k->thread, NULL, io_main, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) return -rc;
  k->started = true;
  return 0;
}

static void free_list(tr_chunk *c) {
  while (c != NULL) {
    tr_chunk *next = c->next;
    tr_chunk_free(c);
    c = next;
  }
}

void tr_sink_fini(tr_sink *k) {
  if (!k->inited) return;
  if (k->started) {
    pthread_mutex_lock(&k->mu);
    if (!k->closing) k->stop = true;
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    k->started = false;
  }
  free_list(k->head);
  free_list(k->free);
  k->head = k->tail = k->free = NULL;
  free(k->hist);
  k->hist = NULL;
  pthread_cond_destroy(&k->idle);
  pthread_cond_destroy(&k->wake);
  pthread_mutex_destroy(&k->mu);
  k->inited = false;
}

/* ---- the public half (writer.h) ------------------------------------------
 */

void tr_writer_close(tr_writer *w) {
  tr_sink *k = &w->sink;
  pthread_mutex_lock(&k->mu);
  k->closing = true;
  pthread_cond_signal(&k->wake);
  pthread_mutex_unlock(&k->mu);
}

bool tr_writer_done(const tr_writer *w, int *rc) {
  /* Acquire: pairs with the I/O thread's release store (io_main). */
  if (!atomic_load_explicit(&w->sink.done, memory_order_acquire)) return false;
  if (rc != NULL) *rc = w->sink.rc;
  return true;
}

void tr_writer_set_notify(tr_writer *w, void (*fn)(void *arg), void *arg) {
  tr_sink *k = &w->sink;
  pthread_mutex_lock(&k->mu);
  k->notify = fn;
  k->notify_arg = arg;
  pthread_mutex_unlock(&k->mu);
}

int tr_writer_wait(tr_writer *w) {
  tr_sink *k = &w->sink;
  if (!k->started) return k->rc;
  pthread_mutex_lock(&k->mu);
  kick(k);
  /* Relaxed load of done: it is stored under this mutex. */
  while (!k->stop &&
         !(k->closing ? atomic_load_explicit(&k->done, memory_order_relaxed)
                      : k->head == NULL && !k->writing))
    pthread_cond_wait(&k->idle, &k->mu);
  int rc = k->rc;
  pthread_mutex_unlock(&k->mu);
  return rc;
}

uint64_t tr_writer_backlog(const tr_writer *w) {
  /* Relaxed: a gauge (tr_sink_seal). */
  return atomic_load_explicit(&w->sink.backlog, memory_order_relaxed);
}

/* A long trace would otherwise fill the page cache with gigabytes of
 * dirty pages: the kernel then throttles and reclaims in the daemon's own
 * write(2) calls, which made a 9.5 GB trace spend three times as long in
 * the kernel as in the daemon (docs/benchmarks.md).  So past
 * TR_WRITEBACK_AFTER, writeback of each TR_WRITEBACK_CHUNK is started as
 * soon as it is written (asynchronous), and the chunk before it, written
 * back by then, leaves the cache.  Smaller traces are left to the kernel:
 * starting writeback ourselves moves that work into the daemon, which
 * costs more than it saves until the cache fills. */
static void writeback(tr_sink *k, uint64_t bytes) {
  if (bytes < TR_WRITEBACK_AFTER) return;
  if (k->wb_started == 0) k->wb_started = bytes - bytes % TR_WRITEBACK_CHUNK;
  while (bytes - k->wb_started >= TR_WRITEBACK_CHUNK) {
    off_t off = (off_t)(k->wb_base + (int64_t)k->wb_started);
    sync_file_range(k->fd, off, TR_WRITEBACK_CHUNK, SYNC_FILE_RANGE_WRITE);
    posix_fadvise(k->fd, off - TR_WRITEBACK_CHUNK, TR_WRITEBACK_CHUNK,
                  POSIX_FADV_DONTNEED);
    k->wb_started += TR_WRITEBACK_CHUNK;
  }
}

int tr_writer_write_all(tr_writer *w, const void *p, size_t n) {
  tr_sink *k = &w->sink;
  const char *b = p;
  /* Relaxed: only this thread (the I/O thread) writes `bytes`; readers
   * (tr_writer_stats) want a recent value, nothing more. */
  uint64_t bytes = atomic_load_explicit(&k->bytes, memory_order_relaxed);
  while (n > 0) {
    ssize_t m = write(k->fd, b, n);
    if (m < 0 && errno == EINTR) continue;
    if (m <= 0) return m < 0 ? -errno : -EIO;
    bytes += (uint64_t)m;
    atomic_store_explicit(&k->bytes, bytes, memory_order_relaxed);
    b += m;
    n -= (size_t)m;
  }
  if (k->wb_base >= 0) writeback(k, bytes);
  return 0;
}

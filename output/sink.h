/* sink.h: a writer's ordered chunk sink: lanes hand it chunks of
 * formatted output, numbered in the order they are sealed, and its own
 * I/O thread writes them to the file strictly in that order.
 *
 * Every write(2) and pwrite(2) of the writer's file runs on that thread,
 * never on a lane's thread (the daemon's drain workers) or on the event
 * loop, so a slow disk holds up only its own writer.  The queue never
 * blocks a lane: the daemon bounds it itself, from tr_writer_backlog().
 *
 * A sealed chunk may still need work on the thread that sealed it before
 * it can be written (gzip compresses it there, outside the mutex); the
 * I/O thread writes only a prefix of the queue whose chunks are all
 * ready, so a chunk being compressed holds back those after it.
 *
 * The mutex and its two condition variables guard the queue, the free
 * list and the closing state; everything else in tr_sink is the I/O
 * thread's, or atomic.  The public half of this (close, done, backlog,
 * notify, stats) is declared in writer.h; this header is for writer.c and
 * the backends. */
#ifndef TRACED_SINK_H
#define TRACED_SINK_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gzout.h"

/* Ready chunks that wake the I/O thread before the lane's pass ends (the
 * end of a pass, a wait and close always do): a thread woken for every
 * chunk spends a tenth of a fast writer's time switching. */
#define TR_SINK_WAKE_CHUNKS 4

/* Written chunks a writer keeps for reuse, in bytes (at least a chunk
 * per lane and two more).  A writer kept at the daemon's backlog bound
 * (TR_BACKLOG_MAX, daemon/worker.h) then allocates almost nothing: each
 * chunk freed and allocated again is fresh pages, and their page faults
 * were 5-8% of the daemon's time on a JSON trace (docs/benchmarks.md,
 * "Cheaper bytes"). */
#define TR_SINK_KEEP_BYTES (8u << 20)

/* Written chunks kept for the next writers, in bytes, for the whole
 * process (sink.c: the pool). */
#define TR_SINK_POOL_BYTES (8u << 20)

/* The sequence number of the file's head: written before every numbered
 * chunk, and not counted among them. */
#define TR_CHUNK_HEAD UINT64_MAX

/* A buffer of formatted output: filled by one lane, then sealed into the
 * queue, written, and reused. */
typedef struct tr_chunk {
  struct tr_chunk *next; /* in the queue or on the free list */
  uint64_t seq;          /* 0, 1, ... in sealing order, or TR_CHUNK_HEAD */
  uint64_t events;       /* events counted in it: lost with it */
  size_t size;           /* bytes of buf */
  size_t len;            /* bytes in buf */
  size_t off;            /* the first byte to write (see first_skip) */
  int err;       /* set by the seal hook: the writer fails at this chunk */
  bool eventful; /* holds an event's bytes, counted or not (a Perfetto
                    slice's begin): left out once the trace is full */
  bool ready;    /* may be written; under the sink's mutex */
  tr_gzpiece gz; /* gzip: buf[off..len) compressed */
  char buf[];    /* the sink's chunk_size bytes */
} tr_chunk;

typedef struct tr_sink {
  pthread_mutex_t mu;
  pthread_cond_t wake;   /* for the I/O thread: a chunk is ready, or close */
  pthread_cond_t idle;   /* for tr_writer_wait: written up to here, or done */
  tr_chunk *head, *tail; /* sealed chunks, in sequence order */
  tr_chunk *free;        /* written chunks kept for reuse */
  unsigned nfree, max_free;
  uint64_t next_seq;
  /* With the writer's history: the last bytes of what was sealed so far
   * (from each chunk, what will be written), in sequence order. */
  uint8_t *hist;
  size_t hist_len;
  unsigned nready; /* ready chunks in the queue */
  bool kick;       /* the I/O thread is to write what is ready */
  bool writing;    /* the I/O thread holds chunks taken off the queue */
  bool closing;    /* tr_writer_close: write the footer once all is written */
  bool stop;       /* tr_writer_free before close: discard and stop */
  bool started;    /* the thread runs (and must be joined) */
  bool inited;     /* mu and the conditions exist */
  void (*notify)(void *arg);
  void *notify_arg;
  pthread_t thread;
  size_t chunk_size; /* bytes of each chunk's buf */
  int fd;            /* borrowed */
  int rc;            /* the first failed write's negative errno, or 0 */
  /* Streaming writeback (tr_writer_write_all): the file offset where this
   * writer's bytes begin, -1 when the output is no regular file; and how
   * many of them have been handed to writeback.  I/O thread only. */
  int64_t wb_base;
  uint64_t wb_started;
  /* The trace's size bound (tr_writer_set_max_bytes; 0: none): set under
   * mu before the first numbered chunk is sealed, then read only by the
   * I/O thread. */
  uint64_t max_bytes;
  uint64_t cut_ns; /* CLOCK_MONOTONIC ns when the trace was cut short */
  bool body;       /* a numbered chunk was written (I/O thread only) */
  /* After a failed write: the file was cut back to its last whole chunk
   * (`clean`), and whether the ending then written failed too
   * (`unclosed`).  Read by others once done. */
  bool clean;
  bool unclosed;
  atomic_bool failed; /* a write failed: nothing more is written */
  /* The size bound was reached: lanes stop formatting events (relaxed,
   * like `failed`), the I/O thread writes no more chunks holding any. */
  atomic_bool limited;
  atomic_bool done;         /* the I/O thread finished after close */
  _Atomic uint64_t bytes;   /* written to the file (compressed for gzip) */
  _Atomic uint64_t backlog; /* bytes sealed and not yet written */
  _Atomic uint64_t lost;    /* events of chunks discarded after a failure */
} tr_sink;

struct tr_writer;

/* Sets up k for fd (borrowed), with chunks of chunk_size bytes, keeping
 * at most max_free written ones for reuse.  Returns 0 or -ENOMEM. */
int tr_sink_init(tr_sink *k, int fd, size_t chunk_size, unsigned max_free);

/* Frees a chunk no sink holds, or keeps it for the next writer's use
 * (sink.c: the pool).  NULL is a no-op.  Thread-safe. */
void tr_chunk_free(tr_chunk *c);

/* An empty chunk, reused or new; NULL when out of memory.  Thread-safe. */
tr_chunk *tr_sink_chunk(tr_sink *k);

/* Seals chunk c of `lane` (on its thread): numbers it (or, with `head`,
 * makes it the file's head), queues it, copies the stream's history
 * before it into the lane's dict and runs the writer's seal hook; wakes
 * the I/O thread with `wake` (the end of a pass) or once
 * TR_SINK_WAKE_CHUNKS are ready.  Returns an empty chunk for the lane to
 * go on with, NULL when out of memory. */
tr_chunk *tr_sink_seal(struct tr_writer *w, unsigned lane, tr_chunk *c,
                       bool head, bool wake);

/* Wakes the I/O thread to write what is ready.  Thread-safe. */
void tr_sink_kick(tr_sink *k);

/* Starts w's I/O thread.  Returns 0 or a negative errno. */
int tr_sink_start(struct tr_writer *w);

/* Stops the I/O thread (discarding what is queued unless the writer was
 * closed, in which case it waits for done) and frees every chunk. */
void tr_sink_fini(tr_sink *k);

#endif

/* gzout.c: gzip compression of a writer's output, streamed to its file. */
#include "gzout.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int tr_gzout_init(tr_gzout *g, tr_writer *w, int fd) {
  memset(g, 0, sizeof(*g));
  g->w = w;
  g->fd = fd;
  g->out = malloc(TR_GZ_OUT_SIZE);
  if (g->out == NULL) return -ENOMEM;
  /* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
  int rc = deflateInit2(&g->zs, TR_GZ_LEVEL, Z_DEFLATED, 15 + 16, 8,
                        Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) {
    free(g->out);
    g->out = NULL;
    return rc == Z_MEM_ERROR ? -ENOMEM : -EINVAL;
  }
  g->last_sync = now_ns();
  return 0;
}

/* Runs deflate over the input with `flush` until it has consumed it all
 * (and, for Z_SYNC_FLUSH and Z_FINISH, produced all its output), writing
 * each full output buffer. */
static int run(tr_gzout *g, const void *data, size_t n, int flush) {
  g->zs.next_in = (Bytef *)(uintptr_t)data;
  g->zs.avail_in = (uInt)n;
  for (;;) {
    g->zs.next_out = g->out;
    g->zs.avail_out = TR_GZ_OUT_SIZE;
    int rc = deflate(&g->zs, flush);
    if (rc == Z_STREAM_ERROR) return -EINVAL;
    size_t have = TR_GZ_OUT_SIZE - g->zs.avail_out;
    if (have > 0) {
      int wr = tr_writer_write_all(g->w, g->fd, g->out, have);
      if (wr < 0) return wr;
    }
    /* Done when deflate left room in the output buffer: it has taken all
     * the input and, when flushing, emitted everything. */
    if (g->zs.avail_out != 0 || rc == Z_STREAM_END) break;
  }
  return 0;
}

int tr_gzout_write(tr_gzout *g, const void *data, size_t n) {
  if (n == 0) return 0;
  /* avail_in is a uInt; the JSON writer hands in at most one buffer. */
  g->pending = true;
  return run(g, data, n, Z_NO_FLUSH);
}

int tr_gzout_sync(tr_gzout *g, bool force) {
  if (!g->pending) return 0;
  uint64_t now = now_ns();
  if (!force && now - g->last_sync < TR_GZ_SYNC_NS) return 0;
  g->pending = false;
  g->last_sync = now;
  return run(g, NULL, 0, Z_SYNC_FLUSH);
}

int tr_gzout_finish(tr_gzout *g, const void *data, size_t n) {
  g->pending = false;
  return run(g, data, n, Z_FINISH);
}

void tr_gzout_free(tr_gzout *g) {
  if (g->out == NULL) return;
  deflateEnd(&g->zs);
  free(g->out);
  g->out = NULL;
}

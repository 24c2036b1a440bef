/* writer.c: what every trace writer backend shares: streams, failing
 * once, writing a buffer out with streaming writeback. */
#include "writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

/* Where a regular file's stream begins (for writeback), else -1. */
static int64_t writeback_base(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return -1;
  off_t off = lseek(fd, 0, SEEK_CUR);
  return off < 0 ? -1 : (int64_t)off;
}

void tr_writer_writeback_init(tr_writer *w, int fd) {
  w->wb_base = writeback_base(fd);
  w->wb_started = 0;
}

void tr_writer_failed(tr_writer *w, int err, uint64_t lost) {
  tr_log(TR_LOG_ERROR,
         "event=write_error %s reason=\"writing the trace failed: %s; the "
         "rest of this session's events are dropped\"",
         w->label ? w->label : "session=?", strerror(-err));
  w->dropped += lost;
  w->events -= lost;
}

void tr_writer_free(tr_writer *w) {
  if (w != NULL) w->ops->free(w);
}

int tr_wstream_open(tr_writer *w, uint32_t pid, tr_name_fn name, void *name_ctx,
                    tr_wstream **out) {
  tr_wstream *s = calloc(1, sizeof(*s));
  if (s == NULL) return -ENOMEM;
  s->w = w;
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

/* A long trace would otherwise fill the page cache with gigabytes of
 * dirty pages: the kernel then throttles and reclaims in the daemon's own
 * write(2) calls, which made a 9.5 GB trace spend three times as long in
 * the kernel as in the daemon (docs/benchmarks.md).  So past
 * TR_WRITEBACK_AFTER, writeback of each TR_WRITEBACK_CHUNK is started as
 * soon as it is written (asynchronous), and the chunk before it, written
 * back by then, leaves the cache.  Smaller traces are left to the kernel:
 * starting writeback ourselves moves that work into the daemon, which
 * costs more than it saves until the cache fills. */
static void writeback(tr_writer *w, int fd) {
  if (w->bytes < TR_WRITEBACK_AFTER) return;
  if (w->wb_started == 0)
    w->wb_started = w->bytes - w->bytes % TR_WRITEBACK_CHUNK;
  while (w->bytes - w->wb_started >= TR_WRITEBACK_CHUNK) {
    off_t off = (off_t)(w->wb_base + (int64_t)w->wb_started);
    sync_file_range(fd, off, TR_WRITEBACK_CHUNK, SYNC_FILE_RANGE_WRITE);
    posix_fadvise(fd, off - TR_WRITEBACK_CHUNK, TR_WRITEBACK_CHUNK,
                  POSIX_FADV_DONTNEED);
    w->wb_started += TR_WRITEBACK_CHUNK;
  }
}

int tr_writer_write_all(tr_writer *w, int fd, const void *p, size_t n) {
  const char *b = p;
  while (n > 0) {
    ssize_t k = write(fd, b, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return k < 0 ? -errno : -EIO;
    w->bytes += (uint64_t)k;
    b += k;
    n -= (size_t)k;
  }
  if (w->wb_base >= 0) writeback(w, fd);
  return 0;
}

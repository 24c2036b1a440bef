/* gzout.h: a streaming gzip compressor (zlib deflate) writing to a file
 * descriptor with fixed memory, for the JSON writer's .json.gz output.
 *
 * The file is one gzip member (RFC 1952) from the first byte on.  Data
 * handed in with tr_gzout_write() is compressed without flushing, so
 * deflate sees long runs and compresses well; tr_gzout_sync() ends the
 * current deflate block with a Z_SYNC_FLUSH, after which everything handed
 * in so far can be decompressed from the file even if nothing more is
 * ever written (the daemon killed): `zcat` prints it, then reports the
 * missing end.  The writer syncs at most once per TR_GZ_SYNC_NS
 * (docs/formats.md says why).  tr_gzout_finish() writes the final block
 * and the CRC-32 and length trailer.
 *
 * Memory: zlib's deflate state for windowBits 15, memLevel 8 (about
 * 256 KiB) and a TR_GZ_OUT_SIZE output buffer, whatever the trace's
 * length. */
#ifndef TRACED_GZOUT_H
#define TRACED_GZOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#include "writer.h"

#define TR_GZ_OUT_SIZE (64u * 1024u)
#define TR_GZ_SYNC_NS 1000000000ull /* at most one sync flush a second */
#define TR_GZ_LEVEL 6               /* zlib's default speed/size balance */

typedef struct tr_gzout {
  z_stream zs;
  tr_writer *w; /* borrowed: its `bytes` counts what reaches the file */
  int fd;       /* borrowed */
  uint8_t *out;
  bool pending;       /* data handed in since the last sync */
  uint64_t last_sync; /* CLOCK_MONOTONIC ns of the last sync */
} tr_gzout;

/* Sets up the compressor.  Returns 0, -ENOMEM, or -EINVAL if zlib refuses
 * the parameters. */
int tr_gzout_init(tr_gzout *g, tr_writer *w, int fd);

/* Compresses n bytes, writing whatever output deflate produces.  Returns 0
 * or the negative errno of a failed write. */
int tr_gzout_write(tr_gzout *g, const void *data, size_t n);

/* When data arrived since the last sync and TR_GZ_SYNC_NS have passed (or
 * `force`), flushes deflate to a byte boundary and writes the output.
 * Returns 0 or a negative errno. */
int tr_gzout_sync(tr_gzout *g, bool force);

/* Compresses the last n bytes and ends the member.  Returns 0 or a
 * negative errno. */
int tr_gzout_finish(tr_gzout *g, const void *data, size_t n);

/* Frees zlib's state and the buffer (the descriptor stays open). */
void tr_gzout_free(tr_gzout *g);

#endif

/* gzout.h: gzip output compressed in pieces on several threads (pigz's
 * scheme), which still make one gzip member (RFC 1952) read by every gzip
 * reader, for the JSON writer's .json.gz output.
 *
 * The member is: the gzip header and the JSON head in a stored
 * (uncompressed) deflate block (tr_gz_head); then one piece per chunk of
 * JSON, each a raw deflate stream of its own, started from a fresh state
 * primed with the 32 KiB of JSON before it as its dictionary (what the
 * window of one stream would hold there; the bytes are known when the
 * chunk is sealed, whoever compresses the chunk before) and ended by a
 * Z_SYNC_FLUSH, so it ends on a byte boundary with no final block
 * (tr_gz_compress); then
 * the JSON footer in a final stored block and the trailer: the CRC-32 of
 * everything, combined from the pieces' CRCs in order, and the length
 * (tr_gz_end).  Concatenated in order the pieces are one valid deflate
 * stream, so the pieces can be compressed on different threads in any
 * order and written in order.  A file cut short (the daemon killed)
 * decompresses up to its last whole piece: `zcat` prints that much, then
 * reports the missing end.
 *
 * A piece is compressed once it holds TR_GZ_CHUNK_MIN bytes or its oldest
 * byte is TR_GZ_SYNC_NS old (docs/formats.md says why: each piece ends
 * with a sync marker and a block header, which cost a few bytes).
 *
 * Memory: per compressing thread (tr_gzlane) zlib's deflate state for
 * windowBits 15, memLevel 8 (about 256 KiB); per piece its output, at most
 * a little more than its input. */
#ifndef TRACED_GZOUT_H
#define TRACED_GZOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

#define TR_GZ_SYNC_NS 1000000000ull   /* a byte waits at most a second */
#define TR_GZ_CHUNK_MIN (64u * 1024u) /* a piece worth compressing alone */
/* zlib's level: docs/formats.md (3 deflates 2.5x as fast as 6, files 8-19%
 * larger).  A build may choose another with -DTR_GZ_LEVEL=N in CFLAGS;
 * docs/benchmarks.md ("A real program") measures 1 and 6 against 3. */
#ifndef TR_GZ_LEVEL
#define TR_GZ_LEVEL 3
#endif
#define TR_GZ_DICT_MAX (32u * 1024u) /* deflate's window */

/* One thread's compressor: zlib's raw deflate state, set up on first use
 * and reset for each piece. */
typedef struct tr_gzlane {
  z_stream zs;
  bool ready; /* zs is initialised */
} tr_gzlane;

/* Compressed bytes of the member and what they hold. */
typedef struct tr_gzpiece {
  uint8_t *out; /* malloc'd, cap bytes; kept from piece to piece */
  size_t len;   /* bytes in out */
  size_t cap;
  uint32_t crc; /* CRC-32 of the uncompressed bytes */
  size_t ulen;  /* uncompressed length */
} tr_gzpiece;

/* The running CRC-32 and length of the uncompressed member. */
typedef struct tr_gzsum {
  uint32_t crc;
  uint64_t len;
} tr_gzsum;

/* Compresses data[0..n) (n < 4 GiB) into p as a raw deflate stream ending
 * on a byte boundary, with z.  dict[0..dict_len) (at most 32 KiB) must be
 * the bytes that precede data in the member: the piece may refer back to
 * them, as one stream would.  Returns 0, -ENOMEM, or -EIO when zlib
 * fails. */
int tr_gz_compress(tr_gzlane *z, tr_gzpiece *p, const void *data, size_t n,
                   const uint8_t *dict, size_t dict_len);

/* The member's start into p: the gzip header, then data[0..n) (n <=
 * 65535) in a stored block.  Returns 0 or -ENOMEM. */
int tr_gz_head(tr_gzpiece *p, const void *data, size_t n);

/* Adds piece p (written after everything in *sum) to *sum. */
void tr_gz_add(tr_gzsum *sum, const tr_gzpiece *p);

/* The bytes tr_gz_end writes for an n-byte footer. */
#define TR_GZ_END_SIZE(n) (5u + (n) + 8u)

/* The member's end into out (TR_GZ_END_SIZE(n) bytes): data[0..n) (n <=
 * 65535) in a final stored block, then the trailer for *sum and the
 * footer.  Returns the bytes written. */
size_t tr_gz_end(uint8_t *out, const void *data, size_t n, const tr_gzsum *sum);

/* Frees z's zlib state (it can be set up again). */
void tr_gzlane_free(tr_gzlane *z);

/* Frees p's output buffer. */
void tr_gzpiece_free(tr_gzpiece *p);

#endif

/* peer.h: one client connection's transport: non-blocking reads with
 * descriptor passing (transport.h: recvmsg + SCM_RIGHTS on Unix, HANDLES
 * frames on Windows), frame reassembly, and a bounded buffer of replies.
 *
 * Descriptors belong to the frame whose first byte arrived with them: the
 * kernel never merges the data of a sendmsg that carried descriptors with
 * later data into one read, so the frame that takes them starts within
 * the bytes of that read.  A handler claims them with tr_peer_take_fds();
 * descriptors no frame claims are closed as soon as no later frame can. */
#ifndef TRACED_PEER_H
#define TRACED_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "common/platform.h"
#include "proto/traced_proto.h"
#include "transport.h"

#define TR_PEER_IN_INITIAL 4096u      /* grows up to one maximal frame */
#define TR_PEER_OUT_MAX (64u * 1024u) /* unsent replies beyond this: drop */
#define TR_PEER_FD_BATCHES 4
#define TR_PEER_READS_PER_WAKEUP 16 /* fairness between connections */

typedef struct tr_peer tr_peer;

/* Handles one complete frame; `payload` (h->len bytes) is valid during the
 * call.  The handler may claim descriptors and may end the connection
 * (set `dead`), after which no more frames are handled. */
typedef void (*tr_peer_frame_fn)(tr_peer *c, const tr_frame_hdr *h,
                                 const uint8_t *payload);

typedef struct tr_fd_batch {
  uint64_t start; /* stream offsets of the read that brought them */
  uint64_t end;
  int n;
  int fds[TR_FRAME_MAX_FDS];
} tr_fd_batch;

struct tr_peer {
  tr_watch poll; /* poll.data is the owner's */
  tr_watch_cb poll_cb;
  int fd;
  pid_t pid; /* SO_PEERCRED */
  uid_t uid;
  gid_t gid;
  bool dead;    /* being ended: nothing more is read or handled */
  bool closing; /* tr_peer_close was called */
  tr_peer_frame_fn on_frame;
  unsigned events; /* what the poll handle watches now */
  char err[160];   /* why tr_peer_read failed, for the log */

  uint8_t *in;
  size_t in_len;
  size_t in_cap;
  uint64_t in_pos;    /* stream offset of in[0] */
  uint64_t frame_pos; /* stream offset of the frame being handled */
  tr_fd_batch batches[TR_PEER_FD_BATCHES];
  int nbatches;

  uint8_t *out;
  size_t out_len;
  size_t out_cap;
};

/* Takes ownership of the accepted socket `fd` (non-blocking, close-on-exec),
 * reads the peer's credentials and starts polling it with `cb`.  On error
 * the caller still owns and closes fd. */
int tr_peer_init(tr_peer *c, uv_loop_t *loop, int fd, tr_peer_frame_fn fn,
                 tr_watch_cb cb);

/* Largest frame payload accepted from peers: TR_FRAME_MAX_PAYLOAD unless
 * the server lowers it (--max-frame-bytes).  Set before serving. */
extern uint32_t tr_peer_max_payload;

/* Reads what the socket holds (a bounded number of reads) and handles every
 * complete frame.  Returns 0 (nothing more for now), 1 (the peer closed its
 * end), or a negative errno with c->err saying why the connection must end:
 * -EMSGSIZE/-EPROTO (bad frame header), -EBADMSG (MSG_CTRUNC), -ENOBUFS
 * (descriptors arriving faster than frames), or the socket's error. */
int tr_peer_read(tr_peer *c);

/* Within a frame handler: claims up to `want` descriptors that arrived with
 * this frame; returns how many (0 if none).  Surplus ones are closed now. */
int tr_peer_take_fds(tr_peer *c, int *fds, int want);

/* Queues one frame and sends what the socket accepts now (MSG_NOSIGNAL |
 * MSG_DONTWAIT); the rest goes out when the socket is writable.  Returns 0,
 * -ENOBUFS when the peer has left more than TR_PEER_OUT_MAX unread, or the
 * socket's error. */
int tr_peer_send(tr_peer *c, uint16_t type, const void *payload, size_t len);

/* Sends queued bytes; called when the socket is writable. */
int tr_peer_flush(tr_peer *c);

/* Marks the connection dead: stops reading (queued replies still go out
 * until tr_peer_close). */
void tr_peer_kill(tr_peer *c);

/* Closes the socket and every unclaimed descriptor, frees the buffers and
 * closes the poll handle; `cb` runs from the loop afterwards and may free
 * the memory holding c. */
void tr_peer_close(tr_peer *c, uv_close_cb cb);

#endif

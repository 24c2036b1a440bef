/* peer.c: a client connection's I/O: reads with descriptors attached
 * (transport.h), descriptor bookkeeping, frame reassembly and bounded
 * replies. */
#include "peer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/frame.h"
#include "transport.h"

#define HDR_SIZE sizeof(tr_frame_hdr)

static void set_err(tr_peer *c, const char *fmt, ...)
    __attribute__((format(TR_PRINTF_FORMAT, 2, 3)));
static void set_err(tr_peer *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof(c->err), fmt, ap);
  va_end(ap);
}

static void update_poll(tr_peer *c) {
  if (c->closing) return;
  unsigned ev = (c->dead ? 0u : (unsigned)UV_READABLE) |
                (c->out_len > 0 ? (unsigned)UV_WRITABLE : 0u);
  if (ev == c->events) return;
  c->events = ev;
  tr_dtransport_watch(&c->poll, (int)ev, c->poll_cb);
}

int tr_peer_init(tr_peer *c, uv_loop_t *loop, int fd, tr_peer_frame_fn fn,
                 tr_watch_cb cb) {
  void *data = c->poll.data;
  memset(c, 0, sizeof(*c));
  tr_peer_cred cred;
  int rc = tr_dtransport_peer_cred(fd, &cred);
  if (rc < 0) return rc;
  c->in = malloc(TR_PEER_IN_INITIAL);
  if (c->in == NULL) return -ENOMEM;
  c->poll.data = data;
  rc = tr_dtransport_watch_init(loop, &c->poll, fd);
  if (rc < 0) {
    free(c->in);
    c->in = NULL;
    return rc;
  }
  c->fd = fd;
  c->pid = cred.pid;
  c->uid = cred.uid;
  c->gid = cred.gid;
  c->on_frame = fn;
  c->in_cap = TR_PEER_IN_INITIAL;
  c->events = UV_READABLE;
  c->poll_cb = cb;
  tr_dtransport_watch(&c->poll, UV_READABLE, cb);
  return 0;
}

static void close_batch(tr_fd_batch *b) {
  for (int i = 0; i < b->n; i++) tr_dtransport_close(b->fds[i]);
  b->n = 0;
}

static void drop_batch(tr_peer *c, int i) {
  close_batch(&c->batches[i]);
  memmove(&c->batches[i], &c->batches[i + 1],
          (size_t)(c->nbatches - i - 1) * sizeof(c->batches[0]));
  c->nbatches--;
}

/* Closes descriptors that no frame starting at or after `pos` can claim. */
static void drop_stale_batches(tr_peer *c, uint64_t pos) {
  while (c->nbatches > 0 && c->batches[0].end <= pos) drop_batch(c, 0);
}

int tr_peer_take_fds(tr_peer *c, int *fds, int want) {
  for (int i = 0; i < c->nbatches; i++) {
    tr_fd_batch *b = &c->batches[i];
    if (c->frame_pos < b->start || c->frame_pos >= b->end) continue;
    int k = b->n < want ? b->n : want;
    memcpy(fds, b->fds, (size_t)k * sizeof(int));
    for (int j = k; j < b->n; j++) tr_dtransport_close(b->fds[j]);
    b->n = 0;
    drop_batch(c, i);
    return k;
  }
  return 0;
}

/* Handles every complete frame in the input buffer, then compacts it and
 * sizes it for the frame that is still incomplete. */
uint32_t tr_peer_max_payload = TR_FRAME_MAX_PAYLOAD;

static int dispatch(tr_peer *c) {
  size_t off = 0;
  tr_frame_hdr h;
  while (!c->dead) {
    int64_t total = tr_frame_parse(c->in + off, c->in_len - off, &h);
    /* The daemon's own limit (--max-frame-bytes) may be below the
     * protocol's. */
    if (total >= 0 && c->in_len - off >= HDR_SIZE &&
        h.len > tr_peer_max_payload)
      total = -EMSGSIZE;
    if (total < 0) {
      if (total == -EMSGSIZE)
        set_err(c, "frame of %u bytes exceeds the %u-byte limit", h.len,
                tr_peer_max_payload);
      else
        set_err(c, "malformed frame header (type %u, flags 0x%x)", h.type,
                h.flags);
      return (int)total;
    }
    if (total == 0) break;
    c->frame_pos = c->in_pos + off;
    c->on_frame(c, &h, c->in + off + HDR_SIZE);
    off += (size_t)total;
    drop_stale_batches(c, c->in_pos + off);
  }
  if (c->dead) return 0;
  if (off > 0) {
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    c->in_pos += off;
  }
  size_t need = TR_PEER_IN_INITIAL;
  if (c->in_len >= HDR_SIZE && tr_frame_parse(c->in, c->in_len, &h) == 0 &&
      HDR_SIZE + h.len > need)
    need = HDR_SIZE + h.len;
  /* Grow for a large frame; give the memory back once it is handled. */
  if (need > c->in_cap || (need < c->in_cap && c->in_len <= need)) {
    uint8_t *b = realloc(c->in, need);
    if (b == NULL) {
      if (need > c->in_cap) {
        set_err(c, "out of memory for a %zu-byte frame", need);
        return -ENOMEM;
      }
    } else {
      c->in = b;
      c->in_cap = need;
    }
  }
  return 0;
}

int tr_peer_read(tr_peer *c) {
  for (int round = 0; round < TR_PEER_READS_PER_WAKEUP && !c->dead; round++) {
    tr_fd_batch b;
    int64_t n =
        tr_dtransport_recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
                           b.fds, &b.n, TR_FRAME_MAX_FDS);
    if (n == -EAGAIN) return 0;
    if (n == -EBADMSG) {
      set_err(c, "more than %d descriptors in one message (MSG_CTRUNC)",
              TR_FRAME_MAX_FDS);
      return -EBADMSG;
    }
    if (n < 0) {
      set_err(c, "recvmsg: %s", strerror((int)-n));
      return (int)n;
    }
    if (n == 0) {
      close_batch(&b);
      return 1;
    }
    if (b.n > 0) {
      if (c->nbatches == TR_PEER_FD_BATCHES) {
        close_batch(&b);
        set_err(c, "descriptors sent without frames to claim them");
        return -ENOBUFS;
      }
      b.start = c->in_pos + c->in_len;
      b.end = b.start + (uint64_t)n;
      c->batches[c->nbatches++] = b;
    }
    c->in_len += (size_t)n;
    int rc = dispatch(c);
    if (rc < 0) return rc;
  }
  return 0;
}

int tr_peer_flush(tr_peer *c) {
  size_t sent = 0;
  int rc = 0;
  while (sent < c->out_len) {
    int64_t n = tr_dtransport_send(c->fd, c->out + sent, c->out_len - sent);
    if (n < 0) {
      if (n != -EAGAIN) rc = (int)n;
      break;
    }
    sent += (size_t)n;
  }
  if (rc < 0) sent = c->out_len; /* the peer is gone: nothing will go out */
  if (sent > 0) {
    memmove(c->out, c->out + sent, c->out_len - sent);
    c->out_len -= sent;
  }
  update_poll(c);
  return rc;
}

int tr_peer_send(tr_peer *c, uint16_t type, const void *payload, size_t len) {
  if (c->closing) return -EPIPE;
  if (len > TR_FRAME_MAX_PAYLOAD) return -EMSGSIZE;
  size_t need = c->out_len + HDR_SIZE + len;
  if (need > TR_PEER_OUT_MAX) return -ENOBUFS;
  if (need > c->out_cap) {
    size_t cap = c->out_cap ? c->out_cap : 1024;
    while (cap < need) cap *= 2;
    if (cap > TR_PEER_OUT_MAX) cap = TR_PEER_OUT_MAX;
    uint8_t *b = realloc(c->out, cap);
    if (b == NULL) return -ENOMEM;
    c->out = b;
    c->out_cap = cap;
  }
  tr_frame_hdr_encode(c->out + c->out_len, type, (uint32_t)len);
  if (len > 0) memcpy(c->out + c->out_len + HDR_SIZE, payload, len);
  c->out_len = need;
  return tr_peer_flush(c);
}

void tr_peer_kill(tr_peer *c) {
  c->dead = true;
  update_poll(c);
}

void tr_peer_close(tr_peer *c, uv_close_cb cb) {
  if (c->closing) return;
  c->dead = true;
  c->closing = true;
  for (int i = 0; i < c->nbatches; i++) close_batch(&c->batches[i]);
  c->nbatches = 0;
  free(c->in);
  free(c->out);
  c->in = NULL;
  c->out = NULL;
  c->in_len = c->out_len = 0;
  tr_dtransport_watch_close(&c->poll, cb);
  tr_dtransport_close(c->fd);
  c->fd = -1;
}

/* server_listen_unix.c: where clients connect, on Unix: the listening
 * socket of listen.h watched with uv_poll, accepted with accept4, and the
 * open-file limit every connection counts against. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "listen.h"
#include "server_int.h"

#define ACCEPTS_PER_WAKEUP 64

struct tr_slisten {
  tr_listener lst;
  int reserve_fd; /* spare descriptor, given up to shed a connection on
                     EMFILE instead of spinning on the listening socket */
  uv_poll_t poll;
  bool polling; /* poll is open (closed by tr_server_unlisten) */
};

/* Every connection is a descriptor: take all the kernel allows, and keep
 * the connection limits below it with headroom (rings and the output are
 * descriptors only briefly; listening, lock, log and loop need a few), so
 * a flood meets the per-user limit, with its clear refusal, first. */
void tr_server_listen_limits(tr_limits *l) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  const rlim_t headroom = 64;
  rlim_t usable =
      rl.rlim_cur > 2 * headroom ? rl.rlim_cur - headroom : rl.rlim_cur / 2;
  if (l->conns_max > usable) {
    tr_log(TR_LOG_WARN,
           "event=limit what=conns_max nofile=%llu conns_max=%llu "
           "reason=\"the open-file limit allows no more connections\"",
           (unsigned long long)rl.rlim_cur, (unsigned long long)usable);
    l->conns_max = (uint32_t)usable;
  }
  if (l->conns_per_uid > l->conns_max) l->conns_per_uid = l->conns_max;
}

static void on_listen_poll(uv_poll_t *h, int status, int events) {
  tr_server *s = h->data;
  struct tr_slisten *sl = s->listener;
  (void)events;
  if (status < 0) {
    tr_log(TR_LOG_ERROR, "event=accept_error reason=\"%s\"",
           uv_strerror(status));
    return;
  }
  s->depth++;
  for (int i = 0; i < ACCEPTS_PER_WAKEUP && !s->stopping; i++) {
    int fd = accept4(sl->lst.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if ((errno == EMFILE || errno == ENFILE) && sl->reserve_fd >= 0) {
        /* Accept and close one connection with the spare descriptor, so
         * the pending one does not keep the socket readable forever. */
        tr_log(TR_LOG_ERROR,
               "event=refuse request=connect reason=\"accept: %s\"",
               strerror(errno));
        close(sl->reserve_fd);
        fd = accept4(sl->lst.fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) close(fd);
        sl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        break;
      }
      tr_log(TR_LOG_ERROR, "event=accept_error reason=\"%s\"", strerror(errno));
      break;
    }
    tr_admission_accept(s, fd);
  }
  s->depth--;
  tr_conn_reap(s);
}

int tr_server_listen(tr_server *s, const tr_server_opts *o) {
  struct tr_slisten *sl = calloc(1, sizeof(*sl));
  if (sl == NULL) return -ENOMEM;
  sl->lst.fd = sl->lst.lock_fd = sl->reserve_fd = -1;
  s->listener = sl;
  tr_listen_opts lo = {.path = o->socket_path,
                       .make_dir = o->make_dir,
                       .system = o->system,
                       .has_group = o->has_group,
                       .group = o->group,
                       .activated_fd = o->activated_fd};
  int rc = tr_listen_open(&sl->lst, &lo);
  if (rc < 0) return rc;
  sl->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if ((rc = uv_poll_init(s->loop, &sl->poll, sl->lst.fd)) < 0) return rc;
  sl->poll.data = s;
  sl->polling = true;
  uv_poll_start(&sl->poll, UV_READABLE, on_listen_poll);
  return 0;
}

void tr_server_unlisten(tr_server *s) {
  struct tr_slisten *sl = s->listener;
  if (sl == NULL) return;
  if (sl->polling) {
    uv_close((uv_handle_t *)&sl->poll, NULL);
    sl->polling = false;
  }
  tr_listen_close(&sl->lst);
}

const char *tr_server_listen_where(const tr_server *s, bool *activated) {
  const struct tr_slisten *sl = s->listener;
  *activated = sl != NULL && sl->lst.activated;
  return sl != NULL ? sl->lst.path : "";
}

void tr_server_listen_free(tr_server *s) {
  struct tr_slisten *sl = s->listener;
  if (sl == NULL) return;
  tr_listen_close(&sl->lst);
  if (sl->reserve_fd >= 0) close(sl->reserve_fd);
  free(sl);
  s->listener = NULL;
}

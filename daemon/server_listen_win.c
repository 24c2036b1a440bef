/* server_listen_win.c: where clients connect, on Windows: the named pipe
 * of transport.h (tr_dtransport_listen_pipe), each connected instance
 * handed to admission on the loop's thread. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server_int.h"
#include "transport.h"

struct tr_slisten {
  tr_dtransport_listener *l; /* NULL once closed */
  char name[256];
};

/* Windows has no descriptor table to run out of: pipe instances and
 * sections are kernel handles, of which a process may hold millions, so
 * the connection limits stand as they are. */
void tr_server_listen_limits(tr_limits *l) { (void)l; }

static void on_accept(void *arg, int conn) {
  tr_server *s = arg;
  s->depth++;
  if (s->stopping)
    tr_dtransport_close(conn);
  else
    tr_admission_accept(s, conn);
  s->depth--;
  tr_conn_reap(s);
}

int tr_server_listen(tr_server *s, const tr_server_opts *o) {
  struct tr_slisten *sl = calloc(1, sizeof(*sl));
  if (sl == NULL) return -ENOMEM;
  s->listener = sl;
  snprintf(sl->name, sizeof(sl->name), "%s", o->socket_path);
  int rc = tr_dtransport_listen_pipe(s->loop, o->socket_path, o->system,
                                     on_accept, s, &sl->l);
  if (rc < 0) {
    char q[TR_LOG_VALUE_MAX];
    tr_log(
        TR_LOG_ERROR, "event=error socket=%s reason=\"%s\"",
        tr_log_q(q, o->socket_path),
        rc == -EADDRINUSE ? "another process serves this pipe" : strerror(-rc));
    sl->l = NULL;
  }
  return rc;
}

void tr_server_unlisten(tr_server *s) {
  struct tr_slisten *sl = s->listener;
  if (sl == NULL || sl->l == NULL) return;
  tr_dtransport_listen_close(sl->l);
  sl->l = NULL;
}

const char *tr_server_listen_where(const tr_server *s, bool *activated) {
  *activated = false;
  return s->listener != NULL ? s->listener->name : "";
}

void tr_server_listen_free(tr_server *s) {
  free(s->listener);
  s->listener = NULL;
}

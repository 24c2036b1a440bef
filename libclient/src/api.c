/* api.c: libtraced's public C API (traced.h): attach, sessions, and spans,
 * instants and counters recorded into the calling thread's ring. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "argbuf.h"
#include "client.h"
#include "common/intern.h"
#include "conn.h"
#include "options.h"
#include "traced.h"
#include "transport.h"

/* ---- per-thread producer ----------------------------------------------- */

typedef struct api_thread {
  tr_producer p;
  bool initialised;
} api_thread;

static _Thread_local api_thread t_self;
static pthread_key_t g_thread_key;
static pthread_once_t g_key_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg) {
  api_thread *t = arg;
  tr_client_thread_close(&t->p);
  t->initialised = false;
}

static void make_key(void) { pthread_key_create(&g_thread_key, thread_exit); }

/* The calling thread's producer, ready to record, or NULL. */
static tr_producer *self_ready(void) {
  api_thread *t = &t_self;
  if (__builtin_expect(!t->initialised, 0)) {
    pthread_once(&g_key_once, make_key);
    tr_client_thread_init(&t->p);
    pthread_setspecific(g_thread_key, t);
    t->initialised = true;
  }
  if (__builtin_expect(tr_producer_ready(&t->p), 1)) return &t->p;
  /* Attached after this thread's producer was set up: follow the new
   * process state word and try again. */
  if (t->p.hdr == NULL && t->p.state != tr_client_state_word() &&
      t->p.state != tr_producer_never_word()) {
    t->p.state = tr_client_state_word();
    if (tr_producer_ready(&t->p)) return &t->p;
  }
  return NULL;
}

tr_producer *tr_api_producer(void) { return self_ready(); }

/* ---- interning by content ---------------------------------------------- */

/* The names the string forms of the API were given, each with the id the
 * process's arena gave it, so a name is appended to the arena once, not
 * on every call. */
static pthread_mutex_t g_intern_lock = PTHREAD_MUTEX_INITIALIZER;
static tr_intern g_names; /* the names given */
static uint32_t *g_ids;   /* per name in g_names: its arena id */
static uint32_t g_ids_cap;

uint32_t traced_intern(const char *name) {
  if (name == NULL) return TR_STRING_UNKNOWN;
  size_t n = strlen(name);
  pthread_mutex_lock(&g_intern_lock);
  int64_t k = tr_intern_find(&g_names, name, n);
  uint32_t id = k >= 0 ? g_ids[k] : tr_client_intern(name, n);
  /* Not attached or arena full: nothing to remember. */
  if (k >= 0 || id == TR_STRING_UNKNOWN) goto out;
  if (tr_intern_count(&g_names) == g_ids_cap) {
    uint32_t cap = g_ids_cap ? g_ids_cap * 2 : 256;
    uint32_t *ids = realloc(g_ids, cap * sizeof(*ids));
    if (ids == NULL) goto out; /* out of memory: appended again next time */
    g_ids = ids;
    g_ids_cap = cap;
  }
  k = tr_intern_add(&g_names, name, n);
  if (k >= 0) g_ids[k] = id;
out:
  pthread_mutex_unlock(&g_intern_lock);
  return id;
}

/* ---- events ------------------------------------------------------------ */

void traced_begin_id(uint32_t id) {
  tr_producer *p = self_ready();
  if (p != NULL) tr_producer_enter(p, tr_now(), id, TR_REC_BEGIN);
}

void traced_begin(const char *name) {
  if (self_ready() == NULL) return;
  traced_begin_id(traced_intern(name));
}

void traced_end(void) {
  tr_producer *p = self_ready();
  if (p != NULL) tr_producer_exit(p, tr_now(), TR_REC_END);
}

void traced_instant(const char *name) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint32_t id = traced_intern(name);
  tr_producer_put(p, tr_now(), id, TR_REC_INSTANT);
}

void traced_counter(const char *name, double value) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint32_t id = traced_intern(name);
  tr_record *r = tr_producer_claim(p, 1);
  if (r == NULL) return;
  r->ts = tr_now();
  r->id = id;
  r->kind = TR_REC_COUNTER;
  r->extra = 1;
  tr_record *v = &p->slots[(p->head + 1) & p->mask];
  memset(v, 0, sizeof(*v));
  memcpy(v, &value, sizeof(value));
  tr_producer_publish(p, 1);
}

void traced_thread_name(const char *name) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  tr_producer_put(p, tr_now(), traced_intern(name), TR_REC_THREAD_NAME);
}

bool traced_enabled(void) { return self_ready() != NULL; }

/* ---- events with arguments --------------------------------------------- */

_Static_assert((int)TRACED_ARG_STR == (int)TR_ARGS_STR &&
                   (int)TRACED_ARG_INT == (int)TR_ARGS_INT &&
                   (int)TRACED_ARG_UINT == (int)TR_ARGS_UINT &&
                   (int)TRACED_ARG_DOUBLE == (int)TR_ARGS_DOUBLE &&
                   (int)TRACED_ARG_BOOL == (int)TR_ARGS_BOOL,
               "public argument types are the wire's");

/* Appends one argument to b (numeric ones only when `numbers`: a
 * counter's series).  Returns false when b is full; *num is the value of
 * a numeric argument, *is_num whether it was one. */
static bool encode_one(tr_argbuf *b, const traced_arg *a, bool numbers,
                       double *num, bool *is_num) {
  size_t kl = strlen(a->key);
  *is_num = a->type == TRACED_ARG_INT || a->type == TRACED_ARG_UINT ||
            a->type == TRACED_ARG_DOUBLE;
  if (numbers && !*is_num) return true;
  switch (a->type) {
    case TRACED_ARG_STR:
      return a->value.s == NULL ||
             tr_argbuf_add_str(b, a->key, kl, a->value.s, strlen(a->value.s),
                               TR_ARGS_MAX_BYTES);
    case TRACED_ARG_INT:
      *num = (double)a->value.i;
      return tr_argbuf_add_i64(b, a->key, kl, a->value.i);
    case TRACED_ARG_UINT:
      *num = (double)a->value.u;
      return tr_argbuf_add_u64(b, a->key, kl, a->value.u);
    case TRACED_ARG_DOUBLE:
      *num = a->value.d;
      return tr_argbuf_add_double(b, a->key, kl, a->value.d);
    case TRACED_ARG_BOOL:
      return tr_argbuf_add_bool(b, a->key, kl, a->value.b);
    default:
      return true; /* an unknown type is left out */
  }
}

/* Encodes args into b; returns the first numeric value (a counter's
 * value for daemons that read only one). */
static double encode(tr_argbuf *b, const traced_arg *args, size_t n,
                     bool numbers) {
  tr_argbuf_init(b);
  double first = 0;
  bool have_first = false;
  for (size_t i = 0; args != NULL && i < n; i++) {
    if (args[i].key == NULL) continue;
    double num = 0;
    bool is_num;
    if (!encode_one(b, &args[i], numbers, &num, &is_num)) break;
    if (is_num && !have_first) {
      first = num;
      have_first = true;
    }
  }
  return first;
}

void traced_instant_add(const char *name, const traced_arg *args,
                        size_t nargs) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint64_t ts = tr_now();
  tr_argbuf b;
  encode(&b, args, nargs, false);
  tr_producer_put_args(p, ts, traced_intern(name), TR_REC_INSTANT, b.data,
                       b.len, NULL, 0);
}

void traced_span_begin(const char *name, const traced_arg *args, size_t nargs) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint64_t ts = tr_now();
  tr_argbuf b;
  encode(&b, args, nargs, false);
  tr_producer_enter_args(p, ts, traced_intern(name), TR_REC_BEGIN, b.data,
                         b.len);
}

void traced_span_end(const traced_arg *args, size_t nargs) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint64_t ts = tr_now();
  tr_argbuf b;
  encode(&b, args, nargs, false);
  tr_producer_exit_args(p, ts, TR_REC_END, b.data, b.len);
}

void traced_counter_set(const char *name, const traced_arg *series, size_t n) {
  tr_producer *p = self_ready();
  if (p == NULL) return;
  uint64_t ts = tr_now();
  tr_argbuf b;
  double first = encode(&b, series, n, true);
  if (b.count == 0) return;
  tr_record value;
  memset(&value, 0, sizeof(value));
  memcpy(&value, &first, sizeof(first));
  tr_producer_put_args(p, ts, traced_intern(name), TR_REC_COUNTER, b.data,
                       b.len, &value, 1);
}

/* ---- attach and sessions ----------------------------------------------- */

static int export_session(void) {
  int rc = tr_transport_setenv(TR_ENV_SESSION, tr_client_token());
  if (rc == 0) rc = tr_transport_setenv(TR_ENV_SOCKET, tr_client_socket_path());
  return rc;
}

int traced_session_start(const char *output_path) {
  if (output_path == NULL || *output_path == '\0') return -EINVAL;
  int rc = tr_client_connect(NULL);
  if (rc < 0) return rc;
  int fd = tr_conn_open_output(output_path);
  if (fd < 0) return fd;
  /* TRACED_MIN_DURATION and TRACED_MAX_SIZE for the session this process
   * creates; an invalid value is ignored here (the library prints
   * nothing; `traced run` and the Python package report it). */
  rc = tr_client_session_create(output_path, fd,
                                tr_option_env(TR_OPTION_MIN_DURATION),
                                tr_option_env(TR_OPTION_MAX_SIZE), NULL);
  close(fd);
  if (rc < 0) return rc;
  return export_session();
}

int traced_session_stop(traced_summary *out, int timeout_ms) {
  return tr_client_session_end(out, NULL, timeout_ms);
}

int traced_attach(void) {
  const char *token = getenv(TR_ENV_SESSION);
  const char *output = getenv(TR_ENV_OUTPUT);
  if ((token == NULL || *token == '\0') && (output == NULL || *output == '\0'))
    return -ENOENT;
  int rc = tr_client_connect(NULL);
  if (rc < 0) return rc;
  if (token != NULL && *token != '\0') return tr_client_session_join(token);
  return traced_session_start(output);
}

void traced_detach(void) {
  api_thread *t = &t_self;
  if (t->initialised) {
    tr_client_thread_close(&t->p);
    t->initialised = false;
    pthread_setspecific(g_thread_key, NULL);
  }
  tr_client_disconnect();
}

const char *traced_strerror(int err) {
  if (err == 0) return "success";
  if (err == -EACCES) return "session belongs to another user";
  if (err == -ENOTCONN) return "not connected to the traced daemon";
  if (err == -EPROTO) return "protocol error talking to the traced daemon";
  return strerror(err < 0 ? -err : err);
}

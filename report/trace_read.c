/* trace_read.c: opens a trace (plain, gzip-compressed or in memory),
 * recognises its format, and turns Chrome Trace Event JSON into a stream
 * of events; Perfetto protobuf traces are decoded by pftrace_read.c. */
#include "trace_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "jsontok.h"
#include "pftrace_read.h"

/* Bytes read ahead to recognise the format. */
#define SNIFF_BYTES 64
/* Containers nested deeper than this inside an event are refused (their
 * skipping needs one byte of state per level). */
#define MAX_DEPTH 4096
/* The name of traced's lost-events marker (output/writer_json.c). */
#define LOST_NAME "traced: events lost (ring full)"

typedef enum {
  ST_BEGIN,       /* before the first token */
  ST_OBJ_FIRST,   /* top-level object: a key or '}' */
  ST_OBJ_NEXT,    /* top-level object: ',' or '}' */
  ST_ARRAY_FIRST, /* the event array: an event or ']' */
  ST_ARRAY_NEXT,  /* the event array: ',' or ']' */
  ST_END,         /* after the trace: nothing but whitespace */
  ST_DONE,
} json_state;

struct tr_trace {
  /* The source: a gzFile or a memory block, read through `head` first
   * (the bytes read ahead to recognise the format). */
  gzFile gz;
  const uint8_t *mem;
  size_t mem_len, mem_pos;
  uint8_t head[SNIFF_BYTES];
  size_t head_len, head_pos;
  bool compressed;
  bool gz_cut; /* the gzip stream ended early */

  tr_trace_format format;
  bool cut_short;
  uint64_t skipped;
  char err[320];

  /* JSON */
  tr_jsontok tok;
  bool tok_ready;
  json_state st;
  bool in_object; /* object form: the array is traceEvents' value */
  bool saw_events;
  char *name, *aname; /* the current event's name and args.name */
  size_t name_len, name_cap, aname_len, aname_cap;
  uint8_t *stack; /* container kinds while skipping a value */

  /* Perfetto */
  tr_pftrace *pf;
};

/* ---- the source ---------------------------------------------------------- */

static ssize_t raw_read(tr_trace *t, void *buf, size_t n) {
  if (t->gz != NULL) {
    if (n > (1u << 30)) n = 1u << 30;
    int k = gzread(t->gz, buf, (unsigned)n);
    if (k > 0) return k;
    int zerr;
    const char *msg = gzerror(t->gz, &zerr);
    if (k == 0 || zerr == Z_BUF_ERROR) {
      /* Z_BUF_ERROR at the end: the input stopped inside a gzip stream. */
      if (zerr == Z_BUF_ERROR) t->gz_cut = true;
      return 0;
    }
    if (zerr == Z_ERRNO) return errno ? -errno : -EIO;
    snprintf(t->err, sizeof(t->err), "gzip: %s", msg ? msg : "corrupt data");
    return -EBADMSG;
  }
  size_t k = t->mem_len - t->mem_pos;
  if (k > n) k = n;
  memcpy(buf, t->mem + t->mem_pos, k);
  t->mem_pos += k;
  return (ssize_t)k;
}

/* What the format decoders read: the sniffed head, then the rest. */
static ssize_t src_read(void *ctx, void *buf, size_t n) {
  tr_trace *t = ctx;
  if (t->head_pos < t->head_len) {
    size_t k = t->head_len - t->head_pos;
    if (k > n) k = n;
    memcpy(buf, t->head + t->head_pos, k);
    t->head_pos += k;
    return (ssize_t)k;
  }
  return raw_read(t, buf, n);
}

static int sniff(tr_trace *t, char *err, size_t errsz) {
  while (t->head_len < SNIFF_BYTES) {
    ssize_t k = raw_read(t, t->head + t->head_len, SNIFF_BYTES - t->head_len);
    if (k < 0) {
      snprintf(err, errsz, "%s", t->err[0] ? t->err : strerror((int)-k));
      return (int)k;
    }
    if (k == 0) break;
    t->head_len += (size_t)k;
  }
  if (t->gz != NULL) t->compressed = !gzdirect(t->gz);
  /* A UTF-8 byte order mark some editors add before JSON. */
  if (t->head_len >= 3 && memcmp(t->head, "\xef\xbb\xbf", 3) == 0)
    t->head_pos = 3;
  size_t i = t->head_pos;
  while (i < t->head_len && (t->head[i] == ' ' || t->head[i] == '\t' ||
                             t->head[i] == '\r' || t->head[i] == '\n'))
    i++;
  if (t->head_len == 0) {
    snprintf(err, errsz, "the file is empty%s",
             t->gz_cut ? " (a gzip stream cut short before any data)" : "");
    return -ENODATA;
  }
  /* A Perfetto trace is a protobuf `Trace`: field 1 (packet), length-
   * delimited, so its first byte is the tag 0x0a, which is also JSON's
   * newline.  JSON text has no other control characters: a head that
   * starts with 0x0a and holds one is a Perfetto trace. */
  bool text = true;
  for (size_t k = t->head_pos; k < t->head_len; k++) {
    uint8_t b = t->head[k];
    if (b < 0x20 && b != '\t' && b != '\r' && b != '\n') text = false;
  }
  if (t->head_pos == 0 && t->head[0] == 0x0a && !text) {
    t->format = TR_TRACE_PERFETTO;
    return 0;
  }
  if (i == t->head_len) {
    snprintf(err, errsz, "not a trace: the file holds only whitespace");
    return -EBADMSG;
  }
  uint8_t c = t->head[i];
  if (c == '{' || c == '[') {
    t->format = TR_TRACE_JSON;
    return 0;
  }
  snprintf(err, errsz,
           "not a trace: expected Chrome Trace Event JSON ('{' or '['), "
           "gzip-compressed JSON or a Perfetto protobuf trace; the %s "
           "starts with byte 0x%02x",
           t->compressed ? "decompressed data" : "file", c);
  return -EBADMSG;
}

static int start(tr_trace *t, char *err, size_t errsz) {
  int rc = sniff(t, err, errsz);
  if (rc < 0) return rc;
  if (t->format == TR_TRACE_JSON) {
    rc = tr_jsontok_init(&t->tok, src_read, t);
    if (rc < 0) {
      snprintf(err, errsz, "out of memory");
      return rc;
    }
    t->tok_ready = true;
    t->name_cap = t->aname_cap = 256;
    t->name = malloc(t->name_cap);
    t->aname = malloc(t->aname_cap);
    t->stack = malloc(MAX_DEPTH);
    if (t->name == NULL || t->aname == NULL || t->stack == NULL) {
      snprintf(err, errsz, "out of memory");
      return -ENOMEM;
    }
    return 0;
  }
  rc = tr_pftrace_new(&t->pf, src_read, t);
  if (rc < 0) snprintf(err, errsz, "out of memory");
  return rc;
}

int tr_trace_open_path(tr_trace **out, const char *path, char *err,
                       size_t errsz) {
  *out = NULL;
  tr_trace *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    snprintf(err, errsz, "out of memory");
    return -ENOMEM;
  }
  int fd;
  if (strcmp(path, "-") == 0) {
    fd = dup(STDIN_FILENO);
  } else {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) {
    int e = errno;
    snprintf(err, errsz, "%s", strerror(e));
    free(t);
    return -e;
  }
  t->gz = gzdopen(fd, "rb");
  if (t->gz == NULL) {
    close(fd);
    snprintf(err, errsz, "out of memory");
    free(t);
    return -ENOMEM;
  }
  gzbuffer(t->gz, 256 * 1024);
  int rc = start(t, err, errsz);
  if (rc < 0) {
    tr_trace_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

int tr_trace_open_mem(tr_trace **out, const void *data, size_t n, char *err,
                      size_t errsz) {
  *out = NULL;
  tr_trace *t = calloc(1, sizeof(*t));
  if (t == NULL) {
    snprintf(err, errsz, "out of memory");
    return -ENOMEM;
  }
  t->mem = data;
  t->mem_len = n;
  int rc = start(t, err, errsz);
  if (rc < 0) {
    tr_trace_close(t);
    return rc;
  }
  *out = t;
  return 0;
}

void tr_trace_close(tr_trace *t) {
  if (t == NULL) return;
  if (t->gz != NULL) gzclose(t->gz);
  if (t->tok_ready) tr_jsontok_fini(&t->tok);
  tr_pftrace_free(t->pf);
  free(t->name);
  free(t->aname);
  free(t->stack);
  free(t);
}

const char *tr_trace_error(const tr_trace *t) { return t->err; }
tr_trace_format tr_trace_get_format(const tr_trace *t) { return t->format; }
bool tr_trace_compressed(const tr_trace *t) { return t->compressed; }
bool tr_trace_cut_short(const tr_trace *t) { return t->cut_short; }

void tr_trace_mark_cut(tr_trace_event *ev) {
  static const char pre[] = TR_CUT_NAME_PREFIX, post[] = " events dropped";
  size_t n = ev->name_len, np = sizeof(pre) - 1, ns = sizeof(post) - 1;
  if (ev->kind != TR_EV_INSTANT || n < np + ns ||
      memcmp(ev->name, pre, np) != 0 ||
      memcmp(ev->name + n - ns, post, ns) != 0)
    return;
  /* The count: the digits just before " events dropped". */
  size_t i = n - ns;
  uint64_t count = 0, scale = 1;
  while (i > np && ev->name[i - 1] >= '0' && ev->name[i - 1] <= '9' &&
         scale <= UINT64_MAX / 10) {
    count += (uint64_t)(ev->name[i - 1] - '0') * scale;
    scale *= 10;
    i--;
  }
  ev->kind = TR_EV_CUT;
  ev->count = count;
}

uint64_t tr_trace_skipped(const tr_trace *t) {
  return t->skipped + (t->pf != NULL ? tr_pftrace_skipped(t->pf) : 0);
}

/* ---- JSON ---------------------------------------------------------------- */

/* Records a structural error at the token that broke the structure. */
static int bad(tr_trace *t, const char *what) {
  tr_jsontok_token_errorf(&t->tok, "%s", what);
  snprintf(t->err, sizeof(t->err), "%s", t->tok.err);
  return -EBADMSG;
}

/* The next token; a tokenizer error keeps its message.  The end of the
 * input is -ENODATA: every caller is inside the trace, where the end means
 * the file was cut short. */
static int next_tok(tr_trace *t) {
  int tok = tr_jsontok_next(&t->tok);
  if (tok == TR_TOK_EOF) return -ENODATA;
  if (tok < 0 && tok != -ENODATA)
    snprintf(t->err, sizeof(t->err), "%s", t->tok.err);
  return tok;
}

static bool is_scalar(int tok) {
  return tok == TR_TOK_STRING || tok == TR_TOK_NUMBER || tok == TR_TOK_TRUE ||
         tok == TR_TOK_FALSE || tok == TR_TOK_NULL;
}

/* Skips the value whose first token `tok` was just read, checking its
 * grammar.  Returns 0 or a negative errno. */
static int skip_value(tr_trace *t, int tok) {
  enum { E_VALUE, E_VALUE_OR_END, E_KEY, E_KEY_OR_END, E_AFTER };
  int depth = 0, want = E_VALUE;
  for (;;) {
    if (tok < 0) return tok;
    switch (want) {
      case E_VALUE_OR_END:
        if (tok == TR_TOK_RBRACKET) {
          depth--;
          want = E_AFTER;
          break;
        }
        /* fall through */
      case E_VALUE:
        if (is_scalar(tok)) {
          want = E_AFTER;
        } else if (tok == TR_TOK_LBRACE || tok == TR_TOK_LBRACKET) {
          if (depth == MAX_DEPTH) return bad(t, "values nested too deeply");
          t->stack[depth++] = tok == TR_TOK_LBRACE ? '{' : '[';
          want = tok == TR_TOK_LBRACE ? E_KEY_OR_END : E_VALUE_OR_END;
        } else {
          return bad(t, "expected a value");
        }
        break;
      case E_KEY_OR_END:
        if (tok == TR_TOK_RBRACE) {
          depth--;
          want = E_AFTER;
          break;
        }
        /* fall through */
      case E_KEY:
        if (tok != TR_TOK_STRING) return bad(t, "expected a string key");
        tok = next_tok(t);
        if (tok < 0) return tok;
        if (tok != TR_TOK_COLON) return bad(t, "expected ':' after a key");
        want = E_VALUE;
        break;
      case E_AFTER:
        /* unreachable: handled below */
        break;
    }
    while (want == E_AFTER) {
      if (depth == 0) return 0;
      tok = next_tok(t);
      if (tok < 0) return tok;
      char top = (char)t->stack[depth - 1];
      if (tok == TR_TOK_COMMA) {
        want = top == '{' ? E_KEY : E_VALUE;
      } else if (top == '{' && tok == TR_TOK_RBRACE) {
        depth--;
      } else if (top == '[' && tok == TR_TOK_RBRACKET) {
        depth--;
      } else {
        return bad(t, top == '{' ? "expected ',' or '}' in an object"
                                 : "expected ',' or ']' in an array");
      }
    }
    tok = next_tok(t);
  }
}

static int copy_str(tr_trace *t, char **buf, size_t *len, size_t *cap) {
  size_t n = t->tok.slen;
  if (n + 1 > *cap) {
    size_t c = *cap;
    while (n + 1 > c) c *= 2;
    char *p = realloc(*buf, c);
    if (p == NULL) {
      snprintf(t->err, sizeof(t->err), "out of memory");
      return -ENOMEM;
    }
    *buf = p;
    *cap = c;
  }
  memcpy(*buf, t->tok.str, n);
  (*buf)[n] = '\0';
  *len = n;
  return 0;
}

static bool key_is(const tr_jsontok *k, const char *lit) {
  size_t n = strlen(lit);
  return k->slen == n && memcmp(k->str, lit, n) == 0;
}

/* What an event object says, before it is classified. */
typedef struct raw_event {
  char ph;
  bool has_ph, has_name, has_ts, has_dur, bad;
  char cat[16];
  int64_t pid, tid, ts, dur;
  bool unfinished, has_aname, has_dropped, has_count, has_sort;
  int64_t dropped, count, sort_index;
} raw_event;

/* A number field: `scale` 3 for microseconds to nanoseconds, 0 for
 * integers.  A value of another type, or out of range, marks the event
 * bad (it is skipped and counted). */
static int num_field(tr_trace *t, int tok, int scale, int64_t *out, bool *has,
                     raw_event *e) {
  if (tok != TR_TOK_NUMBER) {
    e->bad = true;
    return skip_value(t, tok);
  }
  if (tr_json_number_scaled(t->tok.str, t->tok.slen, scale, out) < 0)
    e->bad = true;
  else if (has != NULL)
    *has = true;
  return 0;
}

static int parse_args(tr_trace *t, raw_event *e) {
  int tok = next_tok(t);
  if (tok < 0) return tok;
  if (tok == TR_TOK_RBRACE) return 0;
  for (;;) {
    if (tok != TR_TOK_STRING) return bad(t, "expected a string key in args");
    int which = key_is(&t->tok, "unfinished")   ? 1
                : key_is(&t->tok, "name")       ? 2
                : key_is(&t->tok, "dropped")    ? 3
                : key_is(&t->tok, "count")      ? 4
                : key_is(&t->tok, "sort_index") ? 5
                                                : 0;
    tok = next_tok(t);
    if (tok < 0) return tok;
    if (tok != TR_TOK_COLON) return bad(t, "expected ':' after a key");
    tok = next_tok(t);
    if (tok < 0) return tok;
    int rc = 0;
    switch (which) {
      case 1:
        e->unfinished = tok == TR_TOK_TRUE;
        rc = skip_value(t, tok);
        break;
      case 2:
        if (tok == TR_TOK_STRING) {
          rc = copy_str(t, &t->aname, &t->aname_len, &t->aname_cap);
          e->has_aname = rc == 0;
        } else {
          rc = skip_value(t, tok);
        }
        break;
      case 3:
        rc = num_field(t, tok, 0, &e->dropped, &e->has_dropped, e);
        break;
      case 4:
        rc = num_field(t, tok, 0, &e->count, &e->has_count, e);
        break;
      case 5:
        rc = num_field(t, tok, 0, &e->sort_index, &e->has_sort, e);
        break;
      default:
        rc = skip_value(t, tok);
    }
    if (rc < 0) return rc;
    tok = next_tok(t);
    if (tok < 0) return tok;
    if (tok == TR_TOK_RBRACE) return 0;
    if (tok != TR_TOK_COMMA) return bad(t, "expected ',' or '}' in args");
    tok = next_tok(t);
    if (tok < 0) return tok;
  }
}

/* Parses one event object, its '{' already read. */
static int parse_event(tr_trace *t, raw_event *e) {
  memset(e, 0, sizeof(*e));
  t->name_len = t->aname_len = 0;
  int tok = next_tok(t);
  if (tok < 0) return tok;
  if (tok == TR_TOK_RBRACE) return 0;
  for (;;) {
    if (tok != TR_TOK_STRING)
      return bad(t, "expected a string key in an event");
    enum { K_OTHER, K_PH, K_NAME, K_CAT, K_PID, K_TID, K_TS, K_DUR, K_ARGS };
    int key = key_is(&t->tok, "ph")     ? K_PH
              : key_is(&t->tok, "name") ? K_NAME
              : key_is(&t->tok, "cat")  ? K_CAT
              : key_is(&t->tok, "pid")  ? K_PID
              : key_is(&t->tok, "tid")  ? K_TID
              : key_is(&t->tok, "ts")   ? K_TS
              : key_is(&t->tok, "dur")  ? K_DUR
              : key_is(&t->tok, "args") ? K_ARGS
                                        : K_OTHER;
    tok = next_tok(t);
    if (tok < 0) return tok;
    if (tok != TR_TOK_COLON) return bad(t, "expected ':' after a key");
    tok = next_tok(t);
    if (tok < 0) return tok;
    int rc = 0;
    switch (key) {
      case K_PH:
        if (tok == TR_TOK_STRING && t->tok.slen == 1) {
          e->ph = t->tok.str[0];
          e->has_ph = true;
        } else {
          e->bad = true;
          rc = skip_value(t, tok);
        }
        break;
      case K_NAME:
        if (tok == TR_TOK_STRING) {
          rc = copy_str(t, &t->name, &t->name_len, &t->name_cap);
          e->has_name = rc == 0;
        } else {
          rc = skip_value(t, tok);
        }
        break;
      case K_CAT:
        if (tok == TR_TOK_STRING && t->tok.slen < sizeof(e->cat))
          memcpy(e->cat, t->tok.str, t->tok.slen + 1);
        else
          rc = skip_value(t, tok);
        break;
      case K_PID:
        rc = num_field(t, tok, 0, &e->pid, NULL, e);
        break;
      case K_TID:
        rc = num_field(t, tok, 0, &e->tid, NULL, e);
        break;
      case K_TS:
        rc = num_field(t, tok, 3, &e->ts, &e->has_ts, e);
        break;
      case K_DUR:
        rc = num_field(t, tok, 3, &e->dur, &e->has_dur, e);
        break;
      case K_ARGS:
        if (tok == TR_TOK_LBRACE)
          rc = parse_args(t, e);
        else
          rc = skip_value(t, tok);
        break;
      default:
        rc = skip_value(t, tok);
    }
    if (rc < 0) return rc;
    tok = next_tok(t);
    if (tok < 0) return tok;
    if (tok == TR_TOK_RBRACE) return 0;
    if (tok != TR_TOK_COMMA) return bad(t, "expected ',' or '}' in an event");
    tok = next_tok(t);
    if (tok < 0) return tok;
  }
}

/* Turns a parsed event into *ev.  Returns false for an event the report
 * cannot use (counted as skipped). */
static bool classify(tr_trace *t, const raw_event *e, tr_trace_event *ev) {
  memset(ev, 0, sizeof(*ev));
  if (!e->has_ph || e->bad) return false;
  ev->pid = e->pid;
  ev->tid = e->tid;
  ev->has_ts = e->has_ts;
  ev->ts_ns = e->ts;
  ev->name = t->name;
  ev->name_len = t->name_len;
  switch (e->ph) {
    case 'X':
      if (!e->has_ts || e->dur < 0) return false;
      ev->kind = TR_EV_COMPLETE;
      ev->dur_ns = e->dur;
      ev->unfinished = e->unfinished;
      return true;
    case 'B':
    case 'E':
      if (!e->has_ts) return false;
      ev->kind = e->ph == 'B' ? TR_EV_BEGIN : TR_EV_END;
      ev->unfinished = e->unfinished;
      return true;
    case 'i':
    case 'I':
      ev->kind = TR_EV_INSTANT;
      if (strcmp(e->cat, "traced") == 0 && t->name_len == strlen(LOST_NAME) &&
          memcmp(t->name, LOST_NAME, t->name_len) == 0) {
        ev->kind = TR_EV_LOST;
        ev->count = e->has_count && e->count > 0 ? (uint64_t)e->count : 0;
      } else if (strcmp(e->cat, "traced") == 0) {
        tr_trace_mark_cut(ev);
      }
      return true;
    case 'C':
      ev->kind = TR_EV_COUNTER;
      return true;
    case 'M': {
      bool pname =
          t->name_len == 12 && memcmp(t->name, "process_name", 12) == 0;
      bool tname = t->name_len == 11 && memcmp(t->name, "thread_name", 11) == 0;
      bool sort =
          t->name_len == 18 && memcmp(t->name, "process_sort_index", 18) == 0;
      ev->kind = TR_EV_META;
      if ((pname || tname) && e->has_aname) {
        ev->kind = pname ? TR_EV_PROCESS_NAME : TR_EV_THREAD_NAME;
        ev->name = t->aname;
        ev->name_len = t->aname_len;
        ev->has_dropped = e->has_dropped && e->dropped >= 0;
        ev->dropped = ev->has_dropped ? (uint64_t)e->dropped : 0;
      } else if (sort && e->has_sort) {
        ev->kind = TR_EV_SORT_INDEX;
        ev->sort_index = e->sort_index;
      }
      return true;
    }
    default:
      ev->kind = TR_EV_OTHER;
      return true;
  }
}

/* The input stopped: inside the event array that is a file cut short
 * (valid: report what is there); before it, not a trace. */
static int json_eof(tr_trace *t) {
  if (t->st == ST_END) {
    t->st = ST_DONE;
    return 0;
  }
  if (t->st == ST_ARRAY_FIRST || t->st == ST_ARRAY_NEXT || t->saw_events) {
    t->cut_short = true;
    t->st = ST_DONE;
    return 0;
  }
  snprintf(t->err, sizeof(t->err),
           "not a trace: the file ends before its traceEvents array");
  return -EBADMSG;
}

static int json_next(tr_trace *t, tr_trace_event *ev) {
  for (;;) {
    if (t->st == ST_DONE) return 0;
    int tok = next_tok(t);
    if (tok == -ENODATA) return json_eof(t);
    if (tok < 0) return tok;
    switch (t->st) {
      case ST_BEGIN:
        if (tok == TR_TOK_LBRACKET) {
          t->st = ST_ARRAY_FIRST;
        } else if (tok == TR_TOK_LBRACE) {
          t->in_object = true;
          t->st = ST_OBJ_FIRST;
        } else {
          return bad(t, "not a trace: expected '{' or '['");
        }
        break;
      case ST_OBJ_NEXT:
        if (tok == TR_TOK_RBRACE) {
          if (!t->saw_events)
            return bad(t, "not a trace: the object has no traceEvents array");
          t->st = ST_END;
          break;
        }
        if (tok != TR_TOK_COMMA)
          return bad(t, "expected ',' or '}' in the trace object");
        tok = next_tok(t);
        if (tok == -ENODATA) return json_eof(t);
        if (tok < 0) return tok;
        if (tok != TR_TOK_STRING)
          return bad(t, "expected a string key in the trace object");
        goto key;
      case ST_OBJ_FIRST:
        if (tok == TR_TOK_RBRACE)
          return bad(t, "not a trace: the object has no traceEvents array");
        if (tok != TR_TOK_STRING)
          return bad(t, "expected a string key in the trace object");
      key : {
        bool events = key_is(&t->tok, "traceEvents");
        tok = next_tok(t);
        if (tok == -ENODATA) return json_eof(t);
        if (tok < 0) return tok;
        if (tok != TR_TOK_COLON) return bad(t, "expected ':' after a key");
        tok = next_tok(t);
        if (tok == -ENODATA) return json_eof(t);
        if (tok < 0) return tok;
        if (events) {
          if (t->saw_events) return bad(t, "a second traceEvents array");
          if (tok != TR_TOK_LBRACKET)
            return bad(t, "not a trace: traceEvents is not an array");
          t->saw_events = true;
          t->st = ST_ARRAY_FIRST;
        } else {
          int rc = skip_value(t, tok);
          if (rc == -ENODATA) return json_eof(t);
          if (rc < 0) return rc;
          t->st = ST_OBJ_NEXT;
        }
        break;
      }
      case ST_ARRAY_NEXT:
        if (tok == TR_TOK_COMMA) {
          tok = next_tok(t);
          if (tok == -ENODATA) return json_eof(t);
          if (tok < 0) return tok;
          if (tok != TR_TOK_LBRACE)
            return bad(t, "expected an event (a JSON object) after ','");
        } else if (tok != TR_TOK_RBRACKET) {
          return bad(t, "expected ',' or ']' after an event");
        }
        /* fall through */
      case ST_ARRAY_FIRST:
        if (tok == TR_TOK_RBRACKET) {
          t->st = t->in_object ? ST_OBJ_NEXT : ST_END;
          break;
        }
        if (tok != TR_TOK_LBRACE)
          return bad(t, "expected an event (a JSON object) or ']'");
        t->st = ST_ARRAY_NEXT;
        {
          raw_event e;
          int rc = parse_event(t, &e);
          if (rc == -ENODATA) return json_eof(t);
          if (rc < 0) return rc;
          if (classify(t, &e, ev)) return 1;
          t->skipped++;
        }
        break;
      case ST_END:
        return bad(t, "unexpected data after the end of the trace");
      case ST_DONE:
        return 0;
    }
  }
}

int tr_trace_next(tr_trace *t, tr_trace_event *ev) {
  if (t->format == TR_TRACE_JSON) {
    int rc = json_next(t, ev);
    if (rc == 0 && t->gz_cut) t->cut_short = true;
    return rc;
  }
  int rc = tr_pftrace_next(t->pf, ev);
  if (rc < 0) snprintf(t->err, sizeof(t->err), "%s", tr_pftrace_error(t->pf));
  if (rc == 0 && (t->gz_cut || tr_pftrace_cut_short(t->pf)))
    t->cut_short = true;
  return rc;
}

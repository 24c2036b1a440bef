/* report_print.c: prints a report as cProfile-style tables (text) or as
 * one JSON object. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output/json_escape.h"
#include "report.h"
#include "report_data.h"

/* ---- printing ------------------------------------------------------------ */

/* The events a process lost: what its process_name metadata says its
 * producers dropped, or the lost-event markers' sum when that is more. */
static uint64_t proc_dropped(const proc *p) {
  return p->has_meta_dropped && p->meta_dropped > p->lost ? p->meta_dropped
                                                          : p->lost;
}

typedef struct row {
  uint32_t fn;
  tr_report_fn s;
} row;

typedef struct sort_ctx {
  const tr_intern *fns;
  int key;
} sort_ctx;

/* qsort has no context argument; the report is printed by one thread. */
static sort_ctx g_sort;

static int cmp_name(const row *a, const row *b) {
  size_t la, lb;
  const char *sa = tr_intern_str(g_sort.fns, a->fn, &la);
  const char *sb = tr_intern_str(g_sort.fns, b->fn, &lb);
  int c = memcmp(sa, sb, la < lb ? la : lb);
  if (c != 0) return c;
  return la < lb ? -1 : la > lb;
}

static int cmp_rows(const void *pa, const void *pb) {
  const row *a = pa, *b = pb;
  int64_t x = 0, y = 0;
  switch (g_sort.key) {
    case TR_SORT_SELF:
      x = a->s.self_ns;
      y = b->s.self_ns;
      break;
    case TR_SORT_CALLS:
      x = (int64_t)a->s.calls;
      y = (int64_t)b->s.calls;
      break;
    case TR_SORT_NAME:
      return cmp_name(a, b);
    default:
      x = a->s.total_ns;
      y = b->s.total_ns;
  }
  if (x != y) return x > y ? -1 : 1;
  return cmp_name(a, b);
}

/* The rows of one process (pi >= 0) or of the selected processes summed
 * (pi < 0).  Returns the count, or -ENOMEM. */
static int64_t collect(const tr_report *r, int64_t pi, const tr_report_opts *o,
                       row **out) {
  *out = NULL;
  row *rows;
  size_t n = 0;
  if (pi >= 0) {
    rows = malloc((r->nstats ? r->nstats : 1) * sizeof(*rows));
    if (rows == NULL) return -ENOMEM;
    for (size_t i = 0; i < r->nstats; i++)
      if (r->stats[i].proc == (uint32_t)pi)
        rows[n++] = (row){.fn = r->stats[i].fn, .s = r->stats[i].s};
  } else {
    uint32_t nfns = tr_intern_count(&r->fns);
    rows = calloc(nfns ? nfns : 1, sizeof(*rows));
    if (rows == NULL) return -ENOMEM;
    for (size_t i = 0; i < r->nstats; i++) {
      const stat_rec *s = &r->stats[i];
      if (o->has_pid && r->procs[s->proc].pid != o->pid) continue;
      row *d = &rows[s->fn];
      d->s.calls += s->s.calls;
      d->s.primitive += s->s.primitive;
      d->s.unfinished += s->s.unfinished;
      d->s.self_ns = WADD(d->s.self_ns, s->s.self_ns);
      d->s.total_ns = WADD(d->s.total_ns, s->s.total_ns);
    }
    for (uint32_t f = 0; f < nfns; f++)
      if (rows[f].s.calls > 0) {
        rows[n] = rows[f];
        rows[n++].fn = f;
      }
  }
  *out = rows;
  return (int64_t)n;
}

static void sort_rows(const tr_report *r, row *rows, size_t n, int key) {
  g_sort.fns = &r->fns;
  g_sort.key = key;
  qsort(rows, n, sizeof(*rows), cmp_rows);
}

/* Processes in the order of their process_sort_index (traced: the order
 * they joined the session, the program's main process first), then of
 * their first event. */
static const tr_report *g_order_report;

static int cmp_procs(const void *pa, const void *pb) {
  const proc *a = &g_order_report->procs[*(const uint32_t *)pa];
  const proc *b = &g_order_report->procs[*(const uint32_t *)pb];
  if (a->has_sort != b->has_sort) return a->has_sort ? -1 : 1;
  if (a->has_sort && a->sort_index != b->sort_index)
    return a->sort_index < b->sort_index ? -1 : 1;
  uint32_t ia = *(const uint32_t *)pa, ib = *(const uint32_t *)pb;
  return ia < ib ? -1 : ia > ib;
}

static uint32_t *proc_order(const tr_report *r) {
  uint32_t *ord = malloc((r->nprocs ? r->nprocs : 1) * sizeof(*ord));
  if (ord == NULL) return NULL;
  for (size_t i = 0; i < r->nprocs; i++) ord[i] = (uint32_t)i;
  g_order_report = r;
  qsort(ord, r->nprocs, sizeof(*ord), cmp_procs);
  return ord;
}

/* A name for the terminal: printable UTF-8 as is, control characters
 * (C0, DEL, C1) and invalid bytes as \xNN, so a hostile function name
 * cannot drive the terminal. */
static void put_text(FILE *f, const char *s, size_t n) {
  const uint8_t *p = (const uint8_t *)s, *end = p + n;
  while (p < end) {
    uint8_t c = *p;
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\')
        fputs("\\\\", f);
      else
        fputc(c, f);
      p++;
      continue;
    }
    int len = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0 && end - p >= len;
    for (int i = 1; ok && i < len; i++) {
      if ((p[i] & 0xc0) != 0x80) ok = false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (ok && ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
               (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || cp < 0xa0))
      ok = false;
    if (ok) {
      fwrite(p, 1, (size_t)len, f);
      p += len;
    } else {
      fprintf(f, "\\x%02x", c);
      p++;
    }
  }
}

/* Nanoseconds as milliseconds with three decimals. */
static void put_ms(FILE *f, int width, int64_t ns) {
  bool neg = ns < 0;
  uint64_t u = neg ? 0 - (uint64_t)ns : (uint64_t)ns;
  uint64_t us = (u + 500) / 1000; /* to the nearest microsecond */
  char buf[40];
  snprintf(buf, sizeof(buf), "%s%" PRIu64 ".%03" PRIu64, neg ? "-" : "",
           us / 1000, us % 1000);
  fprintf(f, "%*s", width, buf);
}

static const char *sort_title(int key) {
  switch (key) {
    case TR_SORT_SELF:
      return "self time (tottime)";
    case TR_SORT_CALLS:
      return "calls";
    case TR_SORT_NAME:
      return "name";
    default:
      return "total time (cumtime)";
  }
}

static void print_table(const tr_report *r, FILE *f, row *rows, size_t n,
                        int key, unsigned top) {
  sort_rows(r, rows, n, key);
  size_t shown = top && top < n ? top : n;
  if (shown < n)
    fprintf(f, "  top %zu of %zu functions by %s\n", shown, n, sort_title(key));
  else
    fprintf(f, "  %zu function%s by %s\n", n, n == 1 ? "" : "s",
            sort_title(key));
  fprintf(f, "  %14s %11s %11s %11s %11s  %s\n", "ncalls", "tottime", "percall",
          "cumtime", "percall", "function");
  for (size_t i = 0; i < shown; i++) {
    const tr_report_fn *s = &rows[i].s;
    char calls[48];
    if (s->primitive != s->calls)
      snprintf(calls, sizeof(calls), "%" PRIu64 "/%" PRIu64, s->calls,
               s->primitive);
    else
      snprintf(calls, sizeof(calls), "%" PRIu64, s->calls);
    fprintf(f, "  %14s ", calls);
    put_ms(f, 11, s->self_ns);
    fputc(' ', f);
    put_ms(f, 11, s->calls ? s->self_ns / (int64_t)s->calls : 0);
    fputc(' ', f);
    put_ms(f, 11, s->total_ns);
    fputc(' ', f);
    put_ms(f, 11, s->primitive ? s->total_ns / (int64_t)s->primitive : 0);
    fputs("  ", f);
    size_t len;
    const char *name = tr_intern_str(&r->fns, rows[i].fn, &len);
    put_text(f, name, len);
    if (s->unfinished) fprintf(f, "  [%" PRIu64 " unfinished]", s->unfinished);
    fputc('\n', f);
  }
}

static int print_section(const tr_report *r, FILE *f, int64_t pi,
                         const tr_report_opts *o) {
  row *rows;
  int64_t n = collect(r, pi, o, &rows);
  if (n < 0) return (int)n;
  if (n == 0) {
    fputs("  no calls\n", f);
  } else if (o->sort == TR_SORT_BOTH) {
    print_table(r, f, rows, (size_t)n, TR_SORT_TOTAL, o->top);
    fputc('\n', f);
    print_table(r, f, rows, (size_t)n, TR_SORT_SELF, o->top);
  } else {
    print_table(r, f, rows, (size_t)n, o->sort, o->top);
  }
  free(rows);
  return 0;
}

static const char *format_name(const tr_report *r) {
  if (r->format == TR_TRACE_PERFETTO)
    return r->compressed ? "gzip-compressed Perfetto protobuf"
                         : "Perfetto protobuf";
  return r->compressed ? "gzip-compressed Chrome JSON" : "Chrome JSON";
}

static void proc_title(FILE *f, const proc *p) {
  if (p->name != NULL)
    put_text(f, p->name, p->name_len);
  else
    fputs("process", f);
  fprintf(f, " (pid %" PRId64 ")", p->pid);
}

int tr_report_print_text(tr_report *r, FILE *f, const tr_report_opts *o) {
  uint64_t dropped = 0, threads = 0;
  for (size_t i = 0; i < r->nprocs; i++) dropped += proc_dropped(&r->procs[i]);
  dropped += r->cut_dropped;
  threads = r->nthreads;
  fputs("traced report: ", f);
  if (r->path) put_text(f, r->path, strlen(r->path));
  fprintf(f, " (%s%s)\n", format_name(r), r->cut_short ? ", cut short" : "");
  if (r->cut_short)
    fputs(
        "  the file ends before the trace does (was its writer stopped?);\n"
        "  every complete event before the cut is counted\n",
        f);
  if (r->cut_why != NULL) {
    /* "traced: trace cut short (size limit of N bytes reached): M events
     * dropped", as the writer put it, without its "traced: " */
    const char *why = r->cut_why;
    if (strncmp(why, "traced: ", 8) == 0) why += 8;
    fputs("  ", f);
    put_text(f, why, strlen(why));
    fputs("\n", f);
  }
  fputs("  ", f);
  put_ms(f, 0, r->any_ts ? tr_report_span(r->first_ts, r->last_ts) : 0);
  fprintf(f,
          " ms, first event to last; %zu process%s, %" PRIu64
          " thread%s, %" PRIu64 " events, %" PRIu64 " dropped\n",
          r->nprocs, r->nprocs == 1 ? "" : "es", threads,
          threads == 1 ? "" : "s", r->events, dropped);
  if (r->unfinished)
    fprintf(f,
            "  %" PRIu64
            " unfinished call%s (still running when %s thread's recording\n"
            "  ended) counted with the duration recorded\n",
            r->unfinished, r->unfinished == 1 ? "" : "s",
            r->unfinished == 1 ? "its" : "their");
  if (r->misnested)
    fprintf(f,
            "  %" PRIu64
            " call%s did not nest within the others on %s thread: the self\n"
            "  times around %s may be overstated\n",
            r->misnested, r->misnested == 1 ? "" : "s",
            r->misnested == 1 ? "its" : "their",
            r->misnested == 1 ? "it" : "them");
  if (r->skipped)
    fprintf(f,
            "  %" PRIu64
            " event%s skipped: a field the report needs is missing or not a\n"
            "  number\n",
            r->skipped, r->skipped == 1 ? "" : "s");
  fputs(
      "  times in milliseconds; tottime: self time (callees excluded);\n"
      "  cumtime: total time (a recursive function's outermost calls only);\n"
      "  ncalls: calls, or calls/outermost calls when they differ\n",
      f);
  uint32_t *ord = proc_order(r);
  if (ord == NULL) return -ENOMEM;
  size_t selected = 0;
  for (size_t i = 0; i < r->nprocs; i++)
    if (!o->has_pid || r->procs[i].pid == o->pid) selected++;
  int rc = 0;
  if (selected > 1) {
    fprintf(f, "\n== all %zu processes\n", selected);
    rc = print_section(r, f, -1, o);
  }
  for (size_t k = 0; rc == 0 && k < r->nprocs; k++) {
    const proc *p = &r->procs[ord[k]];
    if (o->has_pid && p->pid != o->pid) continue;
    fputs("\n== ", f);
    proc_title(f, p);
    fprintf(f,
            ": %" PRIu64 " thread%s, %" PRIu64 " events, %" PRIu64 " dropped",
            p->threads, p->threads == 1 ? "" : "s", p->events, proc_dropped(p));
    if (p->unfinished) fprintf(f, ", %" PRIu64 " unfinished", p->unfinished);
    fputc('\n', f);
    rc = print_section(r, f, ord[k], o);
  }
  free(ord);
  if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = -EIO;
  return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

static int put_json_rows(const tr_report *r, FILE *f, int64_t pi,
                         const tr_report_opts *o) {
  row *rows;
  int64_t n = collect(r, pi, o, &rows);
  if (n < 0) return (int)n;
  sort_rows(r, rows, (size_t)n,
            o->sort == TR_SORT_BOTH ? TR_SORT_TOTAL : o->sort);
  size_t shown = o->top && o->top < (size_t)n ? o->top : (size_t)n;
  fputc('[', f);
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < shown; i++) {
    const tr_report_fn *s = &rows[i].s;
    fputs(i ? ",\n    {\"name\":" : "\n    {\"name\":", f);
    size_t len;
    const char *name = tr_intern_str(&r->fns, rows[i].fn, &len);
    tr_json_put_str(f, name, len);
    fprintf(f,
            ",\"calls\":%" PRIu64 ",\"primitive_calls\":%" PRIu64
            ",\"self_ns\":%" PRId64 ",\"total_ns\":%" PRId64
            ",\"unfinished\":%" PRIu64 "}",
            s->calls, s->primitive, s->self_ns, s->total_ns, s->unfinished);
  }
  fputs(shown ? "\n  ]" : "]", f);
  free(rows);
  return rc;
}

int tr_report_print_json(tr_report *r, FILE *f, const tr_report_opts *o) {
  uint64_t dropped = 0;
  for (size_t i = 0; i < r->nprocs; i++) dropped += proc_dropped(&r->procs[i]);
  dropped += r->cut_dropped;
  static const char *const sorts[] = {"total", "total", "self", "calls",
                                      "name"};
  fputs("{\"file\":", f);
  tr_json_put_str(f, r->path ? r->path : "", r->path ? strlen(r->path) : 0);
  fprintf(f,
          ",\"format\":\"%s\",\"compressed\":%s,\"cut_short\":%s,\n"
          " \"start_ns\":%" PRId64 ",\"end_ns\":%" PRId64
          ",\"duration_ns\":%" PRId64
          ",\n \"processes\":%zu,\"threads\":%zu,"
          "\"events\":%" PRIu64 ",\"dropped\":%" PRIu64
          ",\"unfinished\":%" PRIu64 ",\"misnested\":%" PRIu64
          ",\"skipped\":%" PRIu64 ",\n \"sort\":\"%s\",\"top\":%u,\n",
          r->format == TR_TRACE_PERFETTO ? "perfetto" : "json",
          r->compressed ? "true" : "false", r->cut_short ? "true" : "false",
          r->any_ts ? r->first_ts : 0, r->any_ts ? r->last_ts : 0,
          r->any_ts ? tr_report_span(r->first_ts, r->last_ts) : 0, r->nprocs,
          r->nthreads, r->events, dropped, r->unfinished, r->misnested,
          r->skipped,
          sorts[o->sort >= 0 && o->sort <= TR_SORT_NAME ? o->sort : 0], o->top);
  if (r->cut_why != NULL) {
    fputs(" \"cut\":", f);
    tr_json_put_str(f, r->cut_why, strlen(r->cut_why));
    fprintf(f, ",\"cut_dropped\":%" PRIu64 ",\n", r->cut_dropped);
  }
  fputs(" \"overall\":", f);
  int rc = put_json_rows(r, f, -1, o);
  if (rc < 0) return rc;
  fputs(",\n \"process_reports\":[", f);
  uint32_t *ord = proc_order(r);
  if (ord == NULL) return -ENOMEM;
  bool first = true;
  for (size_t k = 0; rc == 0 && k < r->nprocs; k++) {
    const proc *p = &r->procs[ord[k]];
    if (o->has_pid && p->pid != o->pid) continue;
    fprintf(f, "%s\n  {\"pid\":%" PRId64 ",\"name\":", first ? "" : ",",
            p->pid);
    first = false;
    if (p->name != NULL)
      tr_json_put_str(f, p->name, p->name_len);
    else
      fputs("null", f);
    fprintf(f,
            ",\"threads\":%" PRIu64 ",\"events\":%" PRIu64
            ",\"dropped\":%" PRIu64 ",\"unfinished\":%" PRIu64
            ",\n   \"functions\":",
            p->threads, p->events, proc_dropped(p), p->unfinished);
    if (rc == 0) rc = put_json_rows(r, f, ord[k], o);
    fputc('}', f);
  }
  free(ord);
  fputs("]}\n", f);
  if (rc == 0 && (fflush(f) != 0 || ferror(f))) rc = -EIO;
  return rc;
}

/* writer.c: picking a trace writer backend by format, and what every
 * backend shares (streams, writing a buffer out). */
#include "writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "traced_proto.h"
#include "writer_json.h"
#include "writer_pftrace.h"

static const char *const format_names[] = {
    [TR_FORMAT_JSON] = TR_FORMAT_NAME_JSON,
    [TR_FORMAT_JSON_GZ] = TR_FORMAT_NAME_JSON_GZ,
    [TR_FORMAT_PERFETTO] = TR_FORMAT_NAME_PERFETTO,
};

int tr_format_parse(const char *s, size_t n, tr_format *out) {
  for (size_t i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++) {
    if (strlen(format_names[i]) == n && memcmp(format_names[i], s, n) == 0) {
      *out = (tr_format)i;
      return 0;
    }
  }
  return -EINVAL;
}

const char *tr_format_name(tr_format f) {
  return (unsigned)f < sizeof(format_names) / sizeof(format_names[0])
             ? format_names[f]
             : "?";
}

int tr_writer_open(tr_writer **out, int fd, tr_format format,
                   const char *label) {
  switch (format) {
    case TR_FORMAT_JSON:
    case TR_FORMAT_JSON_GZ: {
      tr_json *j;
      int rc = tr_json_open(&j, fd, label, format == TR_FORMAT_JSON_GZ);
      if (rc < 0) return rc;
      *out = &j->base;
      return 0;
    }
    case TR_FORMAT_PERFETTO: {
      tr_pftrace *p;
      int rc = tr_pftrace_open(&p, fd, label);
      if (rc < 0) return rc;
      *out = &p->base;
      return 0;
    }
  }
  return -EINVAL;
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
  return 0;
}

/* formats.c: the table of trace output formats: each one's protocol name
 * and the constructor of its writer backend. */
#include "formats.h"

#include <errno.h>
#include <string.h>

#include "proto/traced_proto.h"
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

int tr_writer_open(tr_writer **out, int fd, tr_format format, const char *label,
                   unsigned nlanes) {
  switch (format) {
    case TR_FORMAT_JSON:
    case TR_FORMAT_JSON_GZ: {
      tr_json *j;
      int rc = tr_json_open(&j, fd, label, format == TR_FORMAT_JSON_GZ, nlanes);
      if (rc < 0) return rc;
      *out = &j->base;
      return 0;
    }
    case TR_FORMAT_PERFETTO: {
      tr_pftrace *p;
      int rc = tr_pftrace_open(&p, fd, label, nlanes);
      if (rc < 0) return rc;
      *out = &p->base;
      return 0;
    }
  }
  return -EINVAL;
}

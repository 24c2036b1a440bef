/* formats.h: the trace output formats by name, and opening a writer of
 * one: the only place that knows every backend (writer_json.h,
 * writer_pftrace.h), so the backends know only the base (writer.h). */
#ifndef TRACED_FORMATS_H
#define TRACED_FORMATS_H

#include <stddef.h>

#include "writer.h"

/* Parses a protocol format name (exact, case-sensitive); 0 or -EINVAL. */
int tr_format_parse(const char *s, size_t n, tr_format *out);
const char *tr_format_name(tr_format f);

/* Creates a writer of `format` over fd (borrowed: the caller closes it,
 * once the writer is done) with nlanes >= 1 lanes (writer.h), buffers the
 * file's head and starts the writer's I/O thread, which performs every
 * write of fd from then on.  Returns 0, -ENOMEM, -EINVAL (unknown format,
 * no lanes) or another negative errno (no thread). */
int tr_writer_open(tr_writer **out, int fd, tr_format format, const char *label,
                   unsigned nlanes);

#endif

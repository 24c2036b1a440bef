/* recargs.h: the arguments an ARGS record carries (traced_proto.h),
 * decoded into the tr_arg arrays every writer takes, trusting nothing in
 * them. */
#ifndef TRACED_RECARGS_H
#define TRACED_RECARGS_H

#include <stdint.h>

#include "output/event_args.h"

/* Decodes the payload p[0..len) into out[0..max): keys and string values
 * point into p (which must stay unchanged while they are used).  Entries
 * beyond `max` are not read.  Returns the number of entries, or -EINVAL
 * when the payload is malformed (an unknown type, a length beyond the
 * payload, a number that is not 8 bytes, a bool that is not 1 byte, bytes
 * left over); nothing of a malformed payload is used. */
int tr_args_decode(const uint8_t *p, uint32_t len, tr_arg *out, uint32_t max);

#endif

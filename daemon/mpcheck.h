/* mpcheck.h: a bounds-checking walk over msgpack bytes, run before
 * msgpack-c unpacks anything a peer sent.
 *
 * msgpack-c allocates an array's or map's elements as soon as it reads the
 * count, before checking that the bytes exist, so a 20-byte payload could
 * make it reserve gigabytes.  This walk checks that every count fits in the
 * bytes that remain (each element takes at least one byte) and bounds the
 * nesting, without allocating. */
#ifndef TRACED_MPCHECK_H
#define TRACED_MPCHECK_H

#include <stddef.h>
#include <stdint.h>

#define TR_MPCHECK_MAX_DEPTH 8

/* The size in bytes of the one msgpack object at p (so a well-formed
 * payload of one object returns n), or -1 when it is truncated, uses the
 * reserved byte 0xc1, announces more elements than bytes remain, or nests
 * deeper than TR_MPCHECK_MAX_DEPTH. */
long tr_mpcheck_size(const uint8_t *p, size_t n);

#endif

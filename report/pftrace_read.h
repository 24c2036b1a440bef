/* pftrace_read.h: decodes a Perfetto protobuf trace (a `Trace` message:
 * a stream of TracePackets) into trace events, streaming.
 *
 * What is read, by the field names of output/pftrace_fields.h (shared
 * with the writer): packets' timestamps, clocks, sequence ids and flags
 * (incremental state cleared, previous packet dropped), their defaults
 * (clock, track), interned event names and debug annotation names, clock
 * snapshots, track descriptors (uuid, parent, process and thread with pid,
 * tid and name) and track events (type, track, name or name iid, and the
 * debug annotations "unfinished" and "count").  Everything else is
 * skipped by its wire type.
 *
 * Packets are read as trace_processor reads them (proto_trace_reader.cc):
 * a packet that clears incremental state resets its sequence's interned
 * names and defaults first, then come its defaults, its interned data and
 * its clock snapshot (a packet with a snapshot holds nothing else that is
 * read); a packet that needs incremental state on a sequence that lost it
 * is skipped.  Timestamps are converted to the trace's clock (its
 * primary_trace_clock) through the clock snapshots, incremental sequence
 * clocks included; event times are in that clock, so a traced trace
 * (primary clock MONOTONIC) has the same times as its JSON.  Unlike
 * trace_processor, the reader does not sort: each thread's events must be
 * in the file in time order, as traced writes them (docs/report.md).
 *
 * Memory: the interned names, defaults and clocks (pftrace_clock.h) of
 * each packet sequence (names until the sequence clears its incremental
 * state), the track
 * descriptors, and one packet (at most TR_PFTRACE_PACKET_MAX bytes; larger
 * packets are skipped and counted). */
#ifndef TRACED_PFTRACE_READ_H
#define TRACED_PFTRACE_READ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace_read.h"

#define TR_PFTRACE_PACKET_MAX (64u * 1024u * 1024u)

typedef ssize_t (*tr_pftrace_read_fn)(void *ctx, void *buf, size_t n);

typedef struct tr_pftrace tr_pftrace;

/* Reads through `read(ctx, ...)` (borrowed).  Returns 0 or -ENOMEM. */
int tr_pftrace_new(tr_pftrace **out, tr_pftrace_read_fn read, void *ctx);
void tr_pftrace_free(tr_pftrace *p);

/* As tr_trace_next(): 1 with an event, 0 at the end, or a negative errno
 * (tr_pftrace_error says why). */
int tr_pftrace_next(tr_pftrace *p, tr_trace_event *ev);

const char *tr_pftrace_error(const tr_pftrace *p);
bool tr_pftrace_cut_short(const tr_pftrace *p);
/* Packets and events passed over: malformed or oversized packets, events
 * without a timestamp or in a clock the trace never defined, packets that
 * need incremental state their sequence does not have. */
uint64_t tr_pftrace_skipped(const tr_pftrace *p);

#endif

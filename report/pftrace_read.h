/* pftrace_read.h: decodes a Perfetto protobuf trace (a `Trace` message:
 * a stream of TracePackets) into trace events, streaming.
 *
 * What is read (field numbers from Perfetto's protos/perfetto/trace/):
 *   Trace.packet = 1
 *   TracePacket: timestamp = 8, timestamp_clock_id = 58,
 *     trusted_packet_sequence_id = 10, clock_snapshot = 6,
 *     track_event = 11, interned_data = 12, sequence_flags = 13
 *     (SEQ_INCREMENTAL_STATE_CLEARED = 1, SEQ_NEEDS_INCREMENTAL_STATE = 2),
 *     incremental_state_cleared = 41, previous_packet_dropped = 42,
 *     trace_packet_defaults = 59, track_descriptor = 60
 *   TracePacketDefaults: timestamp_clock_id = 58, track_event_defaults =
 *     11 -> TrackEventDefaults.track_uuid = 11
 *   ClockSnapshot: clocks = 1, primary_trace_clock = 2;
 *     Clock: clock_id = 1, timestamp = 2, is_incremental = 3,
 *     unit_multiplier_ns = 4 (builtin clocks 1..63, BOOTTIME = 6 the
 *     default trace clock; sequence-scoped clocks 64..127)
 *   TrackEvent: type = 9 (SLICE_BEGIN 1, SLICE_END 2, INSTANT 3,
 *     COUNTER 4), track_uuid = 11, name_iid = 10, name = 23,
 *     debug_annotations = 4
 *   DebugAnnotation: name_iid = 1, name = 10, bool_value = 2,
 *     uint_value = 3, int_value = 4
 *   InternedData: event_names = 2 (EventName iid = 1, name = 2),
 *     debug_annotation_names = 3 (iid = 1, name = 2)
 *   TrackDescriptor: uuid = 1, name = 2, process = 3, thread = 4,
 *     parent_uuid = 5
 *   ProcessDescriptor: pid = 1, process_name = 6
 *   ThreadDescriptor: pid = 1, tid = 2, thread_name = 5
 * Everything else is skipped by its wire type.
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
 * Memory: the interned names, defaults and clocks of each packet sequence
 * (names until the sequence clears its incremental state), the track
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

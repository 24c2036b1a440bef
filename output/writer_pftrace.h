/* writer_pftrace.h: the Perfetto protobuf trace writer backend (a
 * perfetto.protos.Trace, docs/formats.md), which Perfetto UI and
 * trace_processor load directly.
 *
 * The file is a sequence of TracePacket fields (field 1 of Trace), so any
 * prefix that ends on a packet boundary is itself a valid trace: packets
 * are only ever written whole, from a lane's buffer (TR_PF_BUF_SIZE).
 * Each thread of each process recording into the session writes one
 * packet sequence (trusted_packet_sequence_id), all of it through its
 * process's stream and so its lane, in order: names are interned on it
 * by the process's own string ids, its events default to the thread's
 * track, and their timestamps are deltas on an incremental clock.
 * Process, thread and counter tracks are described by TrackDescriptors
 * emitted before their first event and again, named, when recording ends.
 * Calls are TYPE_SLICE_BEGIN packets written when the call enters and
 * TYPE_SLICE_END packets when it returns, so on each thread the packets
 * come in the order the calls nest.  Timestamps are CLOCK_MONOTONIC
 * nanoseconds, declared by a ClockSnapshot at the start of the file. */
#ifndef TRACED_WRITER_PFTRACE_H
#define TRACED_WRITER_PFTRACE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "writer.h"

#define TR_PF_BUF_SIZE (256u * 1024u)

typedef struct tr_pftrace {
  tr_writer base;            /* first: a tr_pftrace is a tr_writer */
  _Atomic uint64_t next_seq; /* threads' packet sequences handed out */
} tr_pftrace;

/* Allocates a writer over fd (not owned) with nlanes lanes, buffers the
 * clock snapshot that opens the file and starts its I/O thread.  Returns
 * 0 or a negative errno; tr_writer_free frees it. */
int tr_pftrace_open(tr_pftrace **out, int fd, const char *label,
                    unsigned nlanes);

/* Track uuids (TrackDescriptor.uuid), global to the file.  They are
 * derived from pid and tid so that a process seen twice (it exec()ed)
 * keeps its tracks: Perfetto takes a second uuid for the same pid or tid
 * as a new process or thread. */
uint64_t tr_pf_process_uuid(uint32_t pid);
uint64_t tr_pf_thread_uuid(uint32_t pid, uint32_t tid);
uint64_t tr_pf_counter_uuid(uint32_t pid, const char *name, size_t len);

#endif

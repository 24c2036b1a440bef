/* pftrace_fields.h: the field numbers and enum values of Perfetto's trace
 * protos that traced writes (output/writer_pftrace.c) and reads back
 * (report/pftrace_read.c), named once for both.
 *
 * From Perfetto's public protos (github.com/google/perfetto, protos/
 * perfetto/trace/...); checked against trace.proto, trace_packet.proto,
 * clock_snapshot.proto, trace_packet_defaults.proto, interned_data/
 * interned_data.proto and track_event/{track_event,track_descriptor,
 * process_descriptor,thread_descriptor,counter_descriptor,
 * debug_annotation}.proto.  A name is TR_PF_<message>_<field>. */
#ifndef TRACED_PFTRACE_FIELDS_H
#define TRACED_PFTRACE_FIELDS_H

/* Trace */
enum { TR_PF_TRACE_PACKET = 1 };

/* TracePacket */
enum {
  TR_PF_PACKET_CLOCK_SNAPSHOT = 6,
  TR_PF_PACKET_TIMESTAMP = 8,
  TR_PF_PACKET_SEQUENCE_ID = 10, /* trusted_packet_sequence_id */
  TR_PF_PACKET_TRACK_EVENT = 11,
  TR_PF_PACKET_INTERNED_DATA = 12,
  TR_PF_PACKET_SEQUENCE_FLAGS = 13,
  TR_PF_PACKET_INCREMENTAL_STATE_CLEARED = 41,
  TR_PF_PACKET_PREVIOUS_PACKET_DROPPED = 42,
  TR_PF_PACKET_TIMESTAMP_CLOCK_ID = 58,
  TR_PF_PACKET_DEFAULTS = 59, /* trace_packet_defaults */
  TR_PF_PACKET_TRACK_DESCRIPTOR = 60,
};

/* TracePacket.SequenceFlags (bits of sequence_flags) */
enum {
  TR_PF_SEQ_INCREMENTAL_STATE_CLEARED = 1,
  TR_PF_SEQ_NEEDS_INCREMENTAL_STATE = 2,
};

/* TracePacketDefaults, and the TrackEventDefaults in it */
enum {
  TR_PF_DEFAULTS_TRACK_EVENT = 11, /* track_event_defaults */
  TR_PF_DEFAULTS_CLOCK_ID = 58,    /* timestamp_clock_id */
  TR_PF_TE_DEFAULTS_TRACK_UUID = 11,
};

/* ClockSnapshot, its Clock messages and the clock ids: 1..63 builtin
 * clocks, the same for every sequence; 64..127 sequence-scoped clocks,
 * whose meaning a snapshot on the sequence gives. */
enum {
  TR_PF_SNAPSHOT_CLOCKS = 1,
  TR_PF_SNAPSHOT_PRIMARY_CLOCK = 2, /* primary_trace_clock */
  TR_PF_CLOCK_ID = 1,
  TR_PF_CLOCK_TIMESTAMP = 2,
  TR_PF_CLOCK_IS_INCREMENTAL = 3,
  TR_PF_CLOCK_UNIT_MULTIPLIER_NS = 4,

  TR_PF_BUILTIN_CLOCK_MONOTONIC = 3,
  TR_PF_BUILTIN_CLOCK_BOOTTIME = 6, /* the default trace clock */
  TR_PF_BUILTIN_CLOCK_MAX = 63,
  TR_PF_SEQ_CLOCK_MIN = 64,
  TR_PF_SEQ_CLOCK_MAX = 127,
};

/* InternedData, and the EventCategory, EventName and
 * DebugAnnotationName messages in it */
enum {
  TR_PF_INTERNED_EVENT_CATEGORIES = 1,
  TR_PF_INTERNED_EVENT_NAMES = 2,
  TR_PF_INTERNED_DEBUG_ANNOTATION_NAMES = 3,
  TR_PF_INTERNED_IID = 1,
  TR_PF_INTERNED_NAME = 2,
};

/* TrackDescriptor, ProcessDescriptor, ThreadDescriptor */
enum {
  TR_PF_TD_UUID = 1,
  TR_PF_TD_NAME = 2,
  TR_PF_TD_PROCESS = 3,
  TR_PF_TD_THREAD = 4,
  TR_PF_TD_PARENT_UUID = 5,
  TR_PF_TD_COUNTER = 8,

  TR_PF_PROCESS_PID = 1,
  TR_PF_PROCESS_NAME = 6,

  TR_PF_THREAD_PID = 1,
  TR_PF_THREAD_TID = 2,
  TR_PF_THREAD_NAME = 5,
};

/* TrackEvent and TrackEvent.Type */
enum {
  TR_PF_TE_CATEGORY_IIDS = 3,
  TR_PF_TE_DEBUG_ANNOTATIONS = 4,
  TR_PF_TE_TYPE = 9,
  TR_PF_TE_NAME_IID = 10,
  TR_PF_TE_TRACK_UUID = 11,
  TR_PF_TE_NAME = 23,
  TR_PF_TE_DOUBLE_COUNTER_VALUE = 44,

  TR_PF_TYPE_SLICE_BEGIN = 1,
  TR_PF_TYPE_SLICE_END = 2,
  TR_PF_TYPE_INSTANT = 3,
  TR_PF_TYPE_COUNTER = 4,
};

/* DebugAnnotation */
enum {
  TR_PF_DA_NAME_IID = 1,
  TR_PF_DA_BOOL = 2,
  TR_PF_DA_UINT = 3,
  TR_PF_DA_INT = 4,
  TR_PF_DA_DOUBLE = 5,
  TR_PF_DA_STRING = 6,
  TR_PF_DA_NAME = 10,
};

#endif

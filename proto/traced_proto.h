/* traced_proto.h: the wire and shared-memory layouts that the daemon and
 * every client compile against (see PROTOCOL.md for the prose spec).
 *
 * Everything here is fixed-width and little-endian.  Layouts that live in
 * shared memory are _Static_asserted so a change that moves a field fails to
 * build instead of silently breaking old clients. */
#ifndef TRACED_PROTO_H
#define TRACED_PROTO_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "traced's shared-memory layouts are little-endian only"
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2,
               "64-bit atomics must be lock-free to be shared between "
               "processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2,
               "32-bit atomics must be lock-free to be shared between "
               "processes");

/* ---- versioning ------------------------------------------------------- */

#define TR_PROTO_MAGIC "traced" /* HELLO "magic" value */
#define TR_PROTO_VERSION 1u     /* bumped on any incompatible change */

/* ---- framing ----------------------------------------------------------- */

/* Every message on the socket is one frame: this header, then `len` bytes of
 * payload (a msgpack map, or nothing).  Descriptors (SCM_RIGHTS) ride with
 * the first byte of the frame that needs them. */
typedef struct tr_frame_hdr {
  uint32_t len;   /* payload bytes, excluding this header */
  uint16_t type;  /* enum tr_msg_type */
  uint16_t flags; /* must be 0 in version 1 */
} tr_frame_hdr;
_Static_assert(sizeof(tr_frame_hdr) == 8, "frame header is 8 bytes");

/* Hard limit on a frame's payload.  A peer announcing more is malformed. */
#define TR_FRAME_MAX_PAYLOAD (64u * 1024u)
/* At most this many descriptors accompany one frame. */
#define TR_FRAME_MAX_FDS 2

enum tr_msg_type {
  TR_MSG_HELLO = 1,            /* c->d  handshake, + fd: string arena */
  TR_MSG_WELCOME = 2,          /* d->c  handshake accepted */
  TR_MSG_SESSION_CREATE = 3,   /* c->d  + fd: output file */
  TR_MSG_SESSION_CREATED = 4,  /* d->c  token */
  TR_MSG_SESSION_JOIN = 5,     /* c->d  token */
  TR_MSG_SESSION_JOINED = 6,   /* d->c  whether the session is recording */
  TR_MSG_RING_ADD = 7,         /* c->d  + fd: one thread's ring */
  TR_MSG_DOORBELL = 8,         /* c->d  empty: a ring passed its watermark */
  TR_MSG_SESSION_END = 9,      /* c->d  creator ends its session */
  TR_MSG_SESSION_SUMMARY = 10, /* d->c  answer to SESSION_END */
  TR_MSG_PROCESS_INFO = 11,    /* c->d  process name / ppid changed */
  TR_MSG_STATUS = 12,          /* c->d  control: what the daemon serves */
  TR_MSG_STATUS_REPLY = 13,    /* d->c  daemon and (visible) sessions */
  TR_MSG_STOP = 14,            /* c->d  control: graceful daemon stop */
  TR_MSG_ERROR = 15,           /* d->c  refusal; the daemon then closes */
  TR_MSG_STOPPING = 16,        /* d->c  STOP accepted; EOF once finalised */
  /* Windows only (PROTOCOL.md section 9): c->d, the handles of the next
   * frame, which the daemon pulls out of the client; never on Unix. */
  TR_MSG_HANDLES = 17,
};

/* SESSION_CREATE "format" values.  The creator picks one from the output
 * file's name (PROTOCOL.md section 2); a SESSION_CREATE without "format"
 * (an older client) writes JSON. */
#define TR_FORMAT_NAME_JSON "json"         /* Chrome Trace Event JSON */
#define TR_FORMAT_NAME_JSON_GZ "json.gz"   /* the same, gzip-compressed */
#define TR_FORMAT_NAME_PERFETTO "perfetto" /* Perfetto protobuf trace */

/* ---- shared memory: common ----------------------------------------------
 * Both shared regions (the per-process string arena and the per-thread
 * rings) start with a 4 KiB header page so their data is page aligned.  The
 * producer side creates them (memfd, sealed against shrink and grow) and
 * hands the descriptor to the daemon, which checks magic, version, sizes
 * and seals before mapping trusts anything. */
#define TR_SHM_HEADER_SIZE 4096u
#define TR_CACHELINE 64

/* ---- string arena ----------------------------------------------------------
 * One per process.  Append-only: entries are never modified after the
 * `committed` release store that publishes them, so an entry's id (its byte
 * offset in the data area) stays valid for the life of the arena.
 * Entry layout: uint32 length, then `length` bytes (no NUL), padded with
 * zeros to a multiple of 4. */
#define TR_ARENA_MAGIC 0x54535254u /* "TRST" */
#define TR_ARENA_MIN_SIZE (64u * 1024u)
#define TR_ARENA_MAX_SIZE (256u * 1024u * 1024u)
#define TR_ARENA_DEFAULT_SIZE (16u * 1024u * 1024u)
#define TR_STRING_MAX_LEN 4096u /* longer names are truncated by producers */

/* Process recording state, written only by the daemon (and by a forked
 * child in its private copy, see PROTOCOL.md "fork").  Producers read it
 * with one relaxed load per event. */
#define TR_STATE_ENABLED 1u    /* records are wanted */
#define TR_STATE_REATTACH 2u   /* forked child: register before recording */
#define TR_STATE_EPOCH_SHIFT 8 /* epoch = state >> 8, changes per session */

typedef struct tr_arena_hdr {
  uint32_t magic;       /* TR_ARENA_MAGIC */
  uint16_t version;     /* TR_PROTO_VERSION */
  uint16_t header_size; /* TR_SHM_HEADER_SIZE */
  uint32_t capacity;    /* bytes in the data area */
  uint32_t reserved0;
  uint8_t pad0[TR_CACHELINE - 16];
  /* Daemon-written line. */
  _Alignas(TR_CACHELINE) _Atomic uint64_t state;
  /* The daemon's heartbeat: a value that changes at least every
   * TR_BEAT_INTERVAL_MS while the daemon serves this process (PROTOCOL.md
   * section 5, "Full ring").  0 from daemons that predate it. */
  _Atomic uint64_t beat;
  uint8_t pad1[TR_CACHELINE - 16];
  /* Producer-written line. */
  _Alignas(TR_CACHELINE) _Atomic uint32_t committed; /* bytes published */
  _Atomic uint32_t dropped; /* strings refused: arena full */
} tr_arena_hdr;
_Static_assert(offsetof(tr_arena_hdr, state) == 64, "arena state at 64");
_Static_assert(offsetof(tr_arena_hdr, beat) == 72, "arena beat at 72");
_Static_assert(offsetof(tr_arena_hdr, committed) == 128,
               "arena committed at 128");
_Static_assert(sizeof(tr_arena_hdr) <= TR_SHM_HEADER_SIZE,
               "arena header fits its page");

/* The daemon changes every served process's `beat` at least this often. */
#define TR_BEAT_INTERVAL_MS 100u

/* ---- per-thread ring -------------------------------------------------------
 * Single producer (the thread), single consumer (the daemon).  Positions
 * count 16-byte slots since creation and never wrap; slot i lives at
 * data[i & (capacity - 1)].  The producer writes slots, then publishes with
 * a release store of `head`; the daemon reads `head` with acquire, consumes,
 * then publishes `tail` with a release store. */
#define TR_RING_MAGIC 0x47525254u /* "TRRG" */
#define TR_RING_MIN_SLOTS 1024u
#define TR_RING_MAX_SLOTS (1u << 24)     /* 256 MiB of records */
#define TR_RING_DEFAULT_SLOTS (1u << 16) /* 1 MiB of records */
/* Bytes of a new ring faulted in at creation (libclient); the rest on
 * first use. */
#define TR_RING_PREFAULT_BYTES (256u * 1024u)

typedef struct tr_ring_hdr {
  uint32_t magic;       /* TR_RING_MAGIC */
  uint16_t version;     /* TR_PROTO_VERSION */
  uint16_t header_size; /* TR_SHM_HEADER_SIZE */
  uint32_t capacity;    /* slots, a power of two */
  uint32_t tid;         /* the producing thread's OS thread id */
  uint8_t pad0[TR_CACHELINE - 16];
  /* Producer-written line. */
  _Alignas(TR_CACHELINE) _Atomic uint64_t head; /* slots published */
  _Atomic uint64_t dropped; /* events refused: ring full (cumulative) */
  _Atomic uint32_t closed;  /* 1: the thread is gone, nothing more comes */
  _Atomic uint32_t bell;    /* 1: a doorbell was rung and not yet served */
  _Atomic uint32_t waiting; /* 1: the producer sleeps on `wake` for room */
  uint8_t pad1[TR_CACHELINE - 28];
  /* Consumer-written line. */
  _Alignas(TR_CACHELINE) _Atomic uint64_t tail; /* slots consumed */
  /* Bumped by the daemon after it consumed while `waiting` was set, and
   * the producer woken with FUTEX_WAKE on it (a futex word: 32 bits). */
  _Atomic uint32_t wake;
} tr_ring_hdr;
_Static_assert(offsetof(tr_ring_hdr, head) == 64, "ring head at 64");
_Static_assert(offsetof(tr_ring_hdr, dropped) == 72, "ring dropped at 72");
_Static_assert(offsetof(tr_ring_hdr, closed) == 80, "ring closed at 80");
_Static_assert(offsetof(tr_ring_hdr, bell) == 84, "ring bell at 84");
_Static_assert(offsetof(tr_ring_hdr, waiting) == 88, "ring waiting at 88");
_Static_assert(offsetof(tr_ring_hdr, tail) == 128, "ring tail at 128");
_Static_assert(offsetof(tr_ring_hdr, wake) == 136, "ring wake at 136");
_Static_assert(sizeof(tr_ring_hdr) <= TR_SHM_HEADER_SIZE,
               "ring header fits its page");

/* One ring slot.  A record is one slot plus `extra` payload slots that
 * follow it (wrapping like any slot).  Unknown kinds are skipped using
 * `extra`, so new kinds do not break old daemons. */
typedef struct tr_record {
  uint64_t ts;    /* the connection's clock (PROTOCOL.md section 3) */
  uint32_t id;    /* string id (arena offset) or kind-specific */
  uint16_t kind;  /* enum tr_rec_kind */
  uint16_t extra; /* payload slots that follow */
} tr_record;
_Static_assert(sizeof(tr_record) == 16, "records are 16 bytes");
_Static_assert(offsetof(tr_record, id) == 8, "record id at 8");
_Static_assert(offsetof(tr_record, kind) == 12, "record kind at 12");
_Static_assert(offsetof(tr_record, extra) == 14, "record extra at 14");

/* Payload slots one record may carry.  Version 1 daemons before record
 * kind 11 accepted at most 4; a daemon announces its own limit in WELCOME
 * (`max_extra`), and producers write records longer than 4 slots only to
 * a daemon that announced room for them. */
#define TR_RECORD_MAX_EXTRA 256u
#define TR_RECORD_MAX_EXTRA_V1 4u

enum tr_rec_kind {
  TR_REC_PY_CALL = 1,     /* id: function name */
  TR_REC_PY_RETURN = 2,   /* id: same function's name */
  TR_REC_C_CALL = 3,      /* id: C function name */
  TR_REC_C_RETURN = 4,    /* id: same; also on C exception */
  TR_REC_BEGIN = 5,       /* C API span begin, id: name */
  TR_REC_END = 6,         /* C API span end, id: name of the open span */
  TR_REC_INSTANT = 7,     /* id: name */
  TR_REC_COUNTER = 8,     /* id: name; 1 extra slot: double value, u64 0 */
  TR_REC_THREAD_NAME = 9, /* id: the thread's (new) name */
  TR_REC_LOST = 10,       /* id: events lost just before this point */
  TR_REC_ARGS = 11,       /* id: payload bytes; extra: the payload (key/
                             value arguments of the record that follows) */
};

/* ---- arguments (TR_REC_ARGS) -------------------------------------------
 * An ARGS record carries the arguments of the record right after it in
 * the same ring (an enter, exit, BEGIN, END, INSTANT or COUNTER), written
 * and published together with it.  Its payload is `id` bytes in its extra
 * slots (zero-padded to whole slots): a sequence of entries, each
 *   u8 type (enum tr_args_type), u8 key length K, u16 value length V,
 *   K bytes of key (UTF-8), V bytes of value
 * packed without padding.  STR values are UTF-8 (a producer cuts them at
 * a character boundary), INT/UINT/DOUBLE values 8 bytes little-endian,
 * BOOL 1 byte (0 or 1). */
enum tr_args_type {
  TR_ARGS_STR = 0,
  TR_ARGS_INT = 1,
  TR_ARGS_UINT = 2,
  TR_ARGS_DOUBLE = 3,
  TR_ARGS_BOOL = 4,
};
#define TR_ARGS_ENTRY_HDR 4u /* type, key length, value length */
#define TR_ARGS_MAX_BYTES (TR_RECORD_MAX_EXTRA * 16u)
#define TR_ARGS_MAX_ENTRIES 64u /* entries beyond this are not read */

/* Id 0 always names the first arena entry, which producers write as
 * "<unknown>" when they create the arena. */
#define TR_STRING_UNKNOWN 0u

/* ---- started processes (PROCESS_INFO `child`, SESSION_SUMMARY `unjoined`)
 * A client cuts what it announces to these bounds; the daemon refuses more.
 */
#define TR_CHILD_PATH_MAX 1024u /* bytes of the program's path */
/* Bytes of argv, each argument's NUL counted. */
#define TR_CHILD_ARGV_MAX 2048u
#define TR_CHILD_ARGC_MAX 64u /* arguments */
/* Python children that never joined, listed in a SESSION_SUMMARY (the rest
 * are counted in `unjoined_omitted`). */
#define TR_UNJOINED_MAX 8u

/* ---- environment ----------------------------------------------------------
 */
#define TR_ENV_SOCKET "TRACED_SOCKET"
#define TR_ENV_SESSION "TRACED_SESSION"
#define TR_ENV_OUTPUT "TRACED_OUTPUT"
#define TR_ENV_ROOT_PID "TRACED_ROOT_PID" /* set by `traced run` */
#define TR_ENV_RING_SLOTS "TRACED_RING_SLOTS"
#define TR_ENV_QUIET "TRACED_QUIET"
#define TR_ENV_CLOCK "TRACED_CLOCK" /* "monotonic": never offer TSC */
/* How long a producer whose ring is full waits, in the default mode, for a
 * daemon that makes no progress at all (dead, stopped, hung) before it
 * drops events: milliseconds, default TR_STALL_DEFAULT_MS. */
#define TR_ENV_STALL_MS "TRACED_STALL_MS"
#define TR_STALL_DEFAULT_MS 2000u
#define TR_STALL_MAX_MS 600000u

/* The system-wide daemon's socket (`traced serve --system`); clients use
 * it when TRACED_SOCKET names it.  On Windows, a named pipe. */
#ifdef _WIN32
#define TR_SYSTEM_SOCKET "\\\\.\\pipe\\traced"
#else
#define TR_SYSTEM_SOCKET "/run/traced/traced.sock"
#endif

/* Session tokens: 128 random bits as 32 lowercase hex digits. */
#define TR_TOKEN_HEX_LEN 32

#endif /* TRACED_PROTO_H */

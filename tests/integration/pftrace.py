"""A small, strict decoder of the Perfetto protobuf traces traced writes
(docs/formats.md), for the tests: no protobuf package, just the wire format
(varints, fixed64, length-delimited fields) and the handful of Perfetto
messages traced uses, with their field numbers from Perfetto's public
protos (protos/perfetto/trace/...).

decode(data) replays the trace the way Perfetto's trace_processor does:
per packet sequence, interned names, packet defaults (clock, track) and
sequence-scoped clocks, incremental ones included (all reset by
SEQ_INCREMENTAL_STATE_CLEARED); timestamps converted to CLOCK_MONOTONIC
through the clock snapshots; track descriptors (the latest name wins); then
every track event sorted by timestamp (file order breaking ties, as
trace_processor's sorter does) and begin/end pairs matched per track.  Anything a viewer would reject or
silently drop (an END with no open slice, an unknown interned id or track, a
packet needing incremental state on a sequence that never cleared it) is
collected in Trace.errors.
"""

import struct

# Field numbers (Perfetto protos).
TRACE_PACKET = 1
PKT_CLOCK_SNAPSHOT, PKT_TIMESTAMP, PKT_SEQ_ID = 6, 8, 10
PKT_TRACK_EVENT, PKT_INTERNED, PKT_SEQ_FLAGS = 11, 12, 13
PKT_DEFAULTS, PKT_TRACK_DESCRIPTOR = 59, 60
SEQ_INCREMENTAL_STATE_CLEARED, SEQ_NEEDS_INCREMENTAL_STATE = 1, 2
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT, TYPE_COUNTER = 1, 2, 3, 4
BUILTIN_CLOCK_MONOTONIC, BUILTIN_CLOCK_BOOTTIME = 3, 6


class DecodeError(ValueError):
    pass


def varint(buf, i):
    """(value, next index) of the varint at buf[i]."""
    v = shift = 0
    while True:
        if i >= len(buf):
            raise DecodeError("truncated varint")
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def fields(buf):
    """[(field, wire type, value)] of one message: ints for varints and
    fixed64 (raw bits), bytes for length-delimited fields."""
    out = []
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise DecodeError("field number 0")
        if wire == 0:
            v, i = varint(buf, i)
        elif wire == 1:
            if i + 8 > len(buf):
                raise DecodeError("truncated fixed64")
            v = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wire == 2:
            n, i = varint(buf, i)
            if i + n > len(buf):
                raise DecodeError("length-delimited field past the end")
            v = bytes(buf[i:i + n])
            i += n
        elif wire == 5:
            if i + 4 > len(buf):
                raise DecodeError("truncated fixed32")
            v = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise DecodeError("wire type %d" % wire)
        out.append((field, wire, v))
    return out


def message(buf):
    """{field: [values]} of one message."""
    m = {}
    for f, _, v in fields(buf):
        m.setdefault(f, []).append(v)
    return m


def one(m, field, default=None):
    vals = m.get(field)
    return vals[-1] if vals else default


def signed(v, bits=64):
    """A varint read as a two's complement intN."""
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def as_double(bits):
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def text(b):
    return b.decode("utf-8")  # strict: traced writes valid UTF-8 only


def annotations(vals):
    """{name: value} of repeated DebugAnnotation."""
    out = {}
    for raw in vals or []:
        a = message(raw)
        name = text(one(a, 10, b""))
        if 2 in a:
            out[name] = bool(one(a, 2))
        elif 3 in a:
            out[name] = one(a, 3)
        elif 4 in a:
            out[name] = signed(one(a, 4))
        elif 5 in a:
            out[name] = as_double(one(a, 5))
        elif 6 in a:
            out[name] = text(one(a, 6))
        else:
            out[name] = None
    return out


class Trace:
    """What a Perfetto trace file holds, as trace_processor would see it."""

    def __init__(self):
        self.packets = 0
        self.clock_snapshots = []   # [({clock_id: ts}, primary clock)]
        self.sequences = set()
        self.processes = {}         # uuid -> pid
        self.threads = {}           # uuid -> (pid, tid)
        self.counter_tracks = {}    # uuid -> (parent uuid, name)
        self.global_tracks = {}     # uuid -> name (no process or thread)
        self.process_names = {}     # pid -> latest name
        self.thread_names = {}      # (pid, tid) -> latest name
        self.slices = []            # dicts: pid tid cat name ts dur args
        self.instants = []          # dicts: pid tid cat name ts args
        self.counters = []          # dicts: pid name tid ts value
        self.errors = []
        self.timestamp_clocks = set()  # clock ids packets' timestamps use


def decode(data):
    """Decodes a whole trace (bytes) into a Trace."""
    tr = Trace()
    seq_state = {}   # seq -> {"valid", "names", "cats", "clock"}
    events = []      # (ts, order, seq, track event message)
    for field, wire, raw in fields(data):
        if field != TRACE_PACKET or wire != 2:
            raise DecodeError("Trace has field %d (wire %d)" % (field, wire))
        tr.packets += 1
        p = message(raw)
        seq = one(p, PKT_SEQ_ID, 0)
        flags = one(p, PKT_SEQ_FLAGS, 0)
        tr.sequences.add(seq)
        st = seq_state.setdefault(seq, new_state())
        if flags & SEQ_INCREMENTAL_STATE_CLEARED:
            st.update(new_state(), valid=True)
        if flags & SEQ_NEEDS_INCREMENTAL_STATE and not st["valid"]:
            tr.errors.append("packet %d needs incremental state on sequence "
                             "%d, which never cleared it" % (tr.packets, seq))
            continue
        if PKT_DEFAULTS in p:
            d = message(one(p, PKT_DEFAULTS))
            st["clock"] = one(d, 58)
            if 11 in d:
                st["track"] = one(message(one(d, 11)), 11)
        if PKT_INTERNED in p:
            interned = message(one(p, PKT_INTERNED))
            for key, table in ((1, "cats"), (2, "names")):
                for e in interned.get(key, []):
                    e = message(e)
                    st[table][one(e, 1)] = text(one(e, 2, b""))
        if PKT_CLOCK_SNAPSHOT in p:
            cs = message(one(p, PKT_CLOCK_SNAPSHOT))
            clocks = {}
            for c in cs.get(1, []):
                c = message(c)
                cid, value = one(c, 1), one(c, 2)
                clocks[cid] = value
                if cid >= 64:  # sequence-scoped
                    st["clocks"][cid] = {"incremental": bool(one(c, 3, 0)),
                                         "last": value, "ref": value}
            for cid, c in st["clocks"].items():
                if BUILTIN_CLOCK_MONOTONIC in clocks and cid in clocks:
                    c["mono"] = clocks[BUILTIN_CLOCK_MONOTONIC]
            tr.clock_snapshots.append((clocks, one(cs, 2)))
        if PKT_TRACK_DESCRIPTOR in p:
            describe(tr, message(one(p, PKT_TRACK_DESCRIPTOR)))
        if PKT_TRACK_EVENT in p:
            if PKT_TIMESTAMP not in p:
                tr.errors.append("track event without a timestamp")
                continue
            try:
                ts = monotonic(st, one(p, 58, st["clock"]),
                               one(p, PKT_TIMESTAMP), tr)
            except DecodeError as e:
                tr.errors.append(str(e))
                continue
            te = message(one(p, PKT_TRACK_EVENT))
            if 11 not in te and st["track"] is not None:
                te[11] = [st["track"]]
            events.append((ts, len(events), dict(st), te))
    # trace_processor sorts every event by timestamp; ties keep file order.
    events.sort(key=lambda e: (e[0], e[1]))
    open_slices = {}  # track uuid -> stack of slices
    for ts, _, st, te in events:
        kind = one(te, 9, 0)
        track = one(te, 11, 0)
        ann = annotations(te.get(4))
        if kind == TYPE_COUNTER:
            if track not in tr.counter_tracks:
                tr.errors.append("counter on unknown track %#x" % track)
                continue
            parent, name = tr.counter_tracks[track]
            value = (as_double(one(te, 44)) if 44 in te
                     else float(signed(one(te, 30, 0))))
            # The thread that recorded the value: its sequence's (traced
            # writes it there; JSON gives a counter event that tid).
            tid = tr.threads.get(st["track"], (None, None))[1]
            tr.counters.append({"pid": tr.processes.get(parent), "name": name,
                                "tid": tid, "ts": ts, "value": value})
            continue
        if track in tr.global_tracks and kind == TYPE_INSTANT and 23 in te:
            # A trace cut short says so on a track of its own.
            tr.instants.append({"pid": None, "tid": None, "cat": "",
                                "name": text(one(te, 23)), "ts": ts,
                                "args": ann,
                                "track": tr.global_tracks[track]})
            continue
        if track not in tr.threads:
            tr.errors.append("event on unknown track %#x" % track)
            continue
        pid, tid = tr.threads[track]
        stack = open_slices.setdefault(track, [])
        if kind == TYPE_SLICE_END:
            if not stack:
                tr.errors.append("SLICE_END with no open slice on %d/%d at "
                                 "%d" % (pid, tid, ts))
                continue
            s = stack.pop()
            s["dur"] = ts - s["ts"]
            s["args"].update(ann)
            continue
        name = None
        if 10 in te:
            name = st["names"].get(one(te, 10))
            if name is None:
                tr.errors.append("unknown name iid %d" % one(te, 10))
                continue
        elif 23 in te:
            name = text(one(te, 23))
        cats = [st["cats"].get(i) for i in te.get(3, [])]
        if None in cats:
            tr.errors.append("unknown category iid in %r" % te.get(3))
            continue
        ev = {"pid": pid, "tid": tid, "cat": ",".join(cats), "name": name,
              "ts": ts, "args": ann}
        if kind == TYPE_SLICE_BEGIN:
            ev["dur"] = None
            stack.append(ev)
            tr.slices.append(ev)
        elif kind == TYPE_INSTANT:
            tr.instants.append(ev)
        else:
            tr.errors.append("track event of type %r" % kind)
    return tr


def new_state():
    """A packet sequence's incremental state."""
    return {"valid": False, "names": {}, "cats": {}, "clock": None,
            "track": None, "clocks": {}}


def monotonic(st, clock, ts, tr):
    """A packet timestamp in CLOCK_MONOTONIC ns: in that clock already, in
    the trace clock (no clock id: the first snapshot made MONOTONIC the
    trace clock), or in a sequence clock declared by a snapshot on the
    sequence (incremental: a delta on its last value)."""
    if clock is None or clock == BUILTIN_CLOCK_MONOTONIC:
        tr.timestamp_clocks.add(BUILTIN_CLOCK_MONOTONIC if clock else None)
        return ts
    c = st["clocks"].get(clock)
    if c is None or "mono" not in c:
        raise DecodeError("timestamp in clock %r, never related to "
                          "CLOCK_MONOTONIC on its sequence" % clock)
    if c["incremental"]:
        ts += c["last"]
        c["last"] = ts
    tr.timestamp_clocks.add(BUILTIN_CLOCK_MONOTONIC)
    return c["mono"] + (ts - c["ref"])


def describe(tr, td):
    uuid = one(td, 1)
    if uuid is None:
        tr.errors.append("TrackDescriptor without a uuid")
        return
    parent = one(td, 5)
    if 3 in td:
        pd = message(one(td, 3))
        pid = signed(one(pd, 1))
        if tr.processes.setdefault(uuid, pid) != pid:
            tr.errors.append("process track %#x changed pid" % uuid)
        if 6 in pd:
            tr.process_names[pid] = text(one(pd, 6))
    elif 4 in td:
        th = message(one(td, 4))
        key = (signed(one(th, 1)), signed(one(th, 2)))
        if tr.threads.setdefault(uuid, key) != key:
            tr.errors.append("thread track %#x changed pid/tid" % uuid)
        if parent is not None and parent not in tr.processes:
            tr.errors.append("thread track %#x before its process" % uuid)
        if 5 in th:
            tr.thread_names[key] = text(one(th, 5))
    elif 8 in td:
        name = text(one(td, 2, b""))
        entry = (parent, name)
        if tr.counter_tracks.setdefault(uuid, entry) != entry:
            tr.errors.append("counter track %#x redefined" % uuid)
    elif 2 in td and parent is None:
        tr.global_tracks[uuid] = text(one(td, 2))
    else:
        tr.errors.append("TrackDescriptor %#x of no known kind" % uuid)


def load(path):
    with open(path, "rb") as fh:
        return decode(fh.read())

#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer harnesses:

  tests/fuzz/corpus/frame/  byte streams a client sends (fuzz_frame.c):
                            valid conversations (HELLO, SESSION_CREATE,
                            SESSION_JOIN, RING_ADD, DOORBELL, PROCESS_INFO,
                            SESSION_END) and a few broken ones;
  tests/fuzz/corpus/ring/   a producer's shared memory and a script of its
                            actions (fuzz_ring.c, whose header comment
                            describes the layout): real records of every
                            kind, wrap-around, unfinished calls, and
                            records the daemon must refuse.
  tests/fuzz/corpus/report/ trace files for `traced report`
                            (fuzz_report.c): traced's JSON in both forms,
                            cut short, other producers' layouts (B/E,
                            start order), and small Perfetto traces.
                            Not written here: perfetto-traced-*, files
                            traced's Perfetto writer produced (the
                            scripted events of test_formats.py, and a
                            two-thread program traced with
                            traced.session), checked in as they are.

Deterministic: running it again rewrites the same files.  Needs msgpack
(make's .venv has it):  .venv/bin/python tests/fuzz/make_seeds.py
"""

import json
import os
import struct
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- protocol (proto/traced_proto.h) -------------------------------------

HELLO, SESSION_CREATE, SESSION_JOIN, RING_ADD, DOORBELL = 1, 3, 5, 7, 8
SESSION_END, PROCESS_INFO = 9, 11
ARENA_MAGIC, RING_MAGIC, VERSION, SHM_HEADER = 0x54535254, 0x47525254, 1, 4096
ARENA_MIN = 64 * 1024
PY_CALL, PY_RETURN, C_CALL, C_RETURN, BEGIN, END = 1, 2, 3, 4, 5, 6
INSTANT, COUNTER, THREAD_NAME, LOST = 7, 8, 9, 10
ARGS = 11

# What fuzz_frame.c provides: the descriptors' shapes and two sessions.
FUZZ_TID = 4242
FUZZ_SLOTS = 1024
TOKEN_MINE = "00112233445566778899aabbccddeeff"
TOKEN_OTHER = "ffeeddccbbaa99887766554433221100"


def frame(type_, payload=None, flags=0, length=None):
    body = b"" if payload is None else (
        payload if isinstance(payload, bytes) else
        msgpack.packb(payload, use_bin_type=True))
    return struct.pack("<IHH", len(body) if length is None else length,
                       type_, flags) + body


def hello(role="producer", **extra):
    m = {"magic": "traced", "version": 1, "role": role, "pid": 4321,
         "ppid": 1, "argv": ["/usr/bin/python3", "prog.py"], "name": "prog",
         "clock": "monotonic", "now_ns": 123456789}
    if role == "producer":
        m["arena_size"] = ARENA_MIN
    m.update(extra)
    return frame(HELLO, m)


def ring_add(tid=FUZZ_TID, slots=FUZZ_SLOTS, name="main"):
    return frame(RING_ADD, {"tid": tid, "slots": slots, "name": name})


def frame_seeds():
    create = frame(SESSION_CREATE, {"path": "/tmp/t.json", "format": "json"})
    padded = dict(magic="traced", version=1, role="control", pid=7)
    for n in range(65536, 65000, -1):  # a payload of exactly 64 KiB
        padded["pad"] = "x" * n
        if len(msgpack.packb(padded)) == 65536:
            break
    return {
        "hello-control": hello("control"),
        "producer-joins-and-records":
            hello() + frame(SESSION_JOIN, {"token": TOKEN_MINE}) +
            ring_add() + frame(DOORBELL) +
            frame(PROCESS_INFO, {"name": "worker-1", "ppid": 4320}) +
            frame(SESSION_JOIN, {"token": "f" * 32}),
        "control-creates-and-ends":
            hello("control") + create + frame(SESSION_END, {}),
        "producer-creates-gzip-records-ends":
            hello() + frame(SESSION_CREATE, {"path": "/tmp/t.json.gz",
                                             "format": "json.gz"}) +
            ring_add() + frame(DOORBELL) + frame(SESSION_END, {}),
        "producer-creates-perfetto-records-ends":
            hello() + frame(SESSION_CREATE, {"path": "/tmp/t.pftrace",
                                             "format": "perfetto"}) +
            ring_add(name="w\u00e9") + frame(DOORBELL) +
            frame(PROCESS_INFO, {"name": "renamed"}) + frame(SESSION_END, {}),
        "create-without-format-and-bad-format":
            hello("control") + frame(SESSION_CREATE, {"path": "/tmp/x"}) +
            frame(SESSION_END, {}) +
            frame(SESSION_CREATE, {"path": "/tmp/x", "format": "xml"}),
        "producer-creates-records-ends":
            hello() + create + ring_add(name="t\u00e9") + frame(DOORBELL) +
            frame(SESSION_END, {}),
        "join-other-users-session":
            hello() + frame(SESSION_JOIN, {"token": TOKEN_OTHER}) +
            frame(SESSION_JOIN, {"token": TOKEN_MINE}) + ring_add() +
            frame(SESSION_END, {}),
        "control-joins": hello("control") +
            frame(SESSION_JOIN, {"token": TOKEN_MINE}) +
            frame(SESSION_JOIN, {"token": "xyz"}),
        "hello-argv-only": frame(HELLO, {
            "magic": "traced", "version": 1, "role": "producer", "pid": 9,
            "argv": ["/a/b/c/python"], "arena_size": ARENA_MIN}) + ring_add(),
        "hello-64k": frame(HELLO, msgpack.packb(padded)),
        "ring-add-wrong-tid": hello() + ring_add(tid=7),
        "empty-map-messages": hello("control") + frame(PROCESS_INFO, {}) +
            frame(DOORBELL) + frame(SESSION_END),
        "bad-flags": frame(HELLO, {"magic": "traced"}, flags=1),
        "oversize": struct.pack("<IHH", 65537, HELLO, 0) + b"\x80",
        "not-a-map": frame(HELLO, msgpack.packb([1, "two", {"3": 4.0}])),
        "nested": frame(HELLO, msgpack.packb(
            {"argv": [[[[[[[[1]]]]]]]], "x": {"y": {"z": b"bin"}}})),
    }


# ---- shared memory for fuzz_ring.c -----------------------------------------


def ring_header(capacity=1024, tid=77, head=0, tail=0, dropped=0, closed=0):
    h = bytearray(136)
    struct.pack_into("<IHHII", h, 0, RING_MAGIC, VERSION, SHM_HEADER,
                     capacity, tid)
    struct.pack_into("<QQII", h, 64, head, dropped, closed, 0)
    struct.pack_into("<Q", h, 128, tail)
    return bytes(h)


def arena_header(capacity=ARENA_MIN, committed=0):
    h = bytearray(136)
    struct.pack_into("<IHHI", h, 0, ARENA_MAGIC, VERSION, SHM_HEADER,
                     capacity)
    struct.pack_into("<II", h, 128, committed, 0)
    return bytes(h)


class Arena:
    def __init__(self):
        self.data = bytearray()
        self.intern("<unknown>")

    def intern(self, s):
        b = s.encode() if isinstance(s, str) else s
        at = len(self.data)
        self.data += struct.pack("<I", len(b)) + b
        self.data += b"\0" * (-len(self.data) % 4)
        return at


class Records:
    def __init__(self, capacity=1024, start=0):
        self.capacity = capacity
        self.slots = {}
        self.head = start

    def put(self, ts, id_, kind, extra=0, payload=()):
        self.slots[self.head % self.capacity] = struct.pack(
            "<QIHH", ts, id_, kind, extra)
        for i, p in enumerate(payload):
            self.slots[(self.head + 1 + i) % self.capacity] = p
        self.head += 1 + extra

    def data(self):
        n = max(self.slots) + 1 if self.slots else 0
        return b"".join(self.slots.get(i, b"\0" * 16) for i in range(n))


def op_drain():
    return b"\x00"


def op_set_head(v):
    return b"\x01" + struct.pack("<Q", v)


def op_add_head(n):
    return b"\x02" + bytes([n])


def op_write_slot(i, rec):
    return b"\x03" + struct.pack("<H", i) + rec


def op_committed(v):
    return b"\x04" + struct.pack("<I", v)


def op_close():
    return b"\x05"


def op_reattach():
    return b"\x06"


def op_dropped(v):
    return b"\x07" + struct.pack("<Q", v)


def op_add_view():
    return b"\x08"


def op_arena_get(i):
    return b"\x09" + struct.pack("<I", i)


def op_arena_poke(off, data):
    return b"\x0a" + struct.pack("<IB", off, len(data)) + data


def args(*entries):
    """An ARGS payload: (key, type, value bytes) entries."""
    out = b""
    for key, type_, value in entries:
        k = key.encode()
        out += struct.pack("<BBH", type_, len(k), len(value)) + k + value
    return out


def slots(payload):
    """A payload as 16-byte extra slots (zero-padded)."""
    padded = payload + b"\0" * (-len(payload) % 16)
    return [padded[i:i + 16] for i in range(0, len(padded), 16)]


def ring_input(records, arena, min_ts=0, rhdr=None, ahdr=None, ops=b"",
               tail=0):
    rh = rhdr or ring_header(records.capacity, head=records.head, tail=tail)
    ah = ahdr or arena_header(committed=len(arena.data))
    rd = records.data()
    return (struct.pack("<Q", min_ts) + rh + ah + struct.pack("<H", len(rd)) +
            rd + struct.pack("<H", len(arena.data)) + bytes(arena.data) + ops)


def ring_seeds():
    seeds = {}
    a = Arena()
    f, g = a.intern("f (prog.py:1)"), a.intern("g (prog.py:5)")
    ln, tick = a.intern("builtins.len"), a.intern("tick")
    depth, span = a.intern("queue depth"), a.intern("span \"x\"\n")
    tname = a.intern("worker-\u00e9")
    bad = a.intern(b"bad \xff\xfe\xc0\x80 \xed\xa0\x80 \x01\x1f")
    one = struct.pack("<dQ", 4.0, 0)
    nan = struct.pack("<dQ", float("nan"), 0)

    r = Records()
    ts = 1000
    r.put(ts, tname, THREAD_NAME)
    r.put(ts + 1, g, PY_CALL)
    for i in range(5):
        r.put(ts + 10 + 10 * i, f, PY_CALL)
        r.put(ts + 12 + 10 * i, ln, C_CALL)
        r.put(ts + 13 + 10 * i, ln, C_RETURN)
        r.put(ts + 15 + 10 * i, f, PY_RETURN)
    r.put(ts + 70, span, BEGIN)
    r.put(ts + 71, tick, INSTANT)
    r.put(ts + 72, depth, COUNTER, 1, [one])
    r.put(ts + 73, depth, COUNTER, 1, [nan])
    r.put(ts + 74, 17, LOST)
    r.put(ts + 75, span, END)
    r.put(ts + 76, bad, INSTANT)
    r.put(ts + 80, g, PY_RETURN)
    seeds["calls-of-every-kind"] = ring_input(r, a, ops=op_drain())

    # Positions near the end of the ring: the records wrap around.
    r = Records(start=1000)
    for i in range(40):
        r.put(5000 + 2 * i, f, PY_CALL)
        r.put(5001 + 2 * i, f, PY_RETURN)
    r.put(6000, depth, COUNTER, 1, [one])
    seeds["wraparound"] = ring_input(r, a, tail=1000,
                                     ops=op_drain() + op_close())

    # Calls left open: unfinished slices when the thread ends; an exit
    # that skips frames; an exit matching nothing.
    r = Records()
    r.put(100, g, PY_CALL)
    r.put(110, f, PY_CALL)
    r.put(120, ln, C_CALL)
    r.put(130, g, PY_RETURN)  # closes ln and f as unfinished
    r.put(140, tick, PY_RETURN)  # unmatched
    r.put(150, f, PY_CALL)
    seeds["unfinished-and-unmatched"] = ring_input(
        r, a, ops=op_drain() + op_dropped(5) + op_close())

    # Records the daemon must refuse: bad ids, extras, kinds; a producer
    # rewriting slots and the arena between drains.
    r = Records()
    r.put(10, len(a.data), INSTANT)  # just past committed
    r.put(11, 2, INSTANT)  # unaligned
    r.put(12, 0xfffffffc, PY_CALL)
    r.put(13, 0xfffffffc, PY_RETURN)
    r.put(14, tick, COUNTER)  # no extra slot
    r.put(15, tick, 999, 2, [b"\xff" * 16, b"\x00" * 16])  # unknown kind
    r.put(16, tick, INSTANT, 5)  # extra beyond head: resync
    ops = (op_drain() + op_write_slot(0, struct.pack("<QIHH", 20, f, 1, 0)) +
           op_add_head(3) + op_committed(0xffffffff) + op_drain() +
           op_arena_poke(0, struct.pack("<I", 5000)) + op_arena_get(0) +
           op_arena_get(f) + op_reattach() + op_add_view() + op_add_head(1) +
           op_drain() + op_set_head(1 << 40) + op_drain())
    seeds["hostile-records"] = ring_input(r, a, ops=ops)

    # A bigger ring and arena; records older than min_ts are late.
    r = Records(capacity=4096)
    for i in range(100):
        r.put(i * 100, f, PY_CALL)
        r.put(i * 100 + 50, f, PY_RETURN)
    big = ring_header(4096, head=r.head)
    seeds["big-ring-late-records"] = ring_input(
        r, a, min_ts=5000, rhdr=big,
        ahdr=arena_header(4 * ARENA_MIN, len(a.data)),
        ops=op_drain() + op_add_view() + op_drain())

    # Arguments (ARGS records, kind 11) on calls, returns, instants,
    # counters and spans, one wrapping around the ring's end; and ARGS the
    # daemon must refuse or drop.
    ra = Records(start=1000)
    ra.put(7000, len(args(("a", 0, b"'x'"))), ARGS, 1,
          slots(args(("a", 0, b"'x'"))))
    ra.put(7000, g, PY_CALL)
    big_args = args(*[("k%d" % i, 0, ("v\u00e9%d" % i).encode() * 9)
                      for i in range(12)])
    ra.put(7001, len(big_args), ARGS, len(slots(big_args)), slots(big_args))
    ra.put(7001, f, PY_CALL)
    ret = args(("return_value", 0, b"None"))
    ra.put(7002, len(ret), ARGS, len(slots(ret)), slots(ret))
    ra.put(7002, f, PY_RETURN)
    nums = args(("n", 1, struct.pack("<q", -3)), ("u", 2,
                struct.pack("<Q", 2**64 - 1)), ("d", 3,
                struct.pack("<d", float("inf"))), ("b", 4, b"\x01"))
    ra.put(7003, len(nums), ARGS, len(slots(nums)), slots(nums))
    ra.put(7003, tick, INSTANT)
    ra.put(7004, len(nums), ARGS, len(slots(nums)), slots(nums))
    ra.put(7004, depth, COUNTER, 1, [one])
    ra.put(7005, len(nums), ARGS, len(slots(nums)), slots(nums))
    ra.put(7005, span, BEGIN)
    ra.put(7006, len(ret), ARGS, len(slots(ret)), slots(ret))
    ra.put(7006, span, END)
    ra.put(7007, 17, ARGS, 1, slots(args(("a", 0, b"1"))))  # len > slots
    ra.put(7007, f, PY_CALL)
    ra.put(7008, f, PY_RETURN)
    bad_type = bytes([9]) + args(("a", 0, b"1"))[1:]
    ra.put(7009, len(bad_type), ARGS, 1, slots(bad_type))
    ra.put(7009, tick, INSTANT)
    ra.put(7010, len(ret), ARGS, len(slots(ret)), slots(ret))
    ra.put(7010, tname, THREAD_NAME)  # takes no arguments: dropped
    ra.put(7011, len(ret), ARGS, len(slots(ret)), slots(ret))  # at the end
    seeds["arguments"] = ring_input(
        ra, a, tail=1000, ops=op_drain() + op_close())

    # Headers the daemon refuses.
    seeds["bad-ring-header"] = ring_input(
        Records(), a, rhdr=ring_header(1000, head=5))
    seeds["bad-arena-header"] = ring_input(
        r, a, rhdr=big, ahdr=arena_header(100))
    return seeds


# ---- trace files (fuzz_report.c) -------------------------------------------


def x(name, ts, dur, pid=1, tid=1):
    return {"ph": "X", "cat": "python", "name": name, "pid": pid, "tid": tid,
            "ts": ts, "dur": dur}


def pb_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_int(num, v):
    return pb_varint(num << 3) + pb_varint(v)


def pb_bytes(num, data):
    data = data.encode() if isinstance(data, str) else data
    return pb_varint(num << 3 | 2) + pb_varint(len(data)) + data


def report_seeds():
    seeds = {}
    # traced's own lines (output/writer_json.c), microseconds with three
    # decimals.
    body = ",\n".join([
        '{"ph":"X","cat":"python","name":"g (p.py:5)","pid":1,"tid":1,'
        '"ts":10.250,"dur":1.000}',
        '{"ph":"X","cat":"python","name":"f (p.py:1)","pid":1,"tid":1,'
        '"ts":10.000,"dur":3.000}',
        '{"ph":"X","cat":"python","name":"f (p.py:1)","pid":1,"tid":1,'
        '"ts":9.000,"dur":5.500}',
        '{"ph":"X","cat":"c","name":"builtins.len","pid":1,"tid":2,'
        '"ts":20.000,"dur":0.125}',
        '{"ph":"X","cat":"python","name":"main (p.py:9)","pid":1,"tid":1,'
        '"ts":8.000,"dur":20.000,"args":{"unfinished":true}}',
        '{"ph":"i","s":"t","cat":"api","name":"tick","pid":1,"tid":1,'
        '"ts":12.000}',
        '{"ph":"C","cat":"api","name":"q","pid":1,"tid":1,"ts":13.000,'
        '"args":{"value":4}}',
        '{"ph":"i","s":"t","cat":"traced","name":"traced: events lost (ring '
        'full)","pid":1,"tid":2,"ts":21.000,"args":{"count":17}}',
        '{"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":'
        '"MainThread","dropped":0}}',
        '{"ph":"M","name":"process_name","pid":1,"tid":0,"args":{"name":'
        '"MainProcess","dropped":17}}',
        '{"ph":"M","name":"process_sort_index","pid":1,"tid":0,"args":'
        '{"sort_index":1}}',
        '{"ph":"M","name":"process_labels","pid":1,"tid":0,"args":{"labels":'
        '"ppid 0, traced: 17 events dropped"}}'])
    seeds["traced-object"] = ('{"traceEvents":[\n' + body +
                              "\n]}\n").encode()
    array = "[" + " " * 15 + "\n" + body
    seeds["traced-array-cut-short"] = array.encode()
    seeds["traced-array-cut-in-event"] = array[:len(array) * 2 // 3].encode()
    seeds["traced-array-finished"] = (array + "\n]\n").encode()

    names = ["evil\x1b[31m\n\"quoted\"", "caf\u00e9 \U0001d11e",
             "\ud800 lone"]
    be = [{"name": names[0], "ph": "B", "ts": 1, "pid": 3, "tid": 4,
           "args": {"nested": [1, {"a": [None, True, False, -1.5e-3]}]}},
          {"ph": "B", "name": names[1], "ts": 2.5, "pid": 3, "tid": 4},
          {"ph": "E", "ts": 3.25e0, "pid": 3, "tid": 4},
          {"ph": "B", "name": names[0], "ts": 4, "pid": 3, "tid": 4},
          {"ph": "E", "ts": 5, "pid": 3, "tid": 4},
          {"ph": "E", "ts": 6, "pid": 3, "tid": 4},
          {"ph": "E", "ts": 7, "pid": 3, "tid": 4},
          {"ph": "B", "name": "open", "ts": 8, "pid": 3, "tid": 5},
          {"ph": "b", "name": "async", "id": "0x1", "ts": 9, "pid": 3,
           "tid": 5},
          {"ph": "X", "name": "no ts", "pid": 3, "tid": 5}]
    seeds["begin-end"] = json.dumps(
        {"displayTimeUnit": "ns", "traceEvents": be,
         "otherData": {"version": "x"}}).encode()
    start = [x("f", 1, 10), x("f", 2, 6), x("g", 3, 2), x("f", 4, 1),
             x("h", 20, 1), x("f", 30, 2, tid=7), x("f", 30, 2, tid=7),
             x("partial", 25, 10)]
    seeds["start-ordered"] = json.dumps(start).encode()
    seeds["odd-json"] = (
        b"\xef\xbb\xbf  [ {\"ph\" : \"X\", \"ts\" : 1E3, \"dur\": 0.0005,"
        b" \"name\": \"\\u0041\\/\\b\\f\\t\", \"pid\": -1, \"tid\": "
        b"9223372036854775807},\r\n {\"ph\":\"X\",\"ts\":-0.5,\"dur\":1e-2,"
        b"\"name\":\"\"}, {\"ph\":\"M\",\"name\":\"process_name\","
        b"\"pid\":-1,\"args\":{\"name\":\"\\ud83d\\ude00\"}} ]")

    seeds["extreme-times"] = (
        b'[{"ph":"X","name":"a","ts":-9223372036854775.808,'
        b'"dur":9223372036854775.807},'
        b'{"ph":"X","name":"a","ts":9223372036854775.807,'
        b'"dur":9223372036854775.807},'
        b'{"ph":"B","name":"d","ts":9223372036854775.807},'
        b'{"ph":"E","ts":-9223372036854775.808}]')

    # Perfetto: a process and a thread track, interned names, nested
    # slices, an instant, a counter, an unfinished end, a lost marker.
    pkts = [pb_bytes(60, pb_int(1, 10) + pb_bytes(3, pb_int(1, 42) +
                                                  pb_bytes(6, "Main"))),
            pb_bytes(60, pb_int(1, 11) + pb_int(5, 10) +
                     pb_bytes(4, pb_int(1, 42) + pb_int(2, 43) +
                              pb_bytes(5, "T")))]
    interned = pb_bytes(12, pb_bytes(2, pb_int(1, 1) + pb_bytes(2, "f")) +
                        pb_bytes(2, pb_int(1, 2) + pb_bytes(2, "g")) +
                        pb_bytes(3, pb_int(1, 1) + pb_bytes(2, "count")))
    pkts.append(pb_int(8, 100) + pb_int(10, 1) + pb_int(13, 1) +
                pb_bytes(59, pb_bytes(11, pb_int(11, 11))) + interned +
                pb_bytes(11, pb_int(9, 1) + pb_int(10, 1)))
    pkts.append(pb_int(8, 150) + pb_int(10, 1) +
                pb_bytes(11, pb_int(9, 1) + pb_int(10, 2)))
    pkts.append(pb_int(8, 160) + pb_int(10, 1) +
                pb_bytes(11, pb_int(9, 3) + pb_bytes(23, LOST_MARKER) +
                         pb_bytes(4, pb_int(1, 1) + pb_int(3, 5))))
    pkts.append(pb_int(8, 170) + pb_int(10, 1) +
                pb_bytes(11, pb_int(9, 4) + pb_int(30, 7)))
    pkts.append(pb_int(8, 200) + pb_int(10, 1) + pb_bytes(11, pb_int(9, 2)))
    pkts.append(pb_int(8, 300) + pb_int(10, 1) +
                pb_bytes(11, pb_int(9, 2) + pb_bytes(
                    4, pb_bytes(10, "unfinished") + pb_int(2, 1))))
    pkts.append(pb_int(8, 400) + pb_int(10, 2) +
                pb_bytes(11, pb_int(9, 1) + pb_int(11, 99) +
                         pb_int(10, 5)))
    trace = b"".join(pb_bytes(1, p) for p in pkts)
    seeds["perfetto"] = trace
    seeds["perfetto-cut-short"] = trace[:len(trace) - 5]
    return seeds


LOST_MARKER = "traced: events lost (ring full)"


def write(directory, seeds):
    os.makedirs(directory, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(directory, name), "wb") as fh:
            fh.write(data)


def main():
    write(os.path.join(HERE, "corpus", "frame"), frame_seeds())
    write(os.path.join(HERE, "corpus", "ring"), ring_seeds())
    write(os.path.join(HERE, "corpus", "report"), report_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())

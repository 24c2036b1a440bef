"""One model of a trace file whatever its format (.json, .json.gz,
.pftrace), so tests can compare what the three formats hold.

JSON is parsed with exact decimals (timestamps are microseconds with three
decimals: integer nanoseconds, never rounded through a float); gzip is
decompressed with zlib; Perfetto traces are decoded by pftrace.py.
"""

import decimal
import gzip
import json
import math
import zlib

import pftrace


class Model:
    """What a trace holds, format-independent.  Slices, instants and
    counters are tuples so they compare and count as multisets."""

    def __init__(self, fmt):
        self.format = fmt
        # (pid, tid, cat, name, ts_ns, dur_ns, unfinished)
        self.slices = []
        self.slice_args = []   # the slices' other args, same order
        # (pid, tid, cat, name, ts_ns, ((key, value), ...))
        self.instants = []
        # (pid, name, ts_ns, value or None when not finite)
        self.counters = []
        # Counter events as the format writes them: JSON writes one event
        # per update, whatever its series; Perfetto one per series.
        self.counter_events = 0
        self.process_names = {}   # pid -> name
        self.thread_names = {}    # (pid, tid) -> name
        self.errors = []          # problems a viewer would report

    @property
    def events(self):
        """Non-metadata events, as the summary counts them."""
        return len(self.slices) + len(self.instants) + self.counter_events


def finite(v):
    return v if v is not None and math.isfinite(v) else None


def ns_of(us):
    """Microseconds (a Decimal with three decimals) to integer ns."""
    v = us * 1000
    assert v == v.to_integral_value(), us
    return int(v)


def from_json_events(events, fmt):
    m = Model(fmt)
    for e in events:
        ph = e.get("ph")
        if ph == "X":
            args = dict(e.get("args") or {})
            unfinished = args.pop("unfinished", False) is True
            m.slices.append((e["pid"], e["tid"], e["cat"], e["name"],
                             ns_of(e["ts"]), ns_of(e["dur"]), unfinished))
            m.slice_args.append(args)
        elif ph in ("i", "I"):
            m.instants.append((e["pid"], e["tid"], e["cat"], e["name"],
                               ns_of(e["ts"]),
                               tuple(sorted((e.get("args") or {}).items()))))
        elif ph == "C":
            # {"value": v} is a plain counter; other args are its series,
            # which a Perfetto trace holds as tracks "<name> <key>".
            args = e["args"]
            m.counter_events += 1
            series = ([(e["name"], args["value"])] if list(args) == ["value"]
                      else [(e["name"] + " " + k, v) for k, v in args.items()
                            if not isinstance(v, str)])
            for name, v in series:
                m.counters.append((e["pid"], name, ns_of(e["ts"]),
                                   None if v is None else float(v)))
        elif ph == "M":
            if e["name"] == "process_name":
                m.process_names[e["pid"]] = e["args"]["name"]
            elif e["name"] == "thread_name":
                m.thread_names[(e["pid"], e["tid"])] = e["args"]["name"]
        else:
            m.errors.append("event of phase %r" % ph)
    return m


def parse_json(text, fmt):
    data = json.loads(text, parse_float=decimal.Decimal)
    if isinstance(data, dict):
        assert list(data) == ["traceEvents"], list(data)
        data = data["traceEvents"]
    return from_json_events(data, fmt)


def from_pftrace(tr):
    m = Model("perfetto")
    m.errors = list(tr.errors)
    for s in tr.slices:
        if s["dur"] is None:
            m.errors.append("slice %r never ended" % s["name"])
            continue
        args = dict(s["args"])
        unfinished = args.pop("unfinished", False) is True
        m.slices.append((s["pid"], s["tid"], s["cat"], s["name"], s["ts"],
                         s["dur"], unfinished))
        m.slice_args.append(args)
    for i in tr.instants:
        m.instants.append((i["pid"], i["tid"], i["cat"], i["name"], i["ts"],
                           tuple(sorted(i["args"].items()))))
    for c in tr.counters:
        m.counters.append((c["pid"], c["name"], c["ts"], finite(c["value"])))
    m.counter_events = len(m.counters)
    m.process_names = dict(tr.process_names)
    m.thread_names = dict(tr.thread_names)
    if tr.clock_snapshots and tr.clock_snapshots[0][1] != \
            pftrace.BUILTIN_CLOCK_MONOTONIC:
        m.errors.append("the trace clock is not CLOCK_MONOTONIC")
    if tr.timestamp_clocks - {pftrace.BUILTIN_CLOCK_MONOTONIC}:
        m.errors.append("timestamps in clocks %r" % tr.timestamp_clocks)
    return m


def load(path):
    """The Model of a finished trace file, by its name's extension."""
    path = str(path)
    low = path.lower()
    if low.endswith(".json.gz"):
        with gzip.open(path, "rb") as fh:  # one complete member, or raises
            return parse_json(fh.read().decode("utf-8"), "json.gz")
    if low.endswith(".pftrace") or low.endswith(".perfetto-trace"):
        return from_pftrace(pftrace.load(path))
    with open(path, encoding="utf-8") as fh:
        return parse_json(fh.read(), "json")


def gunzip_prefix(data):
    """What a gzip stream cut short decompresses to (zlib, not gzip.open,
    which refuses a member without its trailer)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    return d.decompress(data)

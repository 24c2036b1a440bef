"""`traced report FILE` and `traced run --report` (issue 7, terminal report):
real traced programs through the real daemon, and the report's numbers
checked against numbers computed here from the trace file itself.

The reference (`profile` below) builds each thread's call tree from the
trace's X events and applies cProfile's rules: self time is a call's
duration minus its direct callees' durations; a function's total time and
primitive calls count only its calls with no call of the same function
above them on their thread.  Times are compared in integer nanoseconds
parsed exactly from the file's microseconds with three decimals, so they
must be equal, not close."""

import gzip
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from conftest import (TIMEOUT, TRACED_BIN, Daemon, clean_env, parse_summary,
                      pyname, run, run_traced, short_tmpdir, write_program)

LOST_NAME = "traced: events lost (ring full)"

# ---- the reference ----------------------------------------------------------


def load_exact(path):
    """The trace's events with numbers as Decimal (exact microseconds)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as fh:
        data = json.load(fh, parse_float=Decimal)
    return data["traceEvents"] if isinstance(data, dict) else data


def ns(us):
    return int((Decimal(us) * 1000).to_integral_value())


def call_trees(events):
    """{(pid, tid): [root nodes]}: each thread's X events as call trees.
    A node is [start_ns, end_ns, event, children].  Ties in start sort the
    longer call first, and for identical intervals the one later in the
    file (traced writes a caller after its callees) is the caller."""
    by_thread = {}
    for i, e in enumerate(events):
        if e.get("ph") == "X":
            s = ns(e["ts"])
            by_thread.setdefault((e["pid"], e["tid"]), []).append(
                (s, -(s + ns(e["dur"])), -i, e))
    trees = {}
    for key, lst in by_thread.items():
        lst.sort()
        roots, stack = [], []
        for s, neg_end, _, e in lst:
            node = [s, -neg_end, e, []]
            while stack and stack[-1][1] <= s and not (
                    stack[-1][0] <= s and node[1] <= stack[-1][1]):
                stack.pop()
            if stack:
                assert node[1] <= stack[-1][1], (
                    "partial overlap on %r: %r %r" % (key, stack[-1][2], e))
                stack[-1][3].append(node)
            else:
                roots.append(node)
            stack.append(node)
        trees[key] = roots
    return trees


def profile(events):
    """{pid: {name: {calls, primitive_calls, self_ns, total_ns,
    unfinished}}} by cProfile's rules."""
    out = {}

    def visit(pid, node, open_names):
        s, e, ev, children = node
        name = ev["name"]
        f = out.setdefault(pid, {}).setdefault(name, dict(
            calls=0, primitive_calls=0, self_ns=0, total_ns=0, unfinished=0))
        f["calls"] += 1
        f["self_ns"] += (e - s) - sum(c[1] - c[0] for c in children)
        if name not in open_names:
            f["primitive_calls"] += 1
            f["total_ns"] += e - s
        if (ev.get("args") or {}).get("unfinished"):
            f["unfinished"] += 1
        open_names[name] = open_names.get(name, 0) + 1
        for c in children:
            visit(pid, c, open_names)
        open_names[name] -= 1
        if not open_names[name]:
            del open_names[name]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    for (pid, _), roots in call_trees(events).items():
        for r in roots:
            visit(pid, r, {})
    return out


def overall(prof):
    out = {}
    for funcs in prof.values():
        for name, f in funcs.items():
            o = out.setdefault(name, dict.fromkeys(f, 0))
            for k, v in f.items():
                o[k] += v
    return out


def header_counts(events):
    """processes, threads, events, dropped as the report must count them."""
    pids = {e["pid"] for e in events if "pid" in e}
    threads = {(e["pid"], e["tid"]) for e in events
               if e.get("ph") != "M" or e.get("name") == "thread_name"}
    n = sum(1 for e in events if e.get("ph") != "M")
    meta = {e["pid"]: e["args"].get("dropped", 0) for e in events
            if e.get("ph") == "M" and e.get("name") == "process_name"}
    lost = {}
    for e in events:
        if e.get("ph") == "i" and e.get("name") == LOST_NAME:
            lost[e["pid"]] = lost.get(e["pid"], 0) + e["args"]["count"]
    dropped = sum(max(meta.get(p, 0), lost.get(p, 0)) for p in pids)
    return dict(processes=len(pids), threads=len(threads), events=n,
                dropped=dropped)


# ---- running the report -----------------------------------------------------


def report(*args, cwd, input=b""):
    return run([TRACED_BIN, "report"] + [str(a) for a in args],
               env=clean_env(), cwd=cwd, input=input)


def report_json(path, *args, cwd):
    r = report("--json", *args, path, cwd=cwd)
    assert r.returncode == 0, r.describe()
    assert r.stderr == b"", r.describe()
    return json.loads(r.stdout)


def by_name(functions):
    out = {}
    for f in functions:
        f = dict(f)
        name = f.pop("name")
        assert name not in out, "function %r listed twice" % name
        out[name] = f
    return out


def check_against_trace(rep, events):
    """Every number of the JSON report equals the trace's."""
    prof = profile(events)
    got = {p["pid"]: by_name(p["functions"]) for p in rep["process_reports"]}
    assert set(got) == {e["pid"] for e in events if "pid" in e}
    for pid in got:
        want = prof.get(pid, {})
        assert set(got[pid]) == set(want), (
            "pid %d: functions differ: only in report %r, only in trace %r" %
            (pid, sorted(set(got[pid]) - set(want))[:5],
             sorted(set(want) - set(got[pid]))[:5]))
        for name, f in want.items():
            assert got[pid][name] == f, (pid, name, got[pid][name], f)
    assert by_name(rep["overall"]) == overall(prof)
    counts = header_counts(events)
    for k, v in counts.items():
        assert rep[k] == v, (k, rep[k], v)
    assert rep["misnested"] == 0 and rep["skipped"] == 0
    unfinished = sum(1 for e in events if e.get("ph") == "X" and
                     (e.get("args") or {}).get("unfinished"))
    assert rep["unfinished"] == unfinished
    starts = [ns(e["ts"]) for e in events if e.get("ph") != "M"]
    ends = [ns(e["ts"]) + ns(e.get("dur", 0)) for e in events
            if e.get("ph") != "M"]
    assert rep["start_ns"] == min(starts) and rep["end_ns"] == max(ends)
    assert rep["duration_ns"] == max(ends) - min(starts)
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    assert {p["pid"]: p["name"] for p in rep["process_reports"]} == \
        {pid: names.get(pid) for pid in got}


# ---- the programs -------------------------------------------------------------

MP_PROGRAM = """
    import multiprocessing
    import sys


    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)


    def leaf(i):
        return i


    def work(n):
        total = 0
        for i in range(10):
            total += leaf(i)
        return fib(n) + total


    def main():
        for i in range(100):
            leaf(i)
        ctx = multiprocessing.get_context(sys.argv[1])
        with ctx.Pool(2) as pool:
            print(pool.map(work, [10, 11, 12, 13], chunksize=1), flush=True)
        print(fib(15), flush=True)


    if __name__ == "__main__":
        main()
"""

# fib(n) makes 2 * F(n + 1) - 1 calls.
FIB_CALLS = {10: 177, 11: 287, 12: 465, 13: 753, 15: 1973}


@pytest.fixture(scope="module")
def mp_traces():
    """The multi-process program traced with fork and with spawn workers
    (one daemon for the module: the traces are read by several tests)."""
    d = Daemon(short_tmpdir())
    d.start()
    base = short_tmpdir()
    out = {}
    try:
        for method in ("fork", "spawn"):
            tmp = base / method
            tmp.mkdir()
            t = run_traced(d, MP_PROGRAM, tmp, args=[method])
            assert t.returncode == 0, t.result.describe()
            out[method] = t
        yield out
    finally:
        d.stop()
        shutil.rmtree(d.dir, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_report_numbers_equal_the_trace(mp_traces, method):
    t = mp_traces[method]
    events = load_exact(t.output)
    rep = report_json(t.output, cwd=t.output.parent)
    check_against_trace(rep, events)
    # What the program is known to do.
    fib, leaf, work = (pyname(t.script, f) for f in ("fib", "leaf", "work"))
    total = by_name(rep["overall"])
    assert total[fib]["calls"] == sum(FIB_CALLS.values())
    assert total[fib]["primitive_calls"] == 5
    assert total[leaf]["calls"] == 100 + 4 * 10
    assert total[leaf]["primitive_calls"] == 140
    assert total[work]["calls"] == 4
    assert total[fib]["self_ns"] == total[fib]["total_ns"] > 0
    assert rep["cut_short"] is False
    assert rep["format"] == "json" and rep["compressed"] is False
    procs = rep["process_reports"]
    worker = "ForkPoolWorker" if method == "fork" else "SpawnPoolWorker"
    assert procs[0]["name"] == "MainProcess"
    # The pool's workers (a spawn worker that the pool terminates before
    # it finished starting keeps its script's name) and, with spawn,
    # multiprocessing's resource tracker: every Python process is traced.
    workers = [p for p in procs if p["name"].startswith(worker)]
    assert 1 <= len(workers) <= 2
    assert {p["name"] for p in workers} <= {worker + "-1", worker + "-2"}
    # Main, the workers that ran (under valgrind the pool may terminate an
    # idle one before its first event), and with spawn the tracker.
    assert rep["processes"] == len(procs) >= 1 + len(workers)
    main = by_name(procs[0]["functions"])
    assert main[fib]["calls"] == FIB_CALLS[15]
    assert main[fib]["primitive_calls"] == 1
    assert main[leaf]["calls"] == 100
    # The workers made the other fib calls, one outermost call per task.
    in_workers = [by_name(p["functions"]) for p in procs[1:]]
    assert sum(w.get(fib, {}).get("calls", 0) for w in in_workers) == \
        sum(FIB_CALLS[n] for n in (10, 11, 12, 13))
    assert sum(w.get(work, {}).get("calls", 0) for w in in_workers) == 4
    # The summary `traced run` printed counts the same events.
    summary = parse_summary(t.stderr.decode().strip().splitlines()[-1])
    assert rep["events"] == summary["event"]
    assert rep["processes"] == summary["process"]


ROW = re.compile(r"^\s+(\d+)(?:/(\d+))?\s+(-?\d+\.\d{3})\s+(-?\d+\.\d{3})\s+"
                 r"(-?\d+\.\d{3})\s+(-?\d+\.\d{3})  (.*)$")


def ms(ns_):
    """The text report's milliseconds: three decimals, to the nearest
    microsecond."""
    us = (abs(ns_) + 500) // 1000
    return "%s%d.%03d" % ("-" if ns_ < 0 else "", us // 1000, us % 1000)


def parse_tables(text):
    """{section title: [(sort title, [rows])]} from the text report; a row
    is (calls, primitive, tottime, percall, cumtime, percall, name)."""
    sections, title, tables = {}, None, None
    for line in text.splitlines():
        if line.startswith("== "):
            title = line[3:]
            tables = sections.setdefault(title, [])
        elif title and "functions by " in line or \
                title and re.match(r"\s+\d+ functions? by", line):
            tables.append((line.split(" by ", 1)[1], []))
        elif title and tables:
            m = ROW.match(line)
            if m:
                calls, prim = int(m.group(1)), m.group(2)
                tables[-1][1].append((calls, int(prim) if prim else calls) +
                                     m.group(3, 4, 5, 6, 7))
    return sections


def test_report_text_tables(mp_traces):
    t = mp_traces["fork"]
    r = report(t.output, cwd=t.output.parent)
    assert r.returncode == 0 and r.stderr == b"", r.describe()
    text = r.stdout.decode()
    rep = report_json(t.output, cwd=t.output.parent)
    lines = text.splitlines()
    assert lines[0] == "traced report: %s (Chrome JSON)" % t.output
    assert ("%s ms, first event to last; %d processes, %d threads, %d "
            "events, 0 dropped" %
            (ms(rep["duration_ns"]), rep["processes"], rep["threads"],
             rep["events"])) in text
    header = ("  ncalls     tottime     percall     cumtime     percall  "
              "function")
    assert text.count(header) == 2 * (1 + 3)  # by total and by self
    sections = parse_tables(text)
    main_pid = rep["process_reports"][0]["pid"]
    keys = list(sections)
    assert keys[0] == "all 3 processes" and len(keys) == 4
    for key, p in zip(keys[1:], rep["process_reports"]):
        assert key.startswith("%s (pid %d): " % (p["name"], p["pid"])), key
    fib = pyname(t.script, "fib")
    for title, tables in sections.items():
        assert [k for k, _ in tables] == ["total time (cumtime)",
                                          "self time (tottime)"]
        if title.startswith("all"):
            funcs = by_name(rep["overall"])
        else:
            pid = int(re.search(r"\(pid (\d+)\)", title).group(1))
            funcs = by_name(next(p for p in rep["process_reports"]
                                 if p["pid"] == pid)["functions"])
        for key, rows in tables:
            assert 0 < len(rows) <= 20
            assert len(rows) == min(20, len(funcs))
            sort_key = "total_ns" if key.startswith("total") else "self_ns"
            values = [funcs[row[6].split("  [")[0]][sort_key] for row in rows]
            assert values == sorted(values, reverse=True)
            for calls, prim, tot, pc1, cum, pc2, name in rows:
                f = funcs[name.split("  [")[0]]
                assert (calls, prim) == (f["calls"], f["primitive_calls"])
                assert tot == ms(f["self_ns"])
                assert cum == ms(f["total_ns"])
                assert pc1 == ms(f["self_ns"] // f["calls"])
                assert pc2 == ms(f["total_ns"] // f["primitive_calls"])
    # fib is recursive: "calls/primitive" in its rows (all rows shown).
    r = report("--top", "0", "--pid", main_pid, t.output,
               cwd=t.output.parent)
    sections = parse_tables(r.stdout.decode())
    assert len(sections) == 1
    tables = list(sections.values())[0]
    main_funcs = by_name(rep["process_reports"][0]["functions"])
    assert [len(rows) for _, rows in tables] == [len(main_funcs)] * 2
    fib_rows = [row for _, rows in tables for row in rows if row[6] == fib]
    assert [row[:2] for row in fib_rows] == [(FIB_CALLS[15], 1)] * 2
    assert "%d/1 " % FIB_CALLS[15] in r.stdout.decode()


def test_report_options(mp_traces):
    t = mp_traces["fork"]
    cwd = t.output.parent
    full = report_json(t.output, cwd=cwd)
    pid = full["process_reports"][1]["pid"]
    one = report_json(t.output, "--pid", pid, cwd=cwd)
    assert [p["pid"] for p in one["process_reports"]] == [pid]
    assert one["overall"] == full["process_reports"][1]["functions"]
    top = report_json(t.output, "--top", 3, "--sort", "calls", cwd=cwd)
    calls = [f["calls"] for f in top["overall"]]
    assert len(calls) == 3 and calls == sorted(calls, reverse=True)
    assert calls[0] == max(f["calls"] for f in full["overall"])
    assert top["sort"] == "calls" and top["top"] == 3
    by_self = report_json(t.output, "--sort", "self", cwd=cwd)
    selfs = [f["self_ns"] for f in by_self["overall"]]
    assert selfs == sorted(selfs, reverse=True)
    assert len(by_self["overall"]) == len(full["overall"])
    r = report("--sort", "calls", "--top", "5", t.output, cwd=cwd)
    assert r.returncode == 0
    sections = parse_tables(r.stdout.decode())
    for tables in sections.values():
        assert [k for k, _ in tables] == ["calls"]
        assert len(tables[0][1]) == 5
    # Standard input.
    r = report("--json", "-", cwd=cwd, input=t.output.read_bytes())
    assert r.returncode == 0, r.describe()
    piped = json.loads(r.stdout)
    assert piped["overall"] == full["overall"] and piped["file"] == "-"


def test_report_gzip(mp_traces, tmp_path):
    t = mp_traces["fork"]
    gz = tmp_path / "trace.json.gz"
    gz.write_bytes(gzip.compress(t.output.read_bytes()))
    plain = report_json(t.output, cwd=tmp_path)
    packed = report_json(gz, cwd=tmp_path)
    assert packed["compressed"] is True and plain["compressed"] is False
    for k in ("file", "compressed"):
        del packed[k], plain[k]
    assert packed == plain
    r = report(gz, cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[0] == \
        "traced report: %s (gzip-compressed Chrome JSON)" % gz
    # Cut short inside the compressed stream: reported as far as it goes.
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes(gz.read_bytes()[:gz.stat().st_size // 2])
    rep = report_json(cut, cwd=tmp_path)
    assert rep["cut_short"] is True and 0 < rep["events"] < plain["events"]


# ---- other producers' layouts of the same calls ----------------------------


def ordered_calls(events):
    """Per thread, each call's begin and end in time order (a depth-first
    walk of its call tree): [(pid, tid, "B"/"E", ts_ns, event)]."""
    out = []

    def walk(key, node):
        s, e, ev, children = node
        out.append((key[0], key[1], "B", s, ev))
        for c in children:
            walk(key, c)
        out.append((key[0], key[1], "E", e, ev))

    for key, roots in call_trees(events).items():
        for r in roots:
            walk(key, r)
    return out


def us(ns_):
    return "%d.%03d" % divmod(ns_, 1000)


def test_report_start_ordered_and_begin_end_json(mp_traces, tmp_path):
    """Chrome and VizTracer-style files: the same calls as X events sorted
    by start (callers before callees), and as B/E pairs, give the same
    report as traced's own file."""
    t = mp_traces["fork"]
    events = load_exact(t.output)
    want = report_json(t.output, cwd=tmp_path)
    others = [e for e in events if e.get("ph") != "X"]
    seq = ordered_calls(events)
    begins = [(pid, tid, ts, ev) for pid, tid, k, ts, ev in seq if k == "B"]
    x_sorted = [ev for _, _, _, ev in begins]
    be = []
    for pid, tid, k, ts, ev in seq:
        e = {"ph": k, "pid": pid, "tid": tid, "ts": Decimal(us(ts))}
        if k == "B":
            e["name"] = ev["name"]
        elif (ev.get("args") or {}).get("unfinished"):
            e["args"] = {"unfinished": True}
        be.append(e)

    def dump(name, evs):
        path = tmp_path / name
        path.write_text(json.dumps(
            {"traceEvents": evs, "displayTimeUnit": "ms"},
            default=lambda d: json.loads(str(d))))
        return path

    for name, evs in (("sorted.json", x_sorted + others),
                      ("begin_end.json", be + others)):
        got = report_json(dump(name, evs), cwd=tmp_path)
        for k in ("file",):
            del got[k]
        w = dict(want)
        del w["file"]
        assert got == w, name


# ---- Perfetto protobuf ---------------------------------------------------------


def inside_a_packet(data, fraction):
    """An offset in the middle of the Trace.packet that holds
    len(data) * fraction: a cut there always leaves a partial packet (a cut
    at a fixed fraction may land between two)."""
    target, pos = int(len(data) * fraction), 0
    while pos < len(data):
        assert data[pos] == 0x0a  # field 1, length-delimited
        n, shift, i = 0, 0, pos + 1
        while True:
            b = data[i]
            n |= (b & 0x7f) << shift
            shift += 7
            i += 1
            if b < 0x80:
                break
        if i + n > target:
            return i + max(1, n // 2)
        pos = i + n
    raise AssertionError("no packet at %d of %d bytes" % (target, len(data)))


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v & ((1 << 64) - 1))


def field_bytes(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def packet(*fields):
    return field_bytes(1, b"".join(fields))


def to_perfetto(events):
    """A Perfetto trace of a traced JSON trace, encoded by hand per
    Perfetto's protos (field numbers in report/pftrace_read.h): a process
    track and a thread track per process and thread (with their names),
    each thread's calls as SLICE_BEGIN/SLICE_END on its own sequence with
    interned names, instants and counters; unfinished calls carry a
    debug annotation `unfinished: true` on their end, lost markers a
    `count`."""
    out = bytearray()
    pnames = {e["pid"]: e["args"]["name"] for e in events
              if e.get("ph") == "M" and e.get("name") == "process_name"}
    tnames = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
              if e.get("ph") == "M" and e.get("name") == "thread_name"}
    threads = sorted({(e["pid"], e["tid"]) for e in events
                      if e.get("ph") != "M"} | set(tnames))
    # Process tracks in the JSON's process_sort_index order: a Perfetto
    # trace has no sort index, and the report then lists processes in the
    # order they appear.
    order = {e["pid"]: e["args"]["sort_index"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_sort_index"}
    pids = {p for p, _ in threads} | set(pnames)
    for pid in sorted(pids, key=lambda p: (order.get(p, 1 << 62), p)):
        proc = field_varint(1, pid)
        if pid in pnames:
            proc += field_bytes(6, pnames[pid])
        out += packet(field_bytes(60, field_varint(1, 1 << 40 | pid) +
                                  field_bytes(3, proc)))
    uuid = {}
    for i, (pid, tid) in enumerate(threads):
        uuid[(pid, tid)] = 1000 + i
        thr = field_varint(1, pid) + field_varint(2, tid)
        if (pid, tid) in tnames:
            thr += field_bytes(5, tnames[(pid, tid)])
        out += packet(field_bytes(60, field_varint(1, 1000 + i) +
                                  field_varint(5, 1 << 40 | pid) +
                                  field_bytes(4, thr)))
    # Calls in time order per thread; instants and counters after them on
    # their thread (their place among the calls does not matter).
    timeline = {}
    for pid, tid, k, ts, ev in ordered_calls(events):
        timeline.setdefault((pid, tid), []).append((k, ts, ev))
    for e in events:
        if e.get("ph") in ("i", "C"):
            timeline.setdefault((e["pid"], e["tid"]), []).append(
                (e["ph"], ns(e["ts"]), e))
    for seq, (key, items) in enumerate(sorted(timeline.items()), start=1):
        iids = {}
        first = True
        for k, ts, ev in items:
            te = field_varint(11, uuid[key])
            interned = b""
            if k in ("B", "i"):
                name = ev["name"]
                if name not in iids:
                    iids[name] = len(iids) + 1
                    interned = field_bytes(12, field_bytes(
                        2, field_varint(1, iids[name]) +
                        field_bytes(2, name)))
                te += field_varint(10, iids[name])
            te += field_varint(9, {"B": 1, "E": 2, "i": 3, "C": 4}[k])
            if k == "E" and (ev.get("args") or {}).get("unfinished"):
                te += field_bytes(4, field_bytes(10, "unfinished") +
                                  field_varint(2, 1))
            if k == "i" and ev["name"] == LOST_NAME:
                te += field_bytes(4, field_bytes(10, "count") +
                                  field_varint(3, ev["args"]["count"]))
            if k == "C":
                te += field_varint(30, int(ev["args"]["value"] or 0))
            fields = [field_varint(8, ts), field_varint(10, seq)]
            if first:
                fields.append(field_varint(13, 1))
                first = False
            out += packet(*fields, interned, field_bytes(11, te))
    return bytes(out)


def test_report_perfetto_trace(mp_traces, tmp_path):
    t = mp_traces["fork"]
    events = load_exact(t.output)
    want = report_json(t.output, cwd=tmp_path)
    pf = tmp_path / "trace.pftrace"
    pf.write_bytes(to_perfetto(events))
    got = report_json(pf, cwd=tmp_path)
    assert got["format"] == "perfetto"
    # traced's Perfetto traces carry losses as lost markers only; this
    # run lost nothing, so the numbers agree.
    assert want["dropped"] == 0
    for k in ("file", "format"):
        del got[k], want[k]
    assert got == want
    r = report(pf, cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.decode().splitlines()[0] == \
        "traced report: %s (Perfetto protobuf)" % pf
    # A Perfetto trace cut short in the middle of a packet.
    cut = tmp_path / "cut.pftrace"
    cut.write_bytes(pf.read_bytes()[:inside_a_packet(pf.read_bytes(), 2 / 3)])
    rep = report_json(cut, cwd=tmp_path)
    assert rep["cut_short"] is True and 0 < rep["events"] < want["events"]


# ---- traced run --report --------------------------------------------------------

RUN_PROGRAM = """
    import sys


    def leaf(i):
        # Enough work that leaf and outer head both tables of the report.
        x = 0
        for j in range(20000):
            x += j
        return x + i


    def outer():
        for i in range(100):
            leaf(i)


    outer()
    print("hello from the program")
    sys.stdout.flush()
    sys.exit(3)
"""


def test_run_report_prints_to_stderr(daemon, tmp_path):
    script = write_program(tmp_path, RUN_PROGRAM)
    plain = run([sys.executable, script], env=clean_env(), cwd=tmp_path)
    assert plain.returncode == 3
    out = tmp_path / "trace.json"
    r = run([TRACED_BIN, "run", "--report", "-o", out, "--", sys.executable,
             script], env=daemon.env, cwd=tmp_path)
    # The program's stdout and exit status are untouched.
    assert r.returncode == 3, r.describe()
    assert r.stdout == plain.stdout == b"hello from the program\n"
    err = r.stderr.decode()
    lines = err.splitlines()
    assert lines[0].startswith("traced: 1 processes, 1 threads, "), err
    assert lines[1] == "traced report: %s (Chrome JSON)" % out
    # The report on stderr is `traced report FILE`'s, made once the file
    # was complete.
    again = report(out, cwd=tmp_path)
    assert again.returncode == 0
    assert "\n".join(lines[1:]) + "\n" == again.stdout.decode()
    rep = report_json(out, cwd=tmp_path)
    check_against_trace(rep, load_exact(out))
    leaf = by_name(rep["overall"])[pyname(script, "leaf")]
    assert leaf["calls"] == leaf["primitive_calls"] == 100
    sections = parse_tables(err)
    assert list(sections) == ["MainProcess (pid %d): 1 thread, %d events, "
                              "0 dropped" % (rep["process_reports"][0]["pid"],
                                             rep["events"])]
    rows = [row for _, rows in sections[list(sections)[0]] for row in rows
            if row[6] == pyname(script, "leaf")]
    assert len(rows) == 2 and all(row[:2] == (100, 100) for row in rows)


def test_run_without_report_prints_no_report(daemon, tmp_path):
    script = write_program(tmp_path, RUN_PROGRAM)
    r = run([TRACED_BIN, "run", "-o", tmp_path / "t.json", "--",
             sys.executable, script], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 3
    assert len(r.stderr.decode().splitlines()) == 1


# ---- a file cut short by a daemon that died ------------------------------------

KILL_PROGRAM = """
    import os
    import time

    HERE = os.path.dirname(os.path.abspath(__file__))


    def f(i):
        return i


    def g():
        for i in range(20):
            f(i)


    def main():
        for _ in range(200):
            g()
        open(os.path.join(HERE, "ready"), "w").close()
        while not os.path.exists(os.path.join(HERE, "killed")):
            time.sleep(0.01)
        for _ in range(200):
            g()
        print("done")


    main()
"""

ARRAY_HEAD = b"[" + b" " * 15 + b"\n"


def test_report_of_a_trace_cut_short(tmp_path):
    """The daemon is SIGKILLed mid-run: the file it leaves is the array
    form cut short.  The report says so and counts every complete event in
    it; a copy cut inside an event counts the events before it."""
    d = Daemon(short_tmpdir())
    d.start()
    try:
        script = write_program(tmp_path, KILL_PROGRAM)
        out = tmp_path / "trace.json"
        proc = subprocess.Popen(
            [TRACED_BIN, "run", "-o", str(out), "--", sys.executable,
             str(script)], env=d.env, cwd=str(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        f_name = pyname(script, "f")
        deadline = time.monotonic() + TIMEOUT
        # Wait until the daemon has written all of the first 4000 f calls.
        while not ((tmp_path / "ready").exists() and out.exists() and
                   out.read_bytes().count(f_name.encode()) >= 4000):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the calls never arrived"
            time.sleep(0.05)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        (tmp_path / "killed").touch()
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
        assert proc.returncode == 0 and stdout == b"done\n", stderr
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        shutil.rmtree(d.dir, ignore_errors=True)
    data = out.read_bytes()
    assert data.startswith(ARRAY_HEAD)
    events = json.loads(data.rstrip().rstrip(b",") + b"]",
                        parse_float=Decimal)
    rep = report_json(out, cwd=tmp_path)
    assert rep["cut_short"] is True
    check_against_trace(rep, events)
    assert by_name(rep["overall"])[f_name]["calls"] >= 4000
    text = report(out, cwd=tmp_path).stdout.decode()
    assert text.splitlines()[0] == \
        "traced report: %s (Chrome JSON, cut short)" % out
    # Cut again in the middle of an event line.
    lines = data.split(b"\n")
    keep = len(lines) // 2
    cut = tmp_path / "cut.json"
    cut.write_bytes(b"\n".join(lines[:keep]) + b"\n" + lines[keep][:25])
    before = json.loads(b"\n".join(lines[:keep]).rstrip().rstrip(b",") + b"]",
                        parse_float=Decimal)
    rep = report_json(cut, cwd=tmp_path)
    assert rep["cut_short"] is True
    check_against_trace(rep, before)


# ---- errors ----------------------------------------------------------------------


def test_report_errors(tmp_path):
    usage = b"usage: traced report"
    r = report(cwd=tmp_path)
    assert r.returncode == 2 and b"no trace file given" in r.stderr
    assert usage in r.stderr and r.stdout == b""
    r = report("--top", "x", "t.json", cwd=tmp_path)
    assert r.returncode == 2 and b"--top: 'x' is not a count" in r.stderr
    r = report("--sort", "speed", "t.json", cwd=tmp_path)
    assert r.returncode == 2 and b"'speed' is not total, self" in r.stderr
    r = report("--frobnicate", "t.json", cwd=tmp_path)
    assert r.returncode == 2 and b"bad option '--frobnicate'" in r.stderr
    r = report("--top", cwd=tmp_path)
    assert r.returncode == 2 and b"option '--top' needs a value" in r.stderr
    r = report("a.json", "b.json", cwd=tmp_path)
    assert r.returncode == 2 and usage in r.stderr
    r = report("--help", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(usage)

    def fails(name, content, message):
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        r = report(path, cwd=tmp_path)
        assert r.returncode == 1, r.describe()
        assert r.stdout == b""
        assert r.stderr.decode() == "traced report: %s: %s\n" % (path,
                                                                 message)

    fails("missing.json", None, "No such file or directory")
    fails("empty.json", b"", "the file is empty")
    fails("text.txt", b"hello\n",
          "not a trace: expected Chrome Trace Event JSON ('{' or '['), "
          "gzip-compressed JSON or a Perfetto protobuf trace; the file "
          "starts with byte 0x68")
    fails("other.json", b'{"version": 1}',
          "line 1, column 14: not a trace: the object has no traceEvents "
          "array")
    fails("garbage.json", b'[{"ph":"X","ts":1,"dur":2,"name":"a"},\n'
          b'{"ph":"X",,}]',
          "line 2, column 11: expected a string key in an event")
    r = report(tmp_path, cwd=tmp_path)
    assert r.returncode == 1 and b"Is a directory" in r.stderr
    # A pid the trace does not have.
    path = tmp_path / "one.json"
    path.write_bytes(b'[{"ph":"X","pid":1,"tid":1,"ts":1,"dur":2,'
                     b'"name":"a"}]')
    r = report("--pid", "2", path, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.decode() == \
        "traced report: %s: no process with pid 2\n" % path


def test_traced_help_mentions_report(tmp_path):
    r = run([TRACED_BIN, "--help"], env=clean_env(), cwd=tmp_path)
    assert r.returncode == 0
    assert b"  report [--sort KEY] [--top N] [--pid PID] [--json] FILE" in \
        r.stdout
    r = run([TRACED_BIN, "run", "--help"], env=clean_env(), cwd=tmp_path)
    assert b"--report" in r.stdout

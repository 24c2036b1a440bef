"""Load and loss accounting (issue 4).

* 32 processes x 8 threads, all in one session of one `traced run`, each
  thread emitting a known sequence, through the C API
  (tests/native/stress.c) and through Python calls: per process and
  thread, every event emitted is written or counted as dropped, the order
  within each thread is preserved, and with default sizes nothing is
  dropped at this load.
* With a tiny ring and no full-ring wait, the Python API reports the drops
  after the session ends, and slices written + events dropped account for
  every call exactly.
"""

import collections
import os
import re
import sys

import pytest

from conftest import (REPO, TRACED_BIN, call_forest, contains, end_ns,
                      load_trace, parse_summary, pyname, run, start_ns,
                      summary_line, thread_names, write_program)
from mp_helpers import process_meta

TRACED_STRESS_NATIVE = os.environ.get("TRACED_STRESS_NATIVE") or str(
    REPO / "build/tests/stress_native")

PROCESSES = 32
THREADS = 8  # tests/native/stress.c's kThreads, and the Python program's
NATIVE_SPANS = 2000  # per native thread, plus its enclosing span
NATIVE_BUSY = 2000  # busy-loop iterations inside each native span
PY_CALLS = 1000  # per Python thread: one call of each generated function

# Generous: the whole load (a few seconds normally) runs tens of times
# slower with the daemon under valgrind.
STRESS_TIMEOUT = 600

# Starts every child at once, waits for all, then reports each child's pid,
# kind and exit status, followed by the child's own stdout.
DRIVER = """
    import subprocess
    import sys


    def main():
        n_native, n_py = int(sys.argv[1]), int(sys.argv[2])
        native, spans, busy, script, calls = sys.argv[3:8]
        cmds = ([("native", [native, spans, busy])] * n_native +
                [("python", [sys.executable, script, calls])] * n_py)
        children = [(kind, subprocess.Popen(cmd, stdout=subprocess.PIPE))
                    for kind, cmd in cmds]
        failed = 0
        report = []
        for kind, child in children:
            out, _ = child.communicate()
            failed |= child.returncode != 0
            report.append("child %s %d %d\\n" % (kind, child.pid,
                                                 child.returncode))
            report.append(out.decode())
        sys.stdout.write("".join(report))
        sys.stdout.flush()
        sys.exit(1 if failed else 0)


    main()
"""


def python_child_program(calls):
    """A Python program whose 8 threads "w0".."w7" each call the `calls`
    generated functions s0 .. s<calls-1> once, thread T starting at
    s<T*calls/8> and wrapping around; it prints the same report as
    stress_native."""
    defs = "\n".join("def s%d():\n    pass\n\n" % i for i in range(calls))
    table = ",\n    ".join("s%d" % i for i in range(calls))
    return ("import os\nimport sys\nimport threading\n\nTHREADS = %d\n\n\n"
            % THREADS + defs + "\nFUNCS = [\n    " + table + ",\n]\n\n\n" + '''
def worker(index, barrier, tids):
    tids[index] = threading.get_native_id()
    barrier.wait()
    funcs = FUNCS
    n = len(funcs)
    first = index * n // THREADS
    for i in range(n):
        funcs[(first + i) % n]()


def main():
    barrier = threading.Barrier(THREADS)
    tids = [0] * THREADS
    threads = [threading.Thread(target=worker, name="w%d" % t,
                                args=(t, barrier, tids))
               for t in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = ["stress_py pid=%d" % os.getpid()]
    lines += ["thread %d tid=%d" % (t, tid) for t, tid in enumerate(tids)]
    sys.stdout.write("\\n".join(lines) + "\\n")
    sys.stdout.flush()


main()
''')


def python_function_names(script):
    """{i: trace name of s<i>} read from the generated program."""
    names = {}
    for lineno, line in enumerate(script.read_text().splitlines(), 1):
        m = re.match(r"def (s\d+)\(\):$", line)
        if m:
            names[int(m.group(1)[1:])] = "%s (%s:%d)" % (m.group(1), script,
                                                          lineno)
    return names


def parse_driver_output(stdout):
    """[(kind, pid, returncode, {thread index: tid})] from the driver."""
    children = []
    current = None
    for line in stdout.decode().splitlines():
        m = re.fullmatch(r"child (native|python) (\d+) (-?\d+)", line)
        if m:
            current = (m.group(1), int(m.group(2)), int(m.group(3)), {})
            children.append(current)
            continue
        assert current is not None, line
        m = re.fullmatch(r"stress_(?:native|py) pid=(\d+)", line)
        if m:
            assert int(m.group(1)) == current[1], line
            continue
        m = re.fullmatch(r"thread (\d+) tid=(\d+)", line)
        assert m, "unexpected driver output line %r" % line
        current[3][int(m.group(1))] = int(m.group(2))
    return children


def dropped_of(labels):
    """The drop count a process_labels string reports, 0 when it has no
    drop part; the label must be exactly 'ppid N[, traced: D events
    dropped]'."""
    m = re.fullmatch(r"ppid \d+(?:, traced: (\d+) events dropped)?", labels)
    assert m, "unexpected process_labels %r" % labels
    return int(m.group(1) or 0)


def lost_per_thread(events):
    """{(pid, tid): events the producer reported lost} from the LOST
    instants ("traced: events lost ...", args.count)."""
    out = collections.Counter()
    for e in events:
        if e.get("ph") in ("i", "I") and e.get("cat") == "traced":
            out[(e["pid"], e["tid"])] += e["args"]["count"]
    return out


def by_thread(events):
    """{(pid, tid): [events in file order]} for every non-metadata event."""
    out = collections.defaultdict(list)
    for e in events:
        if e.get("ph") != "M":
            out[(e["pid"], e["tid"])].append(e)
    return out


def unfinished(e):
    return bool((e.get("args") or {}).get("unfinished"))


def check_sequence(key, slices, expected_names):
    """The thread's slices are the expected names in order, complete, one
    after the other (each starts at or after the previous one ended)."""
    names = [e["name"] for e in slices]
    if names != expected_names:
        first = next((i for i, (a, b) in
                      enumerate(zip(names, expected_names)) if a != b),
                     min(len(names), len(expected_names)))
        pytest.fail("thread %r: %d slices, expected %d; first difference at "
                    "position %d: %r instead of %r" %
                    (key, len(names), len(expected_names), first,
                     names[first:first + 3], expected_names[first:first + 3]))
    bad = [e for e in slices if unfinished(e)]
    assert not bad, "thread %r has unfinished slices: %r" % (key, bad[:3])
    for a, b in zip(slices, slices[1:]):
        assert start_ns(a) <= start_ns(b) and end_ns(a) <= start_ns(b), (
            "thread %r: order not preserved:\n  %r\n  %r" % (key, a, b))


def check_native_child(events_of, lost, pid, tids, names, dropped):
    """`dropped`: the process's drop count from its process_labels."""
    process_written = 0
    for t in range(THREADS):
        key = (pid, tids[t])
        evs = events_of.get(key, [])
        seq = ["t%d-seq-%d" % (t, i) for i in range(NATIVE_SPANS)]
        xs = [e for e in evs if e["ph"] == "X"]
        # Emitted: SPANS + 1 spans (2 records each), a counter, an instant;
        # written: exactly those events, nothing else on this thread.
        emitted = 2 * (NATIVE_SPANS + 1) + 2
        written = sum(1 if unfinished(e) else 2 for e in xs) + \
            sum(1 for e in evs if e["ph"] != "X")
        assert written + lost[key] == emitted, (
            "thread %r: %d records written + %d dropped != %d emitted" %
            (key, written, lost[key], emitted))
        assert lost[key] == 0
        process_written += written
        check_sequence(key, xs[:-1], seq)
        outer = xs[-1]
        assert outer["name"] == "t%d-all" % t and not unfinished(outer), outer
        assert all(contains(outer, e) for e in xs[:-1])
        assert {e["cat"] for e in xs} == {"api"}
        counters = [e for e in evs if e["ph"] == "C"]
        assert [(e["name"], e["args"]) for e in counters] == \
            [("t%d-done" % t, {"value": NATIVE_SPANS})], counters
        inst = [e for e in evs if e["ph"] in ("i", "I")]
        assert [e["name"] for e in inst] == ["t%d-end" % t], inst
        assert start_ns(xs[-2]) <= start_ns(counters[0]) <= \
            start_ns(inst[0]) <= end_ns(outer)
        assert len(evs) == NATIVE_SPANS + 3, key
        assert names.get(key) == ["t%d" % t], (key, names.get(key))
    # Per process: every event its threads emitted was written or counted
    # as dropped (all of this process's events are the workers').
    emitted = THREADS * (2 * (NATIVE_SPANS + 1) + 2)
    assert process_written + dropped == emitted, (
        "pid %d: %d records written + %d dropped != %d emitted" %
        (pid, process_written, dropped, emitted))
    # Nothing but the eight workers recorded in this process.
    assert {k for k in events_of if k[0] == pid} == \
        {(pid, tids[t]) for t in range(THREADS)}


def check_python_child(events_of, lost, pid, tids, names, fnames):
    all_s = set(fnames.values())
    worker = None
    for t in range(THREADS):
        key = (pid, tids[t])
        evs = events_of.get(key, [])
        first = t * PY_CALLS // THREADS
        seq = [fnames[(first + i) % PY_CALLS] for i in range(PY_CALLS)]
        mine = [e for e in evs if e["ph"] == "X" and e["name"] in all_s]
        # Emitted: one call (2 records) of each s<i>.
        written = sum(1 if unfinished(e) else 2 for e in mine)
        assert written + lost[key] == 2 * PY_CALLS, (
            "thread %r: %d records written + %d dropped != %d emitted" %
            (key, written, lost[key], 2 * PY_CALLS))
        assert lost[key] == 0
        check_sequence(key, mine, seq)
        workers = [e for e in evs
                   if e["ph"] == "X" and e["name"].startswith("worker (")]
        assert len(workers) == 1 and not unfinished(workers[0]), workers
        worker = worker or workers[0]["name"]
        assert workers[0]["name"] == worker
        assert all(contains(workers[0], e) for e in mine)
        assert names.get(key) == ["w%d" % t], (key, names.get(key))


@pytest.mark.parametrize("kind", ["native", "python", "both"])
def test_stress_32_processes_8_threads(daemon, tmp_path, kind):
    """kind "both": 32 native and 32 Python processes in the one session."""
    n_native = PROCESSES if kind in ("native", "both") else 0
    n_py = PROCESSES if kind in ("python", "both") else 0
    driver = write_program(tmp_path, DRIVER, "driver.py")
    child = tmp_path / "stress_py.py"
    child.write_text(python_child_program(PY_CALLS))
    out = tmp_path / "trace.json"
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, driver,
             n_native, n_py, TRACED_STRESS_NATIVE, NATIVE_SPANS,
             NATIVE_BUSY, child,
             PY_CALLS], env=daemon.env, cwd=tmp_path, timeout=STRESS_TIMEOUT)
    assert r.returncode == 0, r.describe()
    # Only the summary on stderr: no child warned or failed.
    assert r.stderr.count(b"\n") == 1, r.describe()
    summary = parse_summary(summary_line(r.stderr))
    children = parse_driver_output(r.stdout)
    assert [c[0] for c in children] == \
        ["native"] * n_native + ["python"] * n_py, r.describe()
    assert all(c[2] == 0 for c in children), children
    assert all(sorted(c[3]) == list(range(THREADS)) for c in children)

    events = load_trace(out)
    meta = process_meta(events)
    pids = {c[1] for c in children}
    driver_pids = set(meta) - pids
    assert len(driver_pids) == 1, sorted(meta)
    driver_pid = driver_pids.pop()
    for pid in pids | {driver_pid}:
        labels = meta[pid]["process_labels"]
        assert len(labels) == 1, (pid, labels)
        assert dropped_of(labels[0]) == 0, (pid, labels)
    for pid in pids:
        assert meta[pid]["process_labels"] == ["ppid %d" % driver_pid]

    lost = lost_per_thread(events)
    assert sum(lost.values()) == 0, lost
    assert summary["dropped"] == 0, summary
    assert summary["process"] == n_native + n_py + 1, summary
    assert summary["event"] == sum(1 for e in events if e.get("ph") != "M")

    events_of = by_thread(events)
    names = thread_names(events)
    fnames = python_function_names(child)
    assert len(fnames) == PY_CALLS
    for ckind, pid, _, tids in children:
        if ckind == "native":
            check_native_child(events_of, lost, pid, tids, names,
                               dropped_of(meta[pid]["process_labels"][0]))
        else:
            check_python_child(events_of, lost, pid, tids, names, fnames)
    call_forest(events)


# ---- loss accounting through the Python API ---------------------------------

BURST = """
    import sys

    import traced

    M = int(sys.argv[2])


    def f():
        pass


    traced.start(output=sys.argv[1])
    for _ in range(M):
        f()
    s = traced.stop()
    print("summary", s.processes, s.threads, s.events, s.dropped, s.bytes)
"""

BURST_CALLS = 300000


def test_python_api_reports_drops_and_they_account_for_every_call(
        daemon, tmp_path):
    """One thread calls f() exactly M times as fast as it can into a
    1024-slot ring with no full-ring wait.  Each call is two records.  A
    dropped enter also drops its exit (both counted); an exit dropped after
    its enter was written leaves the call as an unfinished slice.  So, with
    C = complete f slices, U = unfinished f slices and D = dropped events:
    2*C + U + D == 2*M exactly (f makes no calls of its own and nothing
    else is recorded during the burst)."""
    script = write_program(tmp_path, BURST)
    out = tmp_path / "trace.json"
    env = dict(daemon.env, TRACED_RING_SLOTS="1024", TRACED_ON_FULL="drop",
               TRACED_FULL_WAIT_MS="0")
    r = run([sys.executable, script, out, BURST_CALLS], env=env, cwd=tmp_path,
            timeout=STRESS_TIMEOUT)
    assert r.returncode == 0, r.describe()
    assert r.stderr == b"", r.describe()
    m = re.fullmatch(rb"summary (\d+) (\d+) (\d+) (\d+) (\d+)\n", r.stdout)
    assert m, r.describe()
    processes, threads, n_events, dropped, nbytes = (int(x) for x in
                                                     m.groups())
    assert processes == 1 and threads == 1
    assert dropped > 0, "a 1024-slot ring without waiting dropped nothing"
    assert nbytes == out.stat().st_size

    events = load_trace(out)
    assert n_events == sum(1 for e in events if e.get("ph") != "M")
    fname = pyname(script, "f")
    fs = [e for e in events if e.get("ph") == "X" and e["name"] == fname]
    complete = sum(1 for e in fs if not unfinished(e))
    unfin = len(fs) - complete
    meta = process_meta(events)
    assert len(meta) == 1, meta
    (pid, m), = meta.items()
    assert len(m["process_labels"]) == 1
    label_dropped = dropped_of(m["process_labels"][0])
    assert label_dropped == dropped, (m["process_labels"], dropped)
    assert 2 * complete + unfin + dropped == 2 * BURST_CALLS, (
        "complete %d, unfinished %d, dropped %d, calls %d" %
        (complete, unfin, dropped, BURST_CALLS))
    # The LOST markers account for the drops before the last write; drops
    # after it are counted but have no marker.
    lost = sum(lost_per_thread(events).values())
    assert 0 < lost <= dropped


STOPPED = """
    import os
    import signal
    import sys
    import threading

    import traced

    M = int(sys.argv[2])
    DAEMON = int(sys.argv[3])


    def f():
        pass


    def burst():
        for _ in range(M):
            f()


    traced.start(output=sys.argv[1], trace_c=False)
    # The daemon is stopped while a new thread registers its ring (RING_ADD)
    # and fills it: the daemon handles the registration only afterwards.
    os.kill(DAEMON, signal.SIGSTOP)
    try:
        thread = threading.Thread(target=burst)
        thread.start()
        thread.join()
    finally:
        os.kill(DAEMON, signal.SIGCONT)
    s = traced.stop()
    print("dropped", s.dropped)
"""


def test_drops_before_the_daemon_sees_a_new_ring_are_counted(daemon,
                                                             tmp_path):
    """A thread whose ring fills before the daemon has handled its
    registration: what it dropped meanwhile must be counted too.  The
    burst thread makes M calls of f; other calls' events dropped while the
    daemon was stopped only add to the count, so 2*C + U + D >= 2*M (C, U:
    complete and unfinished f slices, D: the process's dropped count), and
    D covers at least what the LOST markers in the trace report."""
    script = write_program(tmp_path, STOPPED)
    out = tmp_path / "trace.json"
    env = dict(daemon.env, TRACED_RING_SLOTS="1024", TRACED_ON_FULL="drop",
               TRACED_FULL_WAIT_MS="0")
    m = 100000
    r = run([sys.executable, script, out, m, daemon.proc.pid], env=env,
            cwd=tmp_path, timeout=STRESS_TIMEOUT)
    assert r.returncode == 0, r.describe()
    mo = re.fullmatch(rb"dropped (\d+)\n", r.stdout)
    assert mo, r.describe()
    dropped = int(mo.group(1))
    events = load_trace(out)
    fname = pyname(script, "f")
    fs = [e for e in events if e.get("ph") == "X" and e["name"] == fname]
    complete = sum(1 for e in fs if not unfinished(e))
    unfin = len(fs) - complete
    (meta,) = process_meta(events).values()
    assert dropped_of(meta["process_labels"][0]) == dropped
    lost = sum(lost_per_thread(events).values())
    assert 2 * complete + unfin + dropped >= 2 * m, (
        "complete %d, unfinished %d, dropped %d (LOST markers: %d), calls "
        "%d: %d events neither written nor counted as dropped" %
        (complete, unfin, dropped, lost, m,
         2 * m - (2 * complete + unfin + dropped)))
    assert lost <= dropped, (lost, dropped)


# ---- many producers, several drain workers, every format --------------------

# Processes x threads at least 4 x the machine's cores (8 threads each).
MANY_PROCESSES = max(8, -(-4 * (os.cpu_count() or 2) // THREADS))
MANY_SPANS = 2000


def emitted_per_native_thread(spans):
    """Records a stress_native thread emits: its spans and the enclosing
    one (2 each), a counter and an instant."""
    return 2 * (spans + 1) + 2


@pytest.mark.parametrize("mode", ["wait", "drop"])
@pytest.mark.parametrize("fmt", ["trace.json", "trace.json.gz",
                                 "trace.pftrace"])
def test_many_producers_into_one_session_with_4_drain_threads(
        daemon_with, tmp_path, fmt, mode):
    """MANY_PROCESSES native processes of 8 threads each record into one
    session of a daemon with 4 drain threads (so several workers write one
    session's file even on a 2-core machine).  The file is valid in every
    format and each thread's events are exact: in order, nested exactly,
    nothing else on its track.  By default (producers wait on a full ring)
    every event is written; in the drop mode with tiny rings, each
    thread's written records + its LOST markers' count == what it emitted,
    and the LOST markers add up to the summary's dropped count."""
    import tracefile
    d = daemon_with("--threads", 4)
    driver = write_program(tmp_path, DRIVER, "driver.py")
    out = tmp_path / fmt
    env = dict(d.env)
    if mode == "drop":
        env.update(TRACED_RING_SLOTS="1024", TRACED_ON_FULL="drop",
                   TRACED_FULL_WAIT_MS="0")
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, driver,
             MANY_PROCESSES, 0, TRACED_STRESS_NATIVE, MANY_SPANS, 0,
             "unused", 0], env=env, cwd=tmp_path, timeout=STRESS_TIMEOUT)
    assert r.returncode == 0, r.describe()
    assert r.stderr.count(b"\n") == 1, r.describe()
    summary = parse_summary(summary_line(r.stderr))
    children = parse_driver_output(r.stdout)
    assert len(children) == MANY_PROCESSES
    assert all(c[2] == 0 and sorted(c[3]) == list(range(THREADS))
               for c in children), children

    model = tracefile.load(out)
    assert model.errors == [], model.errors[:5]
    assert summary["event"] == model.events, (summary, model.events)
    assert summary["process"] == MANY_PROCESSES + 1, summary

    lost = collections.Counter()
    other = collections.defaultdict(list)  # (pid, tid) -> non-LOST events
    for i in model.instants:
        if i[2] == "traced":
            lost[(i[0], i[1])] += dict(i[5])["count"]
        else:
            other[(i[0], i[1])].append(("i", i[3], i[4], i[4]))
    for s in model.slices:
        other[(s[0], s[1])].append(("X", s[3], s[4], s[4] + s[5], s[6]))
    counters = collections.Counter((c[0], c[1]) for c in model.counters)
    assert sum(lost.values()) == summary["dropped"], (lost, summary)
    if mode == "wait":
        assert summary["dropped"] == 0, summary
    else:
        assert summary["dropped"] > 0, (
            "1024-slot rings that never wait dropped nothing", summary)

    emitted = emitted_per_native_thread(MANY_SPANS)
    for _, pid, _, tids in children:
        for t in range(THREADS):
            key = (pid, tids[t])
            evs = other.pop(key, [])
            xs = sorted((e for e in evs if e[0] == "X"),
                        key=lambda e: (e[2], -e[3]))
            inst = [e for e in evs if e[0] == "i"]
            ncount = counters.get((pid, "t%d-done" % t), 0)
            written = sum(1 if e[4] else 2 for e in xs) + len(inst) + ncount
            assert written + lost[key] == emitted, (
                "thread %r: %d records written + %d lost != %d emitted" %
                (key, written, lost[key], emitted))
            # The enclosing span's begin is the ring's first record: never
            # dropped.  Everything else lies within it, in order.
            assert xs and xs[0][1] == "t%d-all" % t, xs[:2]
            outer = xs[0]
            seq = xs[1:]
            idx = [int(e[1].rsplit("-", 1)[1]) for e in seq]
            assert all(e[1] == "t%d-seq-%d" % (t, i)
                       for e, i in zip(seq, idx)), seq[:3]
            assert idx == sorted(set(idx)), "thread %r: out of order" % (key,)
            assert all(outer[2] <= e[2] and e[3] <= outer[3] for e in seq)
            for a, b in zip(seq, seq[1:]):
                # One after the other, or (a's end was dropped) b within a.
                assert a[3] <= b[2] or (a[4] and b[3] <= a[3]), (key, a, b)
            assert [e[1] for e in inst] in ([], ["t%d-end" % t])
            if mode == "wait":
                assert idx == list(range(MANY_SPANS)), key
                assert not any(e[4] for e in xs), key
                assert len(inst) == 1 and ncount == 1, key
            assert model.thread_names.get(key) == "t%d" % t, key
    # In the children, nothing but their 8 threads wrote events (the
    # driver, a Python program, records its own calls).
    pids = {c[1] for c in children}
    assert not [k for k, v in other.items() if v and k[0] in pids], \
        [k for k in other if k[0] in pids][:3]

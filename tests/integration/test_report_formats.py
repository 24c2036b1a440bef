"""`traced report` of the Perfetto traces traced writes (docs/report.md,
"Inputs"), checked against the report of the same events in JSON.

* The same scripted events (raw protocol, known timestamps: the producers
  of test_formats.py) written through the real daemon as .json, .json.gz
  and .pftrace give the same `traced report --json`, number for number,
  and the numbers the events imply.
* A real multi-process program (threads, a fork pool, a spawn child, the
  native C API example with counters) traced once to .json and once to
  .pftrace: the same call counts for the program's own functions; the
  .pftrace report equals, to the nanosecond, the numbers recomputed from
  the file by the tests' own Perfetto decoder (pftrace.py); and its times
  are the program's: within the test's clock readings around the run,
  `<module>` at least as long as the program measured itself, nothing
  misnested.
"""

import sys
import time
from decimal import Decimal

import pftrace
from conftest import (TRACED_BIN, TRACED_NATIVE_EXAMPLE, pyname, run,
                      write_program)
from test_formats import HOSTILE_TEXT, PA, PB, scripted_session
from test_report import by_name, check_against_trace, load_exact, report_json

# ---- the same scripted events in every format -----------------------------------

FORMATS = {"trace.json": "json", "trace.json.gz": "json.gz",
           "trace.pftrace": "perfetto"}


def fn(calls, self_ns, total_ns, primitive=None, unfinished=0):
    return dict(calls=calls, primitive_calls=calls if primitive is None
                else primitive, self_ns=self_ns, total_ns=total_ns,
                unfinished=unfinished)


# What test_formats.py's record_a and record_b imply, by cProfile's rules
# (times relative to the session's base timestamp).
EXPECTED_A = {
    "outer": fn(1, 400 - 50 - 100 - 0, 400),
    "builtins.len": fn(1, 50, 50),   # begins at its caller's timestamp
    "inner": fn(1, 100, 100),
    "span": fn(1, 0, 0),             # zero duration
    "left_open": fn(1, 120 - 10, 120, unfinished=1),
    HOSTILE_TEXT: fn(1, 10, 10),
    "f1": fn(1, 5 - 3, 5),
    "f2": fn(1, 3 - 1, 3),
    "f3": fn(1, 1, 1),
    "a": fn(1, 20 - 10, 20),
    "b": fn(1, 10, 10, unfinished=1),  # its exit was never recorded
}
EXPECTED_B = {
    "child_work": fn(3, 30, 30),
    # The broken producer's clock went backwards: this call lies before
    # the calls the thread made earlier, and is counted as not nested.
    "backwards": fn(1, 10, 10),
}


def test_report_same_for_every_format(daemon, tmp_path):
    reports = {}
    for name, fmt in FORMATS.items():
        path = tmp_path / name
        summary, base = scripted_session(daemon, path, fmt)
        assert summary["events"] == 19
        rep = report_json(path, cwd=tmp_path)
        assert rep["format"] == ("perfetto" if fmt == "perfetto" else "json")
        assert rep["compressed"] is (fmt == "json.gz")
        for k in ("file", "format", "compressed"):
            del rep[k]
        # Each session has its own base: the times relative to it.
        rep["start_ns"] -= base
        rep["end_ns"] -= base
        reports[fmt] = rep
    assert reports["perfetto"] == reports["json"] == reports["json.gz"]
    rep = reports["perfetto"]
    assert (rep["start_ns"], rep["end_ns"], rep["duration_ns"]) == \
        (50, 720, 670)
    assert (rep["processes"], rep["threads"], rep["events"]) == (2, 3, 19)
    # The lost marker's count; one unfinished call on each thread of A.
    assert (rep["dropped"], rep["unfinished"]) == (3, 2)
    assert (rep["misnested"], rep["skipped"]) == (1, 0)
    procs = rep["process_reports"]
    assert [(p["pid"], p["name"], p["threads"], p["events"], p["dropped"],
             p["unfinished"]) for p in procs] == [
        (PA, "scripted-parent", 2, 15, 3, 2),
        (PB, "child-renamed", 1, 4, 0, 0)]
    assert by_name(procs[0]["functions"]) == EXPECTED_A
    assert by_name(procs[1]["functions"]) == EXPECTED_B
    assert by_name(rep["overall"]) == dict(EXPECTED_A, **EXPECTED_B)


# ---- a real program, traced to JSON and to Perfetto ------------------------------

PROGRAM = """
    import multiprocessing
    import subprocess
    import sys
    import threading
    import time

    T0 = time.monotonic_ns()


    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)


    def leaf(i):
        return i


    def work(n):
        total = 0
        for i in range(10):
            total += leaf(i)
        return fib(n) + total


    def in_thread():
        for i in range(50):
            leaf(i)


    def main():
        t = threading.Thread(target=in_thread, name="leafy")
        t.start()
        t.join()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            print(pool.map(work, [10, 11, 12, 13], chunksize=1), flush=True)
        p = multiprocessing.get_context("spawn").Process(target=work,
                                                         args=(9,))
        p.start()
        p.join()
        subprocess.run([sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
        print(fib(15), flush=True)


    if __name__ == "__main__":
        main()
        T1 = time.monotonic_ns()
        print("measured", T0, T1, flush=True)
        leaf(0)
"""

# fib(n) makes 2 * F(n + 1) - 1 calls.
FIB_CALLS = {9: 109, 10: 177, 11: 287, 12: 465, 13: 753, 15: 1973}


def json_events_of(tr):
    """A decoded Perfetto trace (pftrace.Trace) as the JSON events traced
    would write for it, for test_report's reference computation.  Slices
    are listed last-begun first: for two calls with the same start and end
    the reference takes the later one in the list as the caller."""
    def us(ns_):
        return Decimal(ns_) / 1000

    events = []
    for s in reversed(tr.slices):
        assert s["dur"] is not None, s  # a finished trace ends every call
        events.append({"ph": "X", "pid": s["pid"], "tid": s["tid"],
                       "name": s["name"], "ts": us(s["ts"]),
                       "dur": us(s["dur"]), "args": s["args"]})
    for i in tr.instants:
        events.append({"ph": "i", "pid": i["pid"], "tid": i["tid"],
                       "name": i["name"], "ts": us(i["ts"]),
                       "args": i["args"]})
    for c in tr.counters:
        assert c["tid"] is not None, c
        events.append({"ph": "C", "pid": c["pid"], "tid": c["tid"],
                       "name": c["name"], "ts": us(c["ts"]),
                       "args": {"value": c["value"]}})
    for pid, name in tr.process_names.items():
        events.append({"ph": "M", "name": "process_name", "pid": pid,
                       "tid": 0, "args": {"name": name}})
    for (pid, tid), name in tr.thread_names.items():
        events.append({"ph": "M", "name": "thread_name", "pid": pid,
                       "tid": tid, "args": {"name": name}})
    return events


def traced_run(daemon, script, out, tmp_path):
    """Runs the program traced into `out`; returns (report, the test's
    monotonic clock before and after, the program's own T0 and T1)."""
    before = time.monotonic_ns()
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
             TRACED_NATIVE_EXAMPLE], env=daemon.env, cwd=tmp_path)
    after = time.monotonic_ns()
    assert r.returncode == 0, r.describe()
    line = [x for x in r.stdout.decode().splitlines()
            if x.startswith("measured ")]
    assert len(line) == 1, r.describe()
    t0, t1 = (int(x) for x in line[0].split()[1:])
    return report_json(out, cwd=tmp_path), (before, after), (t0, t1)


def calls_of(functions, names):
    """{name: (calls, primitive calls)} of the functions in `names`."""
    return {n: (f["calls"], f["primitive_calls"])
            for n, f in by_name(functions).items() if n in names}


def test_report_of_a_real_perfetto_trace(daemon, tmp_path):
    script = write_program(tmp_path, PROGRAM)
    ours = {pyname(script, f) for f in ("fib", "leaf", "work", "in_thread",
                                        "main")}
    module = "<module> (%s:1)" % script
    ours.add(module)
    fib, leaf, work = (pyname(script, f) for f in ("fib", "leaf", "work"))
    reps = {}
    for name in ("trace.json", "trace.pftrace"):
        out = tmp_path / name
        rep, (before, after), (t0, t1) = traced_run(daemon, script, out,
                                                    tmp_path)
        reps[name] = rep
        # Every number equals the file's, recomputed by the reference.
        events = (load_exact(out) if name.endswith(".json") else
                  json_events_of(pftrace.load(out)))
        check_against_trace(rep, events)
        # The times are the program's: the same clock as the test's and
        # the program's own readings.
        assert before <= rep["start_ns"] <= t0 < t1 <= rep["end_ns"] <= \
            after, (before, rep["start_ns"], t0, t1, rep["end_ns"], after)
        main = rep["process_reports"][0]
        assert main["name"] == "MainProcess"
        mod = by_name(main["functions"])[module]
        assert mod["calls"] == 1 and mod["unfinished"] == 0
        assert t1 - t0 <= mod["total_ns"] <= after - before
        assert mod["total_ns"] <= rep["duration_ns"]
        f = by_name(main["functions"])[fib]
        assert (f["calls"], f["primitive_calls"]) == (FIB_CALLS[15], 1)
        assert f["self_ns"] == f["total_ns"] > 0
        assert rep["misnested"] == 0 and rep["skipped"] == 0
        assert rep["dropped"] == 0
    js, pf = reps["trace.json"], reps["trace.pftrace"]
    # The same calls of the program's own functions, in all and in each
    # process whose calls do not depend on scheduling (the pool's workers
    # share the tasks as they come); all of the native example's calls.
    assert calls_of(pf["overall"], ours) == calls_of(js["overall"], ours)
    total = calls_of(pf["overall"], ours)
    assert total[fib] == (sum(FIB_CALLS.values()),
                          1 + 4 + 1)  # main, four tasks, the spawn child
    assert total[leaf] == (50 + 40 + 10 + 1,) * 2
    assert total[work] == (5, 5)

    def by_process(rep):
        out = {}
        for p in rep["process_reports"]:
            # Worker numbers count every process the program started.
            name = p["name"].split("-")[0]
            mine = calls_of(p["functions"], ours)
            if not mine and name != "native_example":
                # A process that made none of the program's calls (a spawn
                # child terminated while it started, named by its script)
                # is there or not as the run's timing has it.
                continue
            got = out.setdefault(name, {})
            for n, c in mine.items():
                got[n] = tuple(a + b for a, b in zip(got.get(n, (0, 0)), c))
            if name == "native_example":
                got.update(calls_of(p["functions"],
                                    {f["name"] for f in p["functions"]}))
        return out

    assert by_process(pf) == by_process(js)
    procs = by_process(pf)
    assert work not in procs["MainProcess"]
    assert procs["ForkPoolWorker"][work] == (4, 4)
    assert procs["SpawnProcess"][work] == (1, 1)
    assert procs["native_example"]["native_work"] == (10, 10)
    assert procs["native_example"]["worker_span"] == (7, 7)
    # The two runs need not start the same number of processes (which pool
    # worker takes which task is the program's own business), so their
    # process and thread counts are not compared; each run's report equals
    # its own file (check_against_trace above).

"""Timestamps and the two ways Python calls are seen.

* Producers on a host with a usable TSC stamp records with raw TSC ticks
  and the daemon converts them (proto/PROTOCOL.md section 3): the trace's
  timestamps must still be CLOCK_MONOTONIC, the one timeline of every
  process, whichever clock a producer used.
* With C functions left out, Python calls are seen through the
  interpreter's frame-evaluation hook instead of the profile hook
  (pyshim/src/evalhook.c): it must record exactly the same Python calls, on
  every thread, with the same nesting.
"""

import json
import sys

import pytest

from conftest import (TRACED_BIN, call_forest, clean_env, end_ns, line_of,
                      load_trace, named, pyname, run, start_ns, thread_names,
                      write_program)

CLOCK_PROG = """
    import json
    import sys
    import time

    import traced


    def mark():
        time.sleep(0.001)


    spans = []
    with traced.session(output=sys.argv[1]):
        for i in range(20):
            t0 = time.monotonic_ns()
            mark()
            spans.append((t0, time.monotonic_ns()))
            time.sleep(0.02)
    print(json.dumps(spans))
"""


def tsc_usable():
    try:
        flags = next(line for line in open("/proc/cpuinfo")
                     if line.startswith("flags")).split()
        src = open("/sys/devices/system/clocksource/clocksource0/"
                   "current_clocksource").read().strip()
    except (OSError, StopIteration):
        return False
    return ("constant_tsc" in flags and "nonstop_tsc" in flags
            and src == "tsc")


def run_clock_prog(daemon, tmp_path, **env):
    script = write_program(tmp_path, CLOCK_PROG)
    out = tmp_path / "trace.json"
    result = run([sys.executable, script, out],
                 env=dict(daemon.env, **env), cwd=tmp_path)
    assert result.returncode == 0, result.describe() + daemon.log()
    spans = json.loads(result.stdout)
    marks = sorted(named(load_trace(out), pyname(script, "mark")),
                   key=start_ns)
    assert len(marks) == len(spans) == 20
    for (t0, t1), e in zip(spans, marks):
        # Each recorded call lies within the program's own monotonic
        # readings around it.  The allowance covers the conversion's
        # sampling error (tens of ns; far less than 50 us), nothing more:
        # a wrong clock or a drifting conversion is off by milliseconds
        # or by the whole uptime.
        assert t0 - 50000 <= start_ns(e) <= end_ns(e) <= t1 + 50000, (
            t0, t1, e)
    return result


@pytest.mark.parametrize("clock", ["auto", "monotonic"])
def test_timestamps_are_monotonic_ns_with_either_clock(daemon_with, tmp_path,
                                                       clock):
    d = daemon_with("-v", "--clock", clock)
    run_clock_prog(d, tmp_path)
    want = "tsc" if clock == "auto" and tsc_usable() else "monotonic"
    assert "clock=%s" % want in d.log(), d.log()


def test_client_can_refuse_the_tsc(daemon_with, tmp_path):
    d = daemon_with("-v")
    run_clock_prog(d, tmp_path, TRACED_CLOCK="monotonic")
    assert "clock=tsc" not in d.log()
    assert "clock=monotonic" in d.log()


def test_bad_clock_option_is_a_usage_error(tmp_path):
    r = run([TRACED_BIN, "serve", "--clock", "sundial", "--socket",
             str(tmp_path / "s")], env=clean_env(), cwd=tmp_path)
    assert r.returncode == 2
    assert b"--clock: 'sundial'" in r.stderr
    assert b"usage: traced serve" in r.stderr


# ---- the frame-evaluation hook --------------------------------------------

CALLS_PROG = """
    import json
    import sys
    import threading

    import traced


    def leaf(x):
        return x + 1


    def rec(n):
        return leaf(n) if n == 0 else rec(n - 1)


    def gen(n):
        for i in range(n):
            yield leaf(i)


    def boom():
        raise ValueError("x")


    def catcher():
        try:
            boom()
        except ValueError:
            return leaf(0)


    class K:
        def method(self):
            return leaf(1)

        @property
        def prop(self):
            return leaf(2)


    async def coro():
        return leaf(3)


    def work():
        rec(5)
        sum(gen(4))
        catcher()
        k = K()
        k.method()
        k.prop
        c = coro()
        try:
            c.send(None)
        except StopIteration:
            pass


    def worker():
        go.wait()
        work()


    go = threading.Event()
    # One thread starts before tracing does, one after.
    early = threading.Thread(target=worker, name="early-bird")
    early.start()
    with traced.session(output=sys.argv[1], trace_c=sys.argv[2] == "1"):
        late = threading.Thread(target=worker, name="late-comer")
        late.start()
        go.set()
        work()
        early.join()
        late.join()
    print("done")
"""


def run_calls(daemon, tmp_path, trace_c, name, **env):
    script = write_program(tmp_path, CALLS_PROG)
    out = tmp_path / name
    result = run([sys.executable, script, out, "1" if trace_c else "0"],
                 env=dict(daemon.env, **env), cwd=tmp_path)
    assert result.returncode == 0, result.describe() + daemon.log()
    assert result.stdout == b"done\n"
    assert result.stderr == b"", result.describe()
    return script, load_trace(out)


def shape(events, script, tid):
    """The thread's calls of the program's own functions as a sorted list
    of (name, parent name) pairs."""
    mine = [e for e in events
            if e.get("ph") == "X" and e["tid"] == tid and str(script) in
            e["name"]]
    out = []
    for n in call_forest(mine):
        out.append((n.name, n.parent.name if n.parent else None))
    return sorted(out)


def test_eval_hook_records_python_calls_like_the_profile_hook(daemon,
                                                              tmp_path):
    script, ev = run_calls(daemon, tmp_path, False, "eval.json")
    _, prof = run_calls(daemon, tmp_path, False, "prof.json",
                        TRACED_EVAL_HOOK="0")
    leaf, rec, gen = (pyname(script, f) for f in ("leaf", "rec", "gen"))
    # No C functions in either mode.
    assert [e for e in ev if e.get("cat") == "c"] == []
    assert [e for e in prof if e.get("cat") == "c"] == []
    # Exactly the same calls, with the same parents, on the main thread:
    # rec 6 deep, gen resumed 5 times, the raising call, methods, property,
    # a coroutine.
    # The main thread's tid is the pid.
    s_eval = shape(ev, script, named(ev, pyname(script, "catcher"))[0]["pid"])
    s_prof = shape(prof, script,
                   named(prof, pyname(script, "catcher"))[0]["pid"])
    assert s_eval == s_prof
    names = [n for n, _ in s_eval]
    assert names.count(rec) == 6
    assert names.count(gen) == 5
    assert names.count(leaf) == 1 + 4 + 1 + 1 + 1 + 1
    assert names.count(pyname(script, "boom")) == 1
    assert names.count(pyname(script, "method", "K.method")) == 1
    # A decorated function's first line is its decorator's.
    prop = "K.prop (%s:%d)" % (script, line_of(script, "def prop(") - 1)
    assert names.count(prop) == 1
    coro = "coro (%s:%d)" % (script, line_of(script, "async def coro("))
    assert names.count(coro) == 1


def test_eval_hook_reaches_threads_started_before_tracing(daemon, tmp_path):
    script, ev = run_calls(daemon, tmp_path, False, "eval.json")
    work = pyname(script, "work")
    threads = {tid: names[-1]
               for (pid, tid), names in thread_names(ev).items()}
    by_name = {}
    for e in named(ev, work):
        by_name.setdefault(threads.get(e["tid"]), []).append(e)
    # The main thread, the thread started inside the session, and the one
    # that was already running when it began: each ran work() once.
    assert {k: len(v) for k, v in by_name.items()} == {
        "MainThread": 1, "late-comer": 1, "early-bird": 1}
    main = shape(ev, script, by_name["MainThread"][0]["tid"])
    worker = pyname(script, "worker")
    # late-comer: worker() -> work() -> the same calls as the main
    # thread's.  early-bird: worker() began before tracing did, so it is
    # not recorded and work() is a root there, as on the main thread.
    late = shape(ev, script, by_name["late-comer"][0]["tid"])
    assert late == sorted([(worker, None)] + [
        (n, p if p is not None else worker) for n, p in main])
    assert shape(ev, script, by_name["early-bird"][0]["tid"]) == main


def test_profile_hook_misses_threads_started_before_tracing(daemon,
                                                            tmp_path):
    # The documented difference: with C functions recorded (profile hook),
    # a thread already running when tracing began is not traced.  3.12+
    # records through sys.monitoring, which reaches it (test_monitoring.py):
    # the profile hook is asked for.
    script, ev = run_calls(daemon, tmp_path, True, "prof.json",
                           TRACED_MONITORING="0")
    threads = {tid: names[-1]
               for (pid, tid), names in thread_names(ev).items()}
    ran = sorted(threads.get(e["tid"]) for e in named(ev, pyname(script,
                                                                 "work")))
    assert ran == ["MainThread", "late-comer"]
    assert [e for e in ev if e.get("cat") == "c"] != []

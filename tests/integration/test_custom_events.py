"""Custom events from Python (traced.instant, counter, span, set_thread_name;
print() and garbage-collector capture) appear exactly as recorded, nest
where the program made them, and cost nothing (and raise nothing) when
tracing is off."""

import json
import os
import sys
import textwrap

import pytest

from conftest import (TRACED_BIN, call_forest, clean_env, instants, line_of,
                      load_trace, named, parent_names, run, thread_names,
                      write_program)
from test_filters import VIAS, run_with

EVENTS = """
    import threading

    import traced


    @traced.span("decorated", {"k": 1})
    def work(i):
        return i * 2


    def step(i):
        with traced.span("block", {"i": i, "path": "/x"}):
            work(i)
        traced.instant("mark", {"i": i, "ratio": 0.5, "ok": True,
                                "obj": [1, "a"], "s": "t\\u00e9"})
        traced.counter("queue", depth=i, bytes=10 * i)


    def worker():
        traced.instant("in_worker")


    def main():
        for i in range(3):
            step(i)
        traced.set_thread_name("renamed-main")
        t = threading.Thread(target=worker, name="named-worker")
        t.start()
        t.join()
"""


def counters(events, name):
    return sorted((e for e in events
                   if e.get("ph") == "C" and e.get("name") == name),
                  key=lambda e: e["ts"])


@pytest.mark.parametrize("via", VIAS)
def test_instants_counters_spans(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, EVENTS, via, {})
    marks = sorted(instants(r.events, "mark"), key=lambda e: e["ts"])
    assert [e["args"] for e in marks] == [
        {"i": i, "ratio": 0.5, "ok": True, "obj": "[1, 'a']", "s": "t\u00e9"}
        for i in range(3)]
    assert [e["args"] for e in counters(r.events, "queue")] == [
        {"depth": i, "bytes": 10 * i} for i in range(3)]
    blocks = sorted(named(r.events, "block"), key=lambda e: e["ts"])
    assert [e["args"] for e in blocks] == [
        {"i": i, "path": "/x"} for i in range(3)]
    assert [e["args"] for e in named(r.events, "decorated")] == [{"k": 1}] * 3
    # Spans nest where the program made them: step > block > decorated >
    # work; traced's own functions are nowhere.
    nodes = call_forest(r.events)
    assert parent_names(nodes, "block") == {r.name("step"): 3}
    assert parent_names(nodes, "decorated") == {"block": 3}
    # A decorated function's first line is its decorator's.
    work = "work (%s:%d)" % (r.script,
                             line_of(r.script, '@traced.span("decorated"'))
    assert parent_names(nodes, work) == {"decorated": 3}
    for e in r.events:
        name = e.get("name", "")
        assert "/traced/" not in name and "traced._traced" not in name, e
        assert not name.startswith("span."), e
    names = thread_names(r.events)
    (main,) = named(r.events, r.name("main"))
    (inw,) = instants(r.events, "in_worker")
    assert names[(main["pid"], main["tid"])] == ["renamed-main"]
    assert names[(inw["pid"], inw["tid"])] == ["named-worker"]


RENAME = """
    import threading


    def named_later():
        threading.current_thread().name = "renamed-later"


    def main():
        t = threading.Thread(target=named_later, name="first")
        t.start()
        t.join()
        threading.current_thread().name = "main-renamed"
"""


@pytest.mark.parametrize("via", ["flag", "api"])
def test_threads_renamed_mid_run(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, RENAME, via, {})
    (later,) = named(r.events, r.name("named_later"))
    (main,) = named(r.events, r.name("main"))
    names = thread_names(r.events)
    assert names[(later["pid"], later["tid"])] == ["renamed-later"]
    assert names[(main["pid"], main["tid"])] == ["main-renamed"]


UNTRACED = """
    import traced

    @traced.span("s")
    def f():
        return 1

    assert traced.instant("i", {"a": 1}) is None
    assert traced.counter("c", v=1) is None
    with traced.span("x", {"a": 1}) as s:
        assert f() == 1
    assert traced.set_thread_name("t") is None
    # Wrong arguments are errors whether or not the program is traced.
    for bad in (lambda: traced.instant(1), lambda: traced.instant("i", [1]),
                lambda: traced.counter("c", v="x"), lambda: traced.span(2),
                lambda: traced.counter("c")):
        try:
            bad()
        except (TypeError, ValueError):
            pass
        else:
            raise SystemExit("accepted a wrong argument")
    print("ok")
"""


@pytest.mark.parametrize("traced_run", [False, True])
def test_api_without_and_with_tracing(daemon, tmp_path, traced_run):
    script = write_program(tmp_path, UNTRACED)
    cmd = [sys.executable, script]
    if traced_run:
        cmd = [TRACED_BIN, "run", "-q", "-o", tmp_path / "t.json", "--"] + cmd
    r = run(cmd, env=daemon.env if traced_run else clean_env(), cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"ok\n" and r.stderr == b""
    if traced_run:
        events = load_trace(tmp_path / "t.json")
        assert len(instants(events, "i")) == 1
        assert len(named(events, "x")) == 1 and len(named(events, "s")) == 1


# ---- print() -------------------------------------------------------------------

PRINTS = """
    import io
    import sys


    def main():
        print("plain")
        print("a", 1, None, sep="-", end="|\\n")
        print("no newline", end="")
        print()
        print("to stderr", file=sys.stderr, flush=True)
        buf = io.StringIO()
        print("into buffer", 2, file=buf)
        sys.stdout.write("buffer held " + repr(buf.getvalue()) + "\\n")
        with open("printed.txt", "w") as fh:
            print("into a file", file=fh)
        print("x" * 5000)
"""


def expected_output():
    return (b"plain\na-1-None|\nno newline\n"
            b"buffer held 'into buffer 2\\n'\n" + b"x" * 5000 + b"\n",
            b"to stderr\n")


@pytest.mark.parametrize("via", VIAS)
def test_print_capture_keeps_output_byte_for_byte(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, PRINTS, via, {"log_print": True})
    out, err = expected_output()
    assert r.result.stdout == out
    assert r.result.stderr.startswith(err)
    assert (tmp_path / "printed.txt").read_text() == "into a file\n"
    texts = [e["args"]["string"] for e in
             sorted(instants(r.events, "print"), key=lambda e: e["ts"])]
    assert texts[:7] == ["plain\n", "a-1-None|\n", "no newline", "\n",
                         "to stderr\n", "into buffer 2\n", "into a file\n"]
    assert len(texts) == 8
    # The last is cut to what one event carries, at a character boundary.
    assert texts[7].startswith("x" * 4000) and texts[7].endswith("\u2026")
    assert len(texts[7].encode()) <= 4096
    # The program's print() calls are still the builtins.print C calls.
    nodes = call_forest(r.events)
    assert parent_names(nodes, "builtins.print")[r.name("main")] == 8


def test_print_not_captured_by_default(daemon, tmp_path):
    r = run_with(daemon, tmp_path, PRINTS, "flag", {})
    assert r.result.stdout == expected_output()[0]
    assert instants(r.events, "print") == []


# ---- garbage collector ---------------------------------------------------------

GC = """
    import gc


    def garbage(n):
        for _ in range(n):
            a, b = [], []
            a.append(b)
            b.append(a)


    def main():
        gc.disable()
        gc.collect()
        for gen, n in ((0, 5), (1, 7), (2, 11)):
            garbage(n)
            gc.collect(gen)
        gc.enable()
"""


@pytest.mark.parametrize("via", VIAS)
def test_gc_collections_are_slices(daemon, tmp_path, via):
    r = run_with(daemon, tmp_path, GC, via, {"log_gc": True})
    (main,) = named(r.events, r.name("main"))
    gcs = sorted((e for e in named(r.events, "gc")
                  if (e["pid"], e["tid"]) == (main["pid"], main["tid"]) and
                  main["ts"] <= e["ts"] <= main["ts"] + main["dur"]),
                 key=lambda e: e["ts"])
    assert len(gcs) == 4
    assert [e["args"] for e in gcs[1:]] == [
        {"generation": 0, "collected": 10, "uncollectable": 0},
        {"generation": 1, "collected": 14, "uncollectable": 0},
        {"generation": 2, "collected": 22, "uncollectable": 0},
    ]
    nodes = call_forest(r.events)
    assert parent_names(nodes, "gc.collect")[r.name("main")] == 4
    assert [n.parent.name for n in nodes if n.event in gcs] == \
        ["gc.collect"] * 4


def test_gc_not_recorded_by_default(daemon, tmp_path):
    r = run_with(daemon, tmp_path, GC, "flag", {})
    assert named(r.events, "gc") == []


# ---- options reach child processes ---------------------------------------------

CHILDREN = """
    import json
    import multiprocessing
    import os
    import sys

    import traced


    def child_work(x):
        print("child", x)
        return x + 1


    def run_children():
        ctx = multiprocessing.get_context("spawn")
        p = ctx.Process(target=child_work, args=(7,))
        p.start()
        p.join()
        return p.pid


    if __name__ == "__main__":
        keys = ("TRACED_LOG_ARGS", "TRACED_LOG_PRINT", "TRACED_MAX_DEPTH")
        before = {k: os.environ.get(k) for k in keys}
        if sys.argv[1] == "api":
            with traced.session(output=sys.argv[2], log_args=True,
                                log_print=True, max_depth=50):
                during = {k: os.environ.get(k) for k in keys}
                pid = run_children()
        else:
            during = before
            pid = run_children()
        after = {k: os.environ.get(k) for k in keys}
        print(json.dumps({"pid": pid, "before": before, "during": during,
                          "after": after}))
"""


@pytest.mark.parametrize("via", ["flag", "env", "api"])
def test_options_reach_a_multiprocessing_child(daemon, tmp_path, via):
    script = write_program(tmp_path, CHILDREN)
    out = tmp_path / "trace.json"
    opts = {"TRACED_LOG_ARGS": "1", "TRACED_LOG_PRINT": "1",
            "TRACED_MAX_DEPTH": "50"}
    if via == "flag":
        cmd = [TRACED_BIN, "run", "-q", "-o", out, "--log-args",
               "--log-print", "--max-depth", "50", "--", sys.executable,
               script, "cli"]
        env = daemon.env
    elif via == "env":
        cmd = [TRACED_BIN, "run", "-q", "-o", out, "--", sys.executable,
               script, "cli"]
        env = dict(daemon.env, **opts)
    else:
        cmd = [sys.executable, script, "api", out]
        env = daemon.env
    r = run(cmd, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "child 7"
    info = json.loads(lines[1])
    if via == "api":
        # Exported while the session runs, restored after.
        assert info["before"] == info["after"] == dict.fromkeys(opts)
        assert info["during"] == opts
    events = load_trace(out)
    child = [e for e in events if e.get("pid") == info["pid"]]
    name = "child_work (%s:%d)" % (script, line_of(script, "def child_work"))
    (work,) = named(child, name)
    assert work["args"] == {"x": "7"}
    prints = instants(child, "print")
    assert [e["args"]["string"] for e in prints] == ["child 7\n"]


SHUTDOWN = """
    import gc
    import sys


    class Late:
        def __del__(self):
            print("bye from __del__")


    class Cycle:
        def __init__(self):
            self.me = self

        def __del__(self):
            print("cycle collected", file=sys.stderr)


    keep = Late()


    def main():
        Cycle()
        print("hi")
"""


def test_print_and_gc_hooks_at_interpreter_exit(daemon, tmp_path):
    # A __del__ that prints and a collection while the interpreter shuts
    # down: the hooks still work (or stay out of the way) and print
    # nothing of their own.
    script = write_program(tmp_path,
                           textwrap.dedent(SHUTDOWN) + "\n\nmain()\n")
    out = tmp_path / "t.json"
    plain = run([sys.executable, script], env=clean_env(), cwd=tmp_path)
    r = run([TRACED_BIN, "run", "-q", "-o", out, "--log-print", "--log-gc",
             "--", sys.executable, script], env=daemon.env, cwd=tmp_path)
    assert r.returncode == plain.returncode == 0, r.describe()
    assert r.stdout == plain.stdout == b"hi\nbye from __del__\n"
    assert r.stderr == plain.stderr == b"cycle collected\n", r.describe()
    texts = [e["args"]["string"] for e in instants(load_trace(out), "print")]
    assert texts[0] == "hi\n"

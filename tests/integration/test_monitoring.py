"""The sys.monitoring back end (CPython 3.12+, pyshim/src/monitor.c): the
events it enables, threads that were running before tracing began, and
another tool holding its tool id."""

import sys

import pytest

from conftest import load_trace, named, pyname, run, write_program

pytestmark = pytest.mark.skipif(sys.version_info < (3, 12),
                                reason="sys.monitoring is 3.12+")

TOOL_ID = 4  # pyshim/src/monitor.h

EVENTS = """
    import json
    import sys

    import traced

    E = sys.monitoring.events
    PY = (E.PY_START | E.PY_RESUME | E.PY_THROW | E.PY_RETURN | E.PY_YIELD |
          E.PY_UNWIND)
    seen = {}
    for ignore in (False, True):
        with traced.session(output=sys.argv[1 + ignore],
                            ignore_c_functions=ignore):
            on = sys.monitoring.get_events(%(tool)d)
            # C_RETURN and C_RAISE come with CALL (get_events omits them).
            seen[str(ignore)] = [traced._traced.backend(),
                                 sys.monitoring.get_tool(%(tool)d),
                                 on & PY == PY, bool(on & E.CALL)]
    # Released on stop.
    seen["after"] = [sys.monitoring.get_tool(%(tool)d),
                     sys.monitoring.get_events(%(tool)d)]
    print(json.dumps(seen))
""" % {"tool": TOOL_ID}


def test_ignore_c_functions_enables_only_python_events(daemon, tmp_path):
    script = write_program(tmp_path, EVENTS)
    outs = [tmp_path / "c.json", tmp_path / "noc.json"]
    r = run([sys.executable, script] + outs, env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    import json

    seen = json.loads(r.stdout)
    assert seen["False"] == ["monitoring", "traced", True, True]
    assert seen["True"] == ["monitoring", "traced", True, False]
    assert seen["after"] == [None, 0]


RUNNING = """
    import sys
    import threading

    import traced

    go = threading.Event()
    done = threading.Event()


    def leaf(i):
        return i


    def worker():
        go.wait()
        for i in range(10):
            leaf(i)
        done.set()


    t = threading.Thread(target=worker, name="already-running")
    t.start()
    with traced.session(output=sys.argv[1]):
        go.set()
        done.wait()
    t.join()
"""


def test_threads_running_before_the_session_are_traced(daemon, tmp_path):
    script = write_program(tmp_path, RUNNING)
    out = tmp_path / "trace.json"
    r = run([sys.executable, script, out], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    events = load_trace(out)
    leaves = named(events, pyname(script, "leaf"))
    assert len(leaves) == 10
    main_tid = next(e["pid"] for e in events if "pid" in e)
    assert {e["tid"] for e in leaves} != {main_tid}


HELD = """
    import sys

    import traced

    sys.monitoring.use_tool_id(%(tool)d, "someone-else")


    def leaf(i):
        return i


    with traced.session(output=sys.argv[1]):
        for i in range(10):
            leaf(i)
    print("done", sys.monitoring.get_tool(%(tool)d))
    sys.exit(3)
""" % {"tool": TOOL_ID}


def test_tool_id_held_by_another_tool_warns_once_and_runs_untraced(
        daemon, tmp_path):
    script = write_program(tmp_path, HELD)
    out = tmp_path / "trace.json"
    r = run([sys.executable, script, out], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 3, r.describe()
    assert r.stdout == b"done someone-else\n", r.describe()
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("traced: warning:"), \
        r.describe()
    assert "someone-else" in lines[0]
    assert named(load_trace(out), pyname(script, "leaf")) == []


CPROFILE = """
    import cProfile
    import sys


    def leaf(i):
        return i


    prof = cProfile.Profile()
    prof.enable()
    for i in range(10):
        leaf(i)
    prof.disable()
    calls = [s for s in prof.getstats()
             if getattr(s.code, "co_name", "") == "leaf"]
    print(calls[0].callcount)
"""


def test_cprofile_runs_inside_a_traced_program(daemon, tmp_path):
    script = write_program(tmp_path, CPROFILE)
    out = tmp_path / "trace.json"
    r = run([sys.executable, script],
            env=dict(daemon.env, TRACED_OUTPUT=str(out)), cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"10\n", r.describe()
    assert len(named(load_trace(out), pyname(script, "leaf"))) == 10

"""The inline API (`traced.session`, `traced.start`/`traced.stop`) traces
exactly the enclosed code, and the file is complete when it returns."""

import json
import sys

from conftest import (call_forest, load_trace, named, parent_names, pyname,
                      run, write_program)

COMMON = """
    import json
    import sys

    import traced


    def f():
        return 1


    def g(n):
        for _ in range(n):
            f()


    def outside():
        return 2


    def count_f(path):
        # Reads the trace right after tracing stopped: it must be complete.
        with open(path) as fh:
            events = json.load(fh)["traceEvents"]
        return sum(1 for e in events
                   if e.get("ph") == "X" and e["name"].startswith("f ("))
"""

SESSION = COMMON + """

    outside()
    with traced.session(output=sys.argv[1]):
        g(1000)
    n = count_f(sys.argv[1])
    outside()
    print(json.dumps({"f": n}))
"""

START_STOP = COMMON + """

    outside()
    traced.start(output=sys.argv[1])
    g(1000)
    traced.stop()
    n = count_f(sys.argv[1])
    outside()
    print(json.dumps({"f": n}))
"""

TWICE = COMMON + """

    traced.start(output=sys.argv[1])
    g(1000)
    traced.stop()
    outside()
    with traced.session(output=sys.argv[2]):
        f()
        g(500)
    print(json.dumps({"f": [count_f(sys.argv[1]), count_f(sys.argv[2])]}))
"""


def run_inline(daemon, tmp_path, text, outputs=("trace.json",)):
    script = write_program(tmp_path, text)
    paths = [tmp_path / o for o in outputs]
    result = run([sys.executable, script] + paths, env=daemon.env,
                 cwd=tmp_path)
    assert result.returncode == 0, (result.describe() + "\ndaemon log:\n" +
                                    daemon.log())
    # The shim prints nothing of its own.
    assert result.stderr == b"", result.describe()
    return script, json.loads(result.stdout), paths


def check_g_trace(events, script, n):
    f, g = pyname(script, "f"), pyname(script, "g")
    nodes = call_forest(events)
    assert parent_names(nodes, f) == {g: n}
    assert len(named(events, g)) == 1
    assert named(events, pyname(script, "outside")) == []
    assert named(events, pyname(script, "count_f")) == []


def test_session_block_traces_block_and_completes_file(daemon, tmp_path):
    script, seen, (out,) = run_inline(daemon, tmp_path, SESSION)
    assert seen == {"f": 1000}
    check_g_trace(load_trace(out), script, 1000)


def test_start_stop_traces_between_and_completes_file(daemon, tmp_path):
    script, seen, (out,) = run_inline(daemon, tmp_path, START_STOP)
    assert seen == {"f": 1000}
    check_g_trace(load_trace(out), script, 1000)


def test_two_sessions_in_one_process_write_two_files(daemon, tmp_path):
    script, seen, (first, second) = run_inline(
        daemon, tmp_path, TWICE, outputs=("first.json", "second.json"))
    assert seen == {"f": [1000, 500 + 1]}
    check_g_trace(load_trace(first), script, 1000)
    events = load_trace(second)
    f, g = pyname(script, "f"), pyname(script, "g")
    nodes = call_forest(events)
    assert parent_names(nodes, f) == {g: 500, None: 1}
    assert len(named(events, g)) == 1
    assert named(events, pyname(script, "outside")) == []

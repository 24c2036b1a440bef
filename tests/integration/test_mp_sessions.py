"""Sessions spanning many processes: the inline joblib seed scenario,
loky workers reused by consecutive sessions, two traced programs at once,
a worker still alive when the session ends, and unchanged output."""

import json
import subprocess
import sys
import uuid

import pytest

from conftest import (TIMEOUT, TRACED_BIN, clean_env, load_trace,
                      processes_mentioning, run, run_traced, summary_line,
                      terminate_pid, write_program)
from mp_helpers import (Procs, alive, func_counts, func_unfinished, program,
                        read_log, tree)

# ---- the seed scenario ------------------------------------------------------

SEED = """
    import collections
    import json
    import os

    from joblib import Parallel, delayed

    import traced


    def work(i):
        return os.getpid()


    if __name__ == "__main__":
        with traced.session(output="trace.json"):
            pids = Parallel(n_jobs=4)(delayed(work)(i) for i in range(40))
        print(json.dumps({"main": os.getpid(),
                          "counts": collections.Counter(pids)}))
"""


def test_mp_seed_inline_joblib(daemon, tmp_path):
    progdir, cwd, tmp = tmp_path / "prog", tmp_path / "cwd", tmp_path / "tmp"
    for d in (progdir, cwd, tmp):
        d.mkdir()
    script = write_program(progdir, SEED, "seed.py")
    env = dict(daemon.env, TMPDIR=str(tmp))
    prog_files = tree(progdir)
    seen_pids = set()
    for attempt in (1, 2):
        r = run([sys.executable, script], env=env, cwd=cwd)
        assert r.returncode == 0, r.describe()
        assert r.stderr == b"", r.describe()
        # Nothing but the trace file appears anywhere we can see.
        assert tree(cwd) == ["trace.json"], (attempt, tree(cwd))
        assert tree(tmp) == [], (attempt, tree(tmp))
        assert tree(progdir) == prog_files, (attempt, tree(progdir))
        out = json.loads(r.stdout)
        main = out["main"]
        counts = {int(k): v for k, v in out["counts"].items()}
        assert sum(counts.values()) == 40 and main not in counts, out

        # The file parses as a whole (no leftover of a longer first run).
        events = load_trace(cwd / "trace.json")
        procs = Procs(events)
        procs.check_well_formed(main)
        assert func_counts(events, script) == counts, (
            attempt, procs.describe())
        assert sum(func_counts(events, script).values()) == 40
        assert func_unfinished(events, script) == []
        for pid in counts:
            assert procs.named(r"LokyProcess-\d+").count(pid) == 1, (
                pid, procs.describe())
            assert procs.ppid(pid) == main, procs.describe()
        # The second run replaced the first file: nothing of the first run
        # (its processes) is left in it.
        this_run = procs.pids
        assert not (this_run & (seen_pids - {main} - set(counts))), (
            attempt, sorted(this_run & seen_pids))
        seen_pids |= this_run


# ---- reused workers ---------------------------------------------------------

REUSE = """
    import collections
    import json
    import os
    import time

    from joblib import Parallel, delayed

    import traced


    def work_a(i):
        # Both workers take part in the first block whatever the load: a
        # task waits (bounded) until the other worker has taken one too.
        open("seen-%d" % os.getpid(), "w").close()
        deadline = time.monotonic() + 60
        while (len([f for f in os.listdir(".") if f.startswith("seen-")]) < 2
               and time.monotonic() < deadline):
            time.sleep(0.01)
        time.sleep(0.03)
        return os.getpid()


    def work_b(i):
        time.sleep(0.03)
        return os.getpid()


    if __name__ == "__main__":
        with traced.session(output="t0.json"):
            a = Parallel(n_jobs=2)(delayed(work_a)(i) for i in range(10))
        with traced.session(output="t1.json"):
            b = Parallel(n_jobs=2)(delayed(work_b)(i) for i in range(14))
        print(json.dumps({"main": os.getpid(),
                          "a": collections.Counter(a),
                          "b": collections.Counter(b)}))
"""


def test_mp_reused_loky_workers_two_sessions(daemon, tmp_path):
    script = write_program(tmp_path, REUSE)
    r = run([sys.executable, script], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stderr == b"", r.describe()
    out = json.loads(r.stdout)
    main = out["main"]
    a = {int(k): v for k, v in out["a"].items()}
    b = {int(k): v for k, v in out["b"].items()}
    assert sum(a.values()) == 10 and sum(b.values()) == 14, out
    # Precondition: the second block really ran in the first block's
    # (reused) workers.
    assert set(b) <= set(a), out

    e0 = load_trace(tmp_path / "t0.json")
    e1 = load_trace(tmp_path / "t1.json")
    p0, p1 = Procs(e0), Procs(e1)

    assert func_counts(e0, script, "work_a") == a, p0.describe()
    assert func_counts(e0, script, "work_b") == {}
    assert func_counts(e1, script, "work_b") == b, p1.describe()
    assert func_counts(e1, script, "work_a") == {}
    assert func_unfinished(e0, script, "work_a") == []
    assert func_unfinished(e1, script, "work_b") == []

    for procs, pids in ((p0, a), (p1, b)):
        procs.check_well_formed(main)
        for pid in pids:
            assert pid in procs.named(r"LokyProcess-\d+"), procs.describe()
            assert procs.ppid(pid) == main, procs.describe()


# ---- two programs at once ---------------------------------------------------

CONCURRENT = program("""
    import time


    def wait_for(path):
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                sys.exit(7)
            time.sleep(0.01)


    def main():
        note("main", os.getpid())
        rendezvous, me, other, n = sys.argv[1:5]
        # Both programs are running (their sessions open) before either
        # starts working, and neither ends before both have worked.
        open(os.path.join(rendezvous, me + ".started"), "w").close()
        wait_for(os.path.join(rendezvous, other + ".started"))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(task, [int(n)] * 6, chunksize=1)
        open(os.path.join(rendezvous, me + ".worked"), "w").close()
        wait_for(os.path.join(rendezvous, other + ".worked"))


    if __name__ == "__main__":
        main()
""")


def test_mp_two_programs_at_once_one_daemon(daemon, tmp_path):
    rendezvous = tmp_path / "rv"
    rendezvous.mkdir()
    sides = {"a": ("b", 2), "b": ("a", 3)}
    scripts, outputs, procs_, logs = {}, {}, {}, {}
    try:
        for me, (other, n) in sides.items():
            d = tmp_path / me
            d.mkdir()
            scripts[me] = write_program(d, CONCURRENT)
            outputs[me] = d / "trace.json"
            logs[me] = (open(d / "stdout", "wb"), open(d / "stderr", "wb"))
            cmd = [TRACED_BIN, "run", "-o", outputs[me], "--",
                   sys.executable, scripts[me], rendezvous, me, other, n]
            procs_[me] = subprocess.Popen(
                [str(c) for c in cmd],
                env=daemon.env, cwd=d, stdin=subprocess.DEVNULL,
                stdout=logs[me][0], stderr=logs[me][1])
        for me, p in procs_.items():
            rc = p.wait(timeout=TIMEOUT)
            err = (tmp_path / me / "stderr").read_bytes()
            assert rc == 0, (me, rc, err, daemon.log())
            assert str(outputs[me]) in summary_line(err)
    finally:
        for p in procs_.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        for files in logs.values():
            for f in files:
                f.close()

    calls = {me: read_log(scripts[me]) for me in sides}
    events = {me: load_trace(outputs[me]) for me in sides}
    trace_pids = {}
    for me, (other, n) in sides.items():
        log, ev = calls[me], events[me]
        counts = log.counts()
        assert sum(counts.values()) == 6 * n, counts
        procs = Procs(ev)
        procs.check_well_formed(log.main)
        assert func_counts(ev, scripts[me]) == counts, procs.describe()
        assert func_counts(ev, scripts[other]) == {}
        for pid in counts:
            assert procs.name(pid) == log.procs[pid][1], procs.describe()
            assert procs.ppid(pid) == log.main
        # Nothing of the other program: neither its main process nor its
        # workers.
        theirs = {calls[other].main} | set(calls[other].counts())
        assert not (procs.pids & theirs), (me, sorted(procs.pids & theirs))
        trace_pids[me] = procs.pids
    assert not (trace_pids["a"] & trace_pids["b"])


# ---- a worker still alive when the session ends -----------------------------

SLEEPER = program("""
    import time


    def sleeper(ready):
        # Keep nothing of `traced run`'s stdout/stderr pipes open.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        note("proc", os.getpid(), os.getppid(),
             multiprocessing.current_process().name)
        for i in range(5):
            work(i)
        ready.set()
        time.sleep(300)


    def main():
        note("main", os.getpid())
        ctx = multiprocessing.get_context("fork")
        ready = ctx.Event()
        p = ctx.Process(target=sleeper, args=(ready,))
        p.start()
        note("pid", "sleeper", p.pid)
        if not ready.wait(30):
            os._exit(3)
        # Exit without joining the (non-daemon) sleeper.
        os._exit(0)


    if __name__ == "__main__":
        main()
""")


def test_mp_sleeping_worker_does_not_block_end(daemon, tmp_path):
    marker = "sleeper-marker-%s" % uuid.uuid4().hex
    sleepers = set()
    try:
        # run_traced fails the test if `traced run` takes TIMEOUT (60 s),
        # well before the sleeper's 300 s sleep ends.
        t = run_traced(daemon, SLEEPER, tmp_path, args=[marker])
        log = read_log(t.script)
        sleepers |= set(log.pids["sleeper"])
        sleepers |= set(processes_mentioning(marker))
        assert t.returncode == 0, t.result.describe()
        (sleeper,) = log.pids["sleeper"]
        assert alive(sleeper), "the sleeper is not sleeping any more"
        main = log.main
        assert log.counts() == {sleeper: 5}

        events = t.events
        procs = Procs(events)
        procs.check_well_formed(main)
        assert func_counts(events, t.script) == {sleeper: 5}, (
            procs.describe())
        assert func_unfinished(events, t.script) == []
        # The call still open when the session ended is there, unfinished.
        open_calls = func_unfinished(events, t.script, "sleeper")
        assert [e["pid"] for e in open_calls] == [sleeper], open_calls
        assert procs.name(sleeper) == log.procs[sleeper][1], procs.describe()
        assert procs.name(sleeper).startswith("ForkProcess-")
        assert procs.ppid(sleeper) == main
    finally:
        sleepers |= set(processes_mentioning(marker))
        for pid in sleepers:
            terminate_pid(pid)


# ---- output and exit status unchanged ---------------------------------------

OUTPUT = """
    import multiprocessing
    import sys


    def square(x):
        return x * x


    def main():
        print("start", flush=True)
        print("err start", file=sys.stderr, flush=True)
        ctx = multiprocessing.get_context(sys.argv[1])
        with ctx.Pool(2) as pool:
            res = pool.map(square, range(10))
        print("results", res)
        print("sum", sum(res), file=sys.stderr)
        sys.exit(4)


    if __name__ == "__main__":
        main()
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("how", ["cli_quiet", "cli", "env"])
def test_mp_output_and_status_unchanged(daemon, tmp_path, method, how):
    script = write_program(tmp_path, OUTPUT)
    plain = run([sys.executable, script, method], env=clean_env(),
                cwd=tmp_path)
    assert plain.returncode == 4, plain.describe()
    assert plain.stdout == (b"start\nresults [0, 1, 4, 9, 16, 25, 36, 49, "
                            b"64, 81]\n"), plain.describe()
    assert plain.stderr == b"err start\nsum 285\n", plain.describe()

    out = tmp_path / "trace.json"
    if how == "env":
        cmd = [sys.executable, script, method]
        env = dict(daemon.env, TRACED_OUTPUT=str(out))
    else:
        quiet = ["-q"] if how == "cli_quiet" else []
        cmd = [TRACED_BIN, "run"] + quiet + ["-o", out, "--",
                                             sys.executable, script, method]
        env = daemon.env
    traced = run(cmd, env=env, cwd=tmp_path)
    assert traced.returncode == 4, traced.describe()
    assert traced.stdout == plain.stdout, traced.describe()
    if how == "cli":
        # `traced run` adds its one summary line after the program's stderr.
        assert traced.stderr.startswith(plain.stderr), traced.describe()
        extra = traced.stderr[len(plain.stderr):]
        assert extra.count(b"\n") == 1 and extra.endswith(b"\n"), extra
        assert str(out) in summary_line(traced.stderr)
    else:
        assert traced.stderr == plain.stderr, traced.describe()

    events = load_trace(out)
    counts = func_counts(events, script, "square")
    assert sum(counts.values()) == 10, counts
    main_pids = [p for p, m in Procs(events).meta.items()
                 if m["process_sort_index"] == [1]]
    assert len(main_pids) == 1 and main_pids[0] not in counts

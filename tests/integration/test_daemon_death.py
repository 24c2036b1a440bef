"""The daemon SIGKILLed while a traced program's 4 pool workers run
(issue 4): the program finishes with the output and exit status it has
untraced, prints no traceback and only traced's documented warnings (one
line per affected process), does not hang; the partial trace file loads the
way Perfetto loads a cut-short array; and a daemon restarted on the same
socket serves new sessions correctly."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import (TRACED_BIN, Daemon, clean_env, pyname, run_traced,
                      short_tmpdir, write_program)
from mp_helpers import Procs, func_counts, program, read_log

# The array form's head: "[" padded with 15 spaces, then a newline
# (docs/daemon.md, "Output format").
ARRAY_HEAD = b"[" + b" " * 15 + b"\n"

# Generous bound for the whole program (it runs a few seconds).
PROGRAM_TIMEOUT = 120

# Pool workers call burst() until the test has killed the daemon (it then
# creates the file `killed`), then a fixed amount more: far more records
# than a ring holds, so their rings fill while no daemon drains them.  Only
# the fixed part is in the output.  With "late", a second pool is started
# after the daemon died; with "thread", the main process starts a thread
# after the daemon died that makes 300 000 calls (a few tenths of a second
# untraced).
PROGRAM = program("""
    import time

    POST = 150


    def step(i):
        return i * i


    def burst(n):
        total = 0
        for j in range(n):
            total += step(j)
        return total


    def work(k):
        note("proc", os.getpid(), os.getppid(),
             multiprocessing.current_process().name)
        killed = os.path.join(os.path.dirname(LOG), "killed")
        while not os.path.exists(killed):
            burst(100)
            time.sleep(0.02)
        total = k
        for _ in range(POST):
            total += burst(1000)
        return total


    def late_worker(barrier):
        note("pid", "late", os.getpid())
        # Every worker of the late pool starts before any takes a task: on
        # a loaded machine the others could otherwise do all the work and
        # the pool end before one of them ran its initializer.
        barrier.wait(60)


    def late(k):
        return burst(1000) + k


    def late_thread(results):
        results.append(sum(burst(1000) for _ in range(300)))


    def main():
        note("main", os.getpid())
        api, workers = sys.argv[1], sys.argv[2]
        if api == "inline":
            import traced
            traced.start(output=sys.argv[3])
        with multiprocessing.Pool(4) as pool:
            print(pool.map(work, range(4), chunksize=1), flush=True)
        if workers == "late":
            barrier = multiprocessing.Barrier(4)
            with multiprocessing.Pool(4, initializer=late_worker,
                                      initargs=(barrier,)) as pool:
                print(pool.map(late, range(8), chunksize=1), flush=True)
        if workers == "thread":
            import threading
            results = []
            thread = threading.Thread(target=late_thread, args=(results,))
            thread.start()
            thread.join()
            print("thread", results, flush=True)
        if api == "inline":
            print("stop:", traced.stop(), flush=True)
        print("done", flush=True)
        sys.exit(3)


    if __name__ == "__main__":
        main()
""", with_work=False)


def load_cut_short(path):
    """The events of a trace file cut short, read the way Perfetto reads an
    unterminated array: the padded "[" head, then one event per line
    separated by ",\\n"; a last line cut in the middle of an event is
    ignored.  Asserts the rest parses as a JSON list of events."""
    data = path.read_bytes()
    assert data.startswith(ARRAY_HEAD), (
        "%s does not start with the array head: %r" % (path, data[:40]))
    lines = data[len(ARRAY_HEAD):].split(b"\n")
    complete, last = lines[:-1], lines[-1]
    for line in complete:
        assert line.endswith(b","), (
            "%s: a line that is followed by another does not end with the "
            "separator: %r" % (path, line[-200:]))
    try:
        json.loads(last.rstrip(b","))
        complete.append(last)
    except ValueError:
        pass  # the write that was cut ended inside this event
    events = json.loads(b"[" + b"\n".join(complete).rstrip(b",") + b"]")
    assert isinstance(events, list)
    for e in events:
        assert isinstance(e, dict) and isinstance(e.get("ph"), str) and \
            isinstance(e.get("pid"), int), e
    return events


def burst_pids(events, script):
    name = pyname(script, "burst")
    return {e["pid"] for e in events
            if e.get("ph") == "X" and e["name"] == name}


def wait_for(what, done, proc, timeout=PROGRAM_TIMEOUT):
    """Polls done() until it is true; fails if proc exits first."""
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            pytest.fail("the program exited (status %r) while the test "
                        "waited for %s" % (proc.returncode, what))
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for %s" % what)
        time.sleep(0.05)


def kill_group(proc):
    """SIGKILLs proc's process group (it leads its own session), so that
    no process of the program survives to keep its pipes open."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def finish(proc):
    """stdout, stderr and status of proc, which must end in time."""
    try:
        out, err = proc.communicate(timeout=PROGRAM_TIMEOUT)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        pytest.fail("the program hung after the daemon died\n--- stdout "
                    "---\n%s\n--- stderr ---\n%s" %
                    (out.decode(errors="replace"),
                     err.decode(errors="replace")))
    return out, err, proc.returncode


def run_program(cmd, env, cwd):
    return subprocess.Popen([str(c) for c in cmd], env=env, cwd=str(cwd),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)


def expected_warnings(api, out, late_pids):
    """The stderr lines traced may print, one per process: the creator's
    failed session end, and each process forked after the daemon died
    (it cannot reattach)."""
    lines = []
    if api == "cli":
        lines.append(re.escape("traced: warning: the session did not end "
                               "cleanly (") + r"[^)]+" +
                     re.escape("); %s may be incomplete" % out))
    else:
        lines.append(r"traced: warning: ending the session failed: "
                     r"\[Errno \d+\] [A-Za-z ]+")
    for pid in late_pids:
        lines.append(re.escape("traced: warning: forked child %d could not "
                               "reattach: " % pid) + r"[A-Za-z ]+")
    return lines


@pytest.mark.parametrize("api,workers", [
    ("cli", "early"), ("inline", "early"), ("env", "early"),
    ("cli", "late"), ("inline", "late"), ("env", "late"),
    ("cli", "thread"),
])
def test_daemon_sigkilled_mid_run(tmp_path, api, workers):
    # The program untraced: what the traced run must print and return.
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain_script = write_program(plain_dir, PROGRAM)
    (plain_dir / "killed").touch()
    plain = run_program([sys.executable, plain_script, "none", workers],
                        clean_env(), plain_dir)
    plain_out, plain_err, plain_rc = finish(plain)
    assert plain_rc == 3 and plain_err == b"", plain_err
    assert plain_out.endswith(b"done\n"), plain_out

    d = Daemon(short_tmpdir())
    try:
        d.start()
        _killed_mid_run(d, tmp_path, api, workers, plain_out, plain_rc)
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
        shutil.rmtree(d.dir, ignore_errors=True)


def _killed_mid_run(d, tmp_path, api, workers, plain_out, plain_rc):
    script = write_program(tmp_path, PROGRAM)
    out = tmp_path / "trace.json"
    env = dict(d.env)
    if api == "cli":
        cmd = [TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
               "none", workers]
    elif api == "inline":
        cmd = [sys.executable, script, "inline", workers, out]
    else:
        cmd = [sys.executable, script, "none", workers]
        env["TRACED_OUTPUT"] = str(out)
    proc = run_program(cmd, env, tmp_path)
    try:
        # Mid-run: all four workers are recording and the daemon has
        # already written some of each one's slices.
        def recording():
            log = read_log(script)
            if len(log.procs) < 4 or not out.exists():
                return False
            return set(log.procs) <= burst_pids(load_cut_short(out), script)

        wait_for("4 workers' slices in the trace", recording, proc)
        before = load_cut_short(out)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
        first_log = d.log()
        (tmp_path / "killed").touch()
        stdout, stderr, rc = finish(proc)
    finally:
        if proc.returncode is None:
            kill_group(proc)
            proc.wait()
    describe = ("exit status %r\n--- stdout ---\n%s\n--- stderr ---\n%s\n"
                "--- daemon log ---\n%s" %
                (rc, stdout.decode(errors="replace"),
                 stderr.decode(errors="replace"), first_log))

    # Same output and exit status as untraced.
    assert rc == plain_rc, describe
    if api == "inline":
        # traced.stop() found no daemon: no summary.
        assert stdout == plain_out.replace(b"done\n",
                                           b"stop: None\ndone\n"), describe
    else:
        assert stdout == plain_out, describe
    log = read_log(script)
    assert len(log.procs) == 4, log.procs
    late_pids = sorted(log.pids["late"])
    assert len(late_pids) == (4 if workers == "late" else 0), late_pids

    # No traceback, only traced's warnings: one line per process at most.
    text = stderr.decode(errors="replace")
    assert "Traceback" not in text, describe
    lines = text.splitlines()
    expected = expected_warnings(api, out, late_pids)
    # The creator's line must be there.  A worker forked after the death
    # warns only if its parent had not yet noticed the daemon was gone
    # (then the parent stopped recording and its children do not try).
    unmatched = list(lines)
    for i, pattern in enumerate(expected):
        hit = [x for x in unmatched if re.fullmatch(pattern, x)]
        assert len(hit) == (1 if i == 0 else len(hit)) and len(hit) <= 1, (
            "stderr lines matching %r: %r\n%s" % (pattern, hit, describe))
        if hit:
            unmatched.remove(hit[0])
    assert unmatched == [], describe

    # The file cut short still loads, with everything written before the
    # daemon died.
    after = load_cut_short(out)
    assert len(after) >= len(before)
    assert after[:len(before)] == before
    assert set(log.procs) <= burst_pids(after, script)

    # A new daemon on the same socket path serves a new session correctly.
    d.start()
    check_new_session(d, tmp_path / "after")
    d.stop()


AFTER = program("""
    def main():
        note("main", os.getpid())
        with multiprocessing.Pool(4) as pool:
            pool.map(task, [3, 4, 5, 6], chunksize=1)


    if __name__ == "__main__":
        main()
""")


def check_new_session(daemon, directory):
    directory.mkdir()
    t = run_traced(daemon, AFTER, directory)
    assert t.returncode == 0, t.result.describe()
    assert t.stderr.count(b"\n") == 1, t.result.describe()
    log = read_log(t.script)
    Procs(t.events).check_well_formed(log.main)
    assert func_counts(t.events, t.script) == log.counts()
    assert sum(log.counts().values()) == 18

"""Crash salvage (issue 4): a traced process that dies by SIGKILL,
`os._exit`, `Pool.terminate()` or a segfault loses none of the calls it had
committed, and the calls open at its death appear as slices marked
`"args": {"unfinished": true}` that end at its thread's last recorded
timestamp (docs/daemon.md, README "The trace").  The program's exit status
and output are the same as untraced."""

import sys
import textwrap

import pytest

from conftest import (TRACED_BIN, call_forest, clean_env, end_ns, load_trace,
                      pyname, run, start_ns, summary_line, write_program)
from mp_helpers import PRELUDE, Procs, read_log

# Every program's children are started with this method (parametrized).
METHODS = ["fork", "spawn"]


class Run:
    """A program run untraced and traced; the traced run's trace."""

    def __init__(self, plain, traced, script, events):
        self.plain = plain
        self.traced = traced
        self.script = script
        self.events = events
        self.log = read_log(script)


def run_both(daemon, tmp_path, text, args=()):
    """Runs the program untraced (in its own directory) and then under
    `traced run`; asserts the traced run's stdout, stderr and exit status
    are the untraced ones (stderr plus traced run's summary line; a death
    by signal N is reported as 128+N by `traced run`, as a shell does).
    The untraced run's calls.log is discarded."""
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    plain_script = write_program(plain_dir, text)
    plain = run([sys.executable, plain_script] + list(args),
                env=clean_env(), cwd=plain_dir)

    script = write_program(tmp_path, text)
    out = tmp_path / "trace.json"
    traced = run([TRACED_BIN, "run", "-o", out, "--", sys.executable,
                  script] + list(args), env=daemon.env, cwd=tmp_path)
    expected_rc = plain.returncode if plain.returncode >= 0 else \
        128 - plain.returncode
    assert traced.returncode == expected_rc, (
        "untraced:\n%s\ntraced:\n%s" % (plain.describe(), traced.describe()))
    assert traced.stdout == plain.stdout, (
        "untraced:\n%s\ntraced:\n%s" % (plain.describe(), traced.describe()))
    line = summary_line(traced.stderr)
    assert line.startswith("traced: "), traced.describe()
    assert traced.stderr == plain.stderr + line.encode() + b"\n", (
        "untraced:\n%s\ntraced:\n%s" % (plain.describe(), traced.describe()))
    assert b"traced: warning" not in traced.stderr, traced.describe()
    return Run(plain, traced, script, load_trace(out))


def is_unfinished(e):
    return bool((e.get("args") or {}).get("unfinished"))


def thread_of(events, pid, name):
    """The one (pid, tid) on which slices named `name` were recorded."""
    keys = {(e["pid"], e["tid"]) for e in events
            if e.get("ph") == "X" and e["pid"] == pid and e["name"] == name}
    assert len(keys) == 1, "%s in pid %d on threads %r" % (name, pid, keys)
    return keys.pop()


def check_calls(events, pid, name, n):
    """Exactly n complete slices of `name` in pid, none unfinished."""
    mine = [e for e in events if e.get("ph") == "X" and e["pid"] == pid
            and e["name"] == name]
    done = [e for e in mine if not is_unfinished(e)]
    assert len(done) == n and len(mine) == n, (
        "pid %d: %d complete and %d unfinished slices of %s, expected %d "
        "complete" % (pid, len(done), len(mine) - len(done), name, n))


def check_died_open(events, key, open_names):
    """The thread `key` died inside `open_names` (outermost first, the last
    one being the call it died in): each is one unfinished slice, they nest
    in that order, and every unfinished slice of the thread ends at the
    thread's last recorded timestamp, the start of the call it died in."""
    mine = [e for e in events if e.get("ph") != "M"
            and (e["pid"], e["tid"]) == key]
    unfinished = [e for e in mine if e.get("ph") == "X" and is_unfinished(e)]
    names = [e["name"] for e in unfinished]
    for name in open_names:
        assert names.count(name) == 1, (
            "thread %r: expected one unfinished %s; unfinished slices: %r" %
            (key, name, names))
    last = max(end_ns(e) if e.get("ph") == "X" else start_ns(e)
               for e in mine)
    ends = {end_ns(e) for e in unfinished}
    assert ends == {last}, (
        "thread %r: unfinished slices end at %r, its last timestamp is %d" %
        (key, sorted(ends), last))
    chain = [next(e for e in unfinished if e["name"] == n) for n in open_names]
    for outer, inner in zip(chain, chain[1:]):
        assert start_ns(outer) <= start_ns(inner), (outer, inner)
    assert start_ns(chain[-1]) == last, (
        "the call %s the thread died in does not start at its last "
        "timestamp" % open_names[-1])


# Programs that must kill a process only once it blocks in time.sleep wait
# with this: a process that said it is about to sleep and is then in state
# S (interruptible sleep) is inside time.sleep, whose call is recorded.
WAIT_SLEEPING = """

def wait_sleeping(pid):
    import time
    for _ in range(6000):
        with open("/proc/%d/stat" % pid) as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
        if state == "S":
            return
        time.sleep(0.01)
    print("timed out waiting for", pid, "to sleep")
    sys.exit(2)
"""


def crash_program(body):
    """mp_helpers' PRELUDE (note(), LOG), wait_sleeping(), then body."""
    return PRELUDE + WAIT_SLEEPING + "\n\n" + textwrap.dedent(body).lstrip(
        "\n")


# ---- SIGKILL right after committing N calls ---------------------------------

SIGKILL_PROGRAM = crash_program("""
    import signal
    import time


    def f(i):
        return i


    def sleeper(conn):
        conn.send_bytes(b"ready")
        time.sleep(600)


    def victim(conn, n):
        for i in range(n):
            f(i)
        sleeper(conn)


    def main():
        note("main", os.getpid())
        method, n, where = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        if where == "main":
            # The program's main process itself.
            for i in range(n):
                f(i)
            os.kill(os.getpid(), signal.SIGKILL)
        ctx = multiprocessing.get_context(method)
        r, w = ctx.Pipe(duplex=False)
        p = ctx.Process(target=victim, args=(w, n))
        p.start()
        note("pid", "victim", p.pid)
        # The victim has committed its n calls when it says so.
        print("victim says", r.recv_bytes().decode())
        wait_sleeping(p.pid)
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        print("victim exitcode", p.exitcode)


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("method", METHODS)
def test_sigkilled_worker_keeps_its_committed_calls(daemon, tmp_path,
                                                    method):
    n = 1000
    r = run_both(daemon, tmp_path, SIGKILL_PROGRAM, [method, n, "child"])
    assert r.plain.returncode == 0, r.plain.describe()
    assert r.plain.stdout == b"victim says ready\nvictim exitcode -9\n"
    (victim,) = r.log.pids["victim"]
    f = pyname(r.script, "f")
    check_calls(r.events, victim, f, n)
    key = thread_of(r.events, victim, f)
    check_died_open(r.events, key, [pyname(r.script, "victim"),
                                    pyname(r.script, "sleeper"),
                                    "time.sleep"])
    # The rest of the program is whole: its processes are named and
    # parented, and every other thread's slices nest.
    Procs(r.events).check_well_formed(r.log.main)
    call_forest(r.events)


def test_sigkilled_main_process_keeps_its_committed_calls(daemon, tmp_path):
    n = 1000
    r = run_both(daemon, tmp_path, SIGKILL_PROGRAM, ["fork", n, "main"])
    assert r.plain.returncode == -9, r.plain.describe()
    main = r.log.main
    f = pyname(r.script, "f")
    check_calls(r.events, main, f, n)
    key = thread_of(r.events, main, f)
    check_died_open(r.events, key, [pyname(r.script, "main"), "posix.kill"])


# ---- os._exit ---------------------------------------------------------------

EXIT_PROGRAM = crash_program("""
    def f(i):
        return i


    def g(n, status):
        for i in range(n):
            f(i)
        os._exit(status)


    def worker(n):
        g(n, 0)


    def main():
        note("main", os.getpid())
        method, n, where = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        if where == "main":
            print("main exits", flush=True)
            g(n, 5)
        ctx = multiprocessing.get_context(method)
        p = ctx.Process(target=worker, args=(n,))
        p.start()
        note("pid", "worker", p.pid)
        p.join()
        print("worker exitcode", p.exitcode)


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("method", METHODS)
def test_os_exit_worker_keeps_its_calls(daemon, tmp_path, method):
    n = 1000
    r = run_both(daemon, tmp_path, EXIT_PROGRAM, [method, n, "child"])
    assert r.plain.returncode == 0, r.plain.describe()
    assert r.plain.stdout == b"worker exitcode 0\n"
    (worker,) = r.log.pids["worker"]
    f = pyname(r.script, "f")
    check_calls(r.events, worker, f, n)
    key = thread_of(r.events, worker, f)
    check_died_open(r.events, key, [pyname(r.script, "worker"),
                                    pyname(r.script, "g"), "posix._exit"])
    Procs(r.events).check_well_formed(r.log.main)


def test_os_exit_main_process_keeps_its_calls(daemon, tmp_path):
    n = 1000
    r = run_both(daemon, tmp_path, EXIT_PROGRAM, ["fork", n, "main"])
    assert r.plain.returncode == 5, r.plain.describe()
    assert r.plain.stdout == b"main exits\n"
    main = r.log.main
    f = pyname(r.script, "f")
    check_calls(r.events, main, f, n)
    key = thread_of(r.events, main, f)
    check_died_open(r.events, key, [pyname(r.script, "main"),
                                    pyname(r.script, "g"), "posix._exit"])


# ---- Pool.terminate() -------------------------------------------------------

TERMINATE_PROGRAM = crash_program("""
    import time


    def f(i):
        return i


    def block():
        note("pid", "blocked", os.getpid())
        time.sleep(600)


    def task(n):
        # n calls, each counted once it returned, then the task hangs.
        note("proc", os.getpid(), os.getppid(),
             multiprocessing.current_process().name)
        for i in range(n):
            f(i)
            note("call", "f", os.getpid())
        block()


    def spin(n):
        # Calls f for ever, counting each call once it returned.
        note("proc", os.getpid(), os.getppid(),
             multiprocessing.current_process().name)
        while True:
            f(n)
            note("call", "f", os.getpid())


    def log_lines():
        try:
            with open(LOG) as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []


    def wait_until(done):
        for _ in range(6000):
            if done(log_lines()):
                return
            time.sleep(0.01)
        print("timed out waiting for the workers")
        sys.exit(2)


    def spun_enough(lines, workers, calls):
        counts = {}
        for line in lines:
            if line.startswith("call f "):
                counts[line] = counts.get(line, 0) + 1
        return (len(counts) == workers and
                all(c >= calls for c in counts.values()))


    def main():
        note("main", os.getpid())
        method, kind = sys.argv[1], sys.argv[2]
        ctx = multiprocessing.get_context(method)
        pool = ctx.Pool(3)
        if kind == "blocked":
            # Three workers each take one task and hang in it; the other
            # tasks never start.
            pool.map_async(task, [5, 7, 9, 11, 13, 15], chunksize=1)
            wait_until(lambda lines: sum(
                1 for x in lines if x.startswith("pid blocked ")) == 3)
            for line in log_lines():
                if line.startswith("pid blocked "):
                    wait_sleeping(int(line.split()[2]))
        else:
            pool.map_async(spin, [1, 2, 3], chunksize=1)
            wait_until(lambda lines: spun_enough(lines, 3, 200))
        pool.terminate()
        pool.join()
        print("terminated")


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("method", METHODS)
def test_pool_terminate_with_tasks_in_progress(daemon, tmp_path, method):
    """Each worker is terminated inside a task, after a known number of
    completed calls: exactly those are in the trace, and the task is an
    unfinished slice."""
    r = run_both(daemon, tmp_path, TERMINATE_PROGRAM, [method, "blocked"])
    assert r.plain.returncode == 0, r.plain.describe()
    assert r.plain.stdout == b"terminated\n"
    counts = r.log.counts("f")
    blocked = r.log.pids["blocked"]
    assert sorted(blocked) == sorted(counts)
    assert sorted(counts.values()) == [5, 7, 9], counts
    f = pyname(r.script, "f")
    procs = Procs(r.events)
    procs.check_well_formed(r.log.main)
    for pid, n in counts.items():
        check_calls(r.events, pid, f, n)
        key = thread_of(r.events, pid, f)
        check_died_open(r.events, key, [pyname(r.script, "task"),
                                        pyname(r.script, "block"),
                                        "time.sleep"])
        assert procs.name(pid) == r.log.procs[pid][1]


def test_pool_terminate_while_calling(daemon, tmp_path):
    """Workers are terminated at arbitrary points of a loop that calls f
    and then counts the call: every counted call is in the trace, complete.
    At most one more can be there (it returned but was not counted yet),
    complete or, if the worker died inside it, unfinished."""
    r = run_both(daemon, tmp_path, TERMINATE_PROGRAM, ["fork", "spin"])
    assert r.plain.returncode == 0, r.plain.describe()
    assert r.plain.stdout == b"terminated\n"
    counts = r.log.counts("f")
    assert len(counts) == 3 and min(counts.values()) >= 200, counts
    f = pyname(r.script, "f")
    Procs(r.events).check_well_formed(r.log.main)
    for pid, n in counts.items():
        mine = [e for e in r.events if e.get("ph") == "X"
                and e["pid"] == pid and e["name"] == f]
        done = sum(1 for e in mine if not is_unfinished(e))
        cut = len(mine) - done
        assert (done, cut) in ((n, 0), (n + 1, 0), (n, 1)), (
            "pid %d counted %d calls; the trace has %d complete and %d "
            "unfinished" % (pid, n, done, cut))
        key = thread_of(r.events, pid, pyname(r.script, "spin"))
        spins = [e for e in r.events if e.get("ph") == "X"
                 and (e["pid"], e["tid"]) == key
                 and e["name"] == pyname(r.script, "spin")]
        assert len(spins) == 1 and is_unfinished(spins[0]), spins
        assert end_ns(spins[0]) == max(
            end_ns(e) if e.get("ph") == "X" else start_ns(e)
            for e in r.events
            if e.get("ph") != "M" and (e["pid"], e["tid"]) == key)


# ---- segfault ---------------------------------------------------------------

SEGV_PROGRAM = crash_program("""
    import ctypes
    import resource
    import subprocess


    def f(i):
        return i


    def crash():
        ctypes.string_at(0)


    def worker(n):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        note("pid", "crasher", os.getpid())
        for i in range(n):
            f(i)
        crash()


    def main():
        how, n = sys.argv[1], int(sys.argv[2])
        if how == "child":
            # The subprocess started below.
            worker(n)
        note("main", os.getpid())
        if how == "main":
            worker(n)
        elif how == "subprocess":
            done = subprocess.run([sys.executable, __file__, "child",
                                   str(n)])
            print("child returncode", done.returncode)
        else:
            p = multiprocessing.get_context(how).Process(target=worker,
                                                         args=(n,))
            p.start()
            p.join()
            print("child exitcode", p.exitcode)


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("how", ["fork", "spawn", "subprocess", "main"])
def test_segfault_keeps_committed_calls(daemon, tmp_path, how):
    n = 1000
    r = run_both(daemon, tmp_path, SEGV_PROGRAM, [how, n])
    if how == "main":
        assert r.plain.returncode == -11, r.plain.describe()
        assert r.plain.stdout == b""
    else:
        assert r.plain.returncode == 0, r.plain.describe()
        word = "returncode" if how == "subprocess" else "exitcode"
        assert r.plain.stdout == ("child %s -11\n" % word).encode()
    (crasher,) = r.log.pids["crasher"]
    f = pyname(r.script, "f")
    check_calls(r.events, crasher, f, n)
    key = thread_of(r.events, crasher, f)
    string_at = [e["name"] for e in r.events if e.get("ph") == "X"
                 and (e["pid"], e["tid"]) == key
                 and e["name"].startswith("string_at (")]
    assert len(string_at) == 1, string_at
    check_died_open(r.events, key, [pyname(r.script, "worker"),
                                    pyname(r.script, "crash"),
                                    string_at[0]])
    if how != "main":
        Procs(r.events).check_well_formed(r.log.main)

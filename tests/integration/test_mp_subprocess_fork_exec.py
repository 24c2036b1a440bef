"""Processes started without multiprocessing: nested `subprocess.run` of
Python scripts, a bare `os.fork()`, and `os.execv` of a Python script.
Each is in the trace with exact per-process call counts."""

from conftest import run_traced, write_program
from mp_helpers import (Procs, func_counts, func_names, func_unfinished,
                        program, read_log)

# prog.py (MainProcess) -> level1.py -> level2.py -> level3.py; each calls
# its own `work` a distinct number of times.
CALLS = {"prog.py": 2, "level1.py": 3, "level2.py": 5, "level3.py": 7}
CHAIN = ["prog.py", "level1.py", "level2.py", "level3.py"]


def level_program(me, nxt):
    body = """
        import subprocess


        def work(i):
            note("call", "work", os.getpid())
            return i


        def main():
            note("proc", os.getpid(), os.getppid(), %(me)r)
            if %(me)r == "prog.py":
                note("main", os.getpid())
            for i in range(%(calls)d):
                work(i)
            if %(nxt)r:
                here = os.path.dirname(os.path.abspath(__file__))
                subprocess.run([sys.executable, os.path.join(here, %(nxt)r)],
                               check=True)


        main()
    """ % {"me": me, "calls": CALLS[me], "nxt": nxt or ""}
    return program(body, with_work=False)


def run_nested(daemon, tmp_path):
    for me, nxt in zip(CHAIN[1:], CHAIN[2:] + [None]):
        write_program(tmp_path, level_program(me, nxt), me)
    t = run_traced(daemon, level_program("prog.py", "level1.py"), tmp_path)
    assert t.returncode == 0, t.result.describe()
    log = read_log(t.script)
    pid_of = {label: pid for pid, (_, label) in log.procs.items()}
    assert sorted(pid_of) == sorted(CHAIN), log.procs
    return t, log, pid_of


def test_mp_subprocess_nested_three_levels(daemon, tmp_path):
    t, log, pid_of = run_nested(daemon, tmp_path)
    events = t.events
    procs = Procs(events)
    procs.check_well_formed(log.main)
    assert pid_of["prog.py"] == log.main
    for me in CHAIN:
        # Each script's own `work`, only in its own process, exactly as
        # often as it was called.
        assert func_counts(events, tmp_path / me) == {pid_of[me]: CALLS[me]}, (
            me, procs.describe())
        assert func_unfinished(events, tmp_path / me) == []
    assert log.counts("work") == {pid_of[me]: CALLS[me] for me in CHAIN}
    # Names: the main process, then each script's basename.
    assert procs.name(pid_of["prog.py"]) == "MainProcess"
    for me in CHAIN[1:]:
        assert procs.name(pid_of[me]) == me, procs.describe()
    # The ppid labels chain, as the processes themselves saw it.
    for parent, child in zip(CHAIN, CHAIN[1:]):
        assert log.procs[pid_of[child]][0] == pid_of[parent]
        assert procs.ppid(pid_of[child]) == pid_of[parent], procs.describe()
    # Sorted parent first.
    order = [procs.sort_index(pid_of[me]) for me in CHAIN]
    assert order == sorted(order) and order[0] == 1, order


FORK_PROGRAM = program("""
    def body():
        note("main", os.getpid())
        for i in range(2):
            work(i)
        pid = os.fork()
        if pid == 0:
            note("proc", os.getpid(), os.getppid(), "child")
            for i in range(4):
                work(i)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        for i in range(3):
            work(i)
        sys.exit(0 if status == 0 else 9)


    body()
""")


def run_fork(daemon, tmp_path):
    t = run_traced(daemon, FORK_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    log = read_log(t.script)
    (child,) = log.procs
    return t, log, child


def test_mp_bare_fork(daemon, tmp_path):
    t, log, child = run_fork(daemon, tmp_path)
    main = log.main
    assert log.counts() == {main: 5, child: 4}
    events = t.events
    procs = Procs(events)
    procs.check_well_formed(main)
    # The child is its own process with its own calls: none of the
    # parent's calls before the fork are repeated in it, none of its own
    # land in the parent.
    assert func_counts(events, t.script) == {main: 5, child: 4}, (
        procs.describe())
    assert func_unfinished(events, t.script) == []
    assert procs.ppid(child) == main, procs.describe()
    assert procs.sort_index(child) > 1
    child_x = [e for e in events if e.get("ph") == "X" and e["pid"] == child]
    assert child_x, "the forked child recorded nothing"


def test_mp_bare_fork_child_named_by_script(daemon, tmp_path):
    """A forked child is neither the main process nor a multiprocessing
    process: like any other Python process it is named by its script."""
    t, log, child = run_fork(daemon, tmp_path)
    procs = Procs(t.events)
    assert procs.name(log.main) == "MainProcess"
    assert procs.name(child) == "prog.py", procs.describe()


EXEC_PROGRAM = program("""
    def before(i):
        note("call", "before", os.getpid())
        return i


    def main():
        note("main", os.getpid())
        for i in range(3):
            before(i)
        sys.stdout.flush()
        here = os.path.dirname(os.path.abspath(__file__))
        os.execv(sys.executable, [sys.executable,
                                  os.path.join(here, "after.py")])


    main()
""", with_work=False)

AFTER_PROGRAM = program("""
    def work(i):
        note("call", "work", os.getpid())
        return i


    note("proc", os.getpid(), os.getppid(), "after")
    for i in range(4):
        work(i)
""", with_work=False)


def run_exec(daemon, tmp_path):
    after = write_program(tmp_path, AFTER_PROGRAM, "after.py")
    t = run_traced(daemon, EXEC_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    log = read_log(t.script)
    main = log.main
    # Same process before and after the exec.
    assert list(log.procs) == [main], log.procs
    assert log.counts("before") == {main: 3}
    assert log.counts("work") == {main: 4}
    return t, log, after


def test_mp_execv_calls_before_and_after(daemon, tmp_path):
    t, log, after = run_exec(daemon, tmp_path)
    main = log.main
    events = t.events
    assert func_counts(events, t.script, "before") == {main: 3}
    assert func_counts(events, after, "work") == {main: 4}
    assert func_unfinished(events, t.script, "before") == []
    assert func_unfinished(events, after, "work") == []
    names_before = func_names(t.script, "before")
    names_after = func_names(after, "work")
    last_before = max(e["ts"] for e in events
                      if e.get("ph") == "X" and e["name"] in names_before)
    first_after = min(e["ts"] for e in events
                      if e.get("ph") == "X" and e["name"] in names_after)
    assert last_before < first_after


def test_mp_execv_process_metadata_once(daemon, tmp_path):
    """The exec'd program is the same process: one name (MainProcess), one
    sort index (1) and one ppid label for its pid."""
    t, log, after = run_exec(daemon, tmp_path)
    procs = Procs(t.events)
    procs.check_well_formed(log.main)

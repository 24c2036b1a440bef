"""fork() of a fork()ed child: every generation's calls are in the trace,
each under its own pid and nested as the program nested them.

A forked child reattaches (PROTOCOL.md section 6) with the session token
it inherited in libclient's memory; a second-generation child inherits it
from a child that itself reattached, so the token must survive the
reattach, not only the first fork."""

import pytest

from conftest import call_forest, parent_names, pyname, run_traced
from mp_helpers import Procs, program, read_log

# gen0 (the main process) forks gen1, which forks gen2; each calls its own
# genN_work from its own genN function a distinct number of times.  The
# fork in gen1 happens inside gen1(), so gen2's frames begun before its
# fork (gen1's) are not its own: its first recorded call is gen2().
FORK_OF_FORK = program("""
    def gen2_work(i):
        note("call", "gen2_work", os.getpid())
        return i


    def gen2():
        note("proc", os.getpid(), os.getppid(), "gen2")
        for i in range(4):
            gen2_work(i)


    def gen1_work(i):
        note("call", "gen1_work", os.getpid())
        return i


    def gen1():
        note("proc", os.getpid(), os.getppid(), "gen1")
        for i in range(3):
            gen1_work(i)
        pid = os.fork()
        if pid == 0:
            gen2()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        return status


    def gen0_work(i):
        note("call", "gen0_work", os.getpid())
        return i


    def gen0():
        note("main", os.getpid())
        for i in range(2):
            gen0_work(i)
        pid = os.fork()
        if pid == 0:
            os._exit(0 if gen1() == 0 else 8)
        _, status = os.waitpid(pid, 0)
        return status


    sys.exit(0 if gen0() == 0 else 9)
""", with_work=False)

EXPECTED = {"gen0": ("gen0_work", 2), "gen1": ("gen1_work", 3),
            "gen2": ("gen2_work", 4)}


@pytest.mark.parametrize("via", ["cli", "env"])
def test_fork_of_fork_grandchild_traced(daemon, tmp_path, via):
    t = run_traced(daemon, FORK_OF_FORK, tmp_path, via=via)
    assert t.returncode == 0, t.result.describe()
    log = read_log(t.script)
    by_role = {name: pid for pid, (_, name) in log.procs.items()}
    pids = {"gen0": log.main, "gen1": by_role["gen1"],
            "gen2": by_role["gen2"]}
    assert len(set(pids.values())) == 3, pids
    assert log.procs[pids["gen2"]][0] == pids["gen1"]
    assert log.procs[pids["gen1"]][0] == pids["gen0"]

    nodes = call_forest(t.events)
    for gen, (work, calls) in EXPECTED.items():
        wname, gname = pyname(t.script, work), pyname(t.script, gen)
        mine = [n for n in nodes if n.event["pid"] == pids[gen]]
        got = parent_names(mine, wname)
        assert got == {gname: calls}, (
            "%s (pid %d): %s called from %r, expected %d calls from %s\n%s\n"
            "daemon log:\n%s" % (gen, pids[gen], work, got, calls, gen,
                                 Procs(t.events).describe(), daemon.log()))
        # No generation's calls land under another's pid.
        for other, pid in pids.items():
            if other != gen:
                strays = [n for n in nodes
                          if n.event["pid"] == pid and n.name == wname]
                assert strays == [], (gen, other, strays)
    procs = Procs(t.events)
    assert procs.ppid(pids["gen1"]) == pids["gen0"], procs.describe()
    assert procs.ppid(pids["gen2"]) == pids["gen1"], procs.describe()

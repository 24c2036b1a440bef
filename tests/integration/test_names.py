"""Process names a user recognises: loky workers started by a child process
are LokyProcess-N (not loky's launcher module), a `python -c` process is
named by its code's first words."""

import sys

import pytest

from conftest import TRACED_BIN, load_trace, run, write_program
from mp_helpers import Procs


def names(events):
    return {e["pid"]: e["args"]["name"] for e in events
            if e.get("ph") == "M" and e.get("name") == "process_name"}


def test_loky_workers_of_a_child_process(daemon, tmp_path):
    pytest.importorskip("joblib")
    write_program(tmp_path, """
        from joblib import Parallel, delayed

        def sq(x):
            return x * x

        if __name__ == "__main__":
            print(sum(Parallel(n_jobs=2, backend="loky")(
                delayed(sq)(i) for i in range(20))))
    """, name="child.py")
    parent = write_program(tmp_path, """
        import subprocess
        import sys

        subprocess.run([sys.executable, "child.py"], check=True)
        subprocess.run([sys.executable, "-c", "x = 1; print(x)"], check=True)
    """, name="parent.py")
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, parent],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == b"2470\n1\n", r.describe()
    got = sorted(names(load_trace(tmp_path / "t.json")).values())
    assert "LokyProcess-1" in got and "LokyProcess-2" in got, got
    assert not any("popen_loky" in n for n in got), got
    assert "python -c x = 1; print(x)" in got, got
    assert "child.py" in got and "MainProcess" in got, got


def test_names_module_args_and_interpreter_options(daemon, tmp_path):
    """`python -m MOD args` is labelled by the module and its arguments;
    the interpreter's options (-E, -I, grouped -Ic, -X dev, -S with
    site.main()) do not change what a process is named by."""
    write_program(tmp_path, """
        import sys

        def mod_work():
            return len(sys.argv)

        mod_work()
    """, name="mymod.py")
    write_program(tmp_path, """
        import site

        site.main()  # -S: site-packages (and traced's hook) only now


        def site_work():
            return 1


        site_work()
    """, name="site_script.py")
    parent = write_program(tmp_path, """
        import subprocess
        import sys

        py = sys.executable
        for args in (["-m", "mymod", "alpha", "beta"],
                     ["-E", "-m", "mymod", "gamma"],
                     ["-I", "-c", "x = 2"],
                     ["-Ic", "x = 3"],
                     ["-X", "dev", "-c", "x = 4"],
                     ["-S", "site_script.py"],
                     ["-m", "mymod", "a-long-argument-list", "that", "goes",
                      "on", "and", "on"]):
            subprocess.run([py] + args, check=True)
    """, name="parent.py")
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, parent],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    got = sorted(names(load_trace(tmp_path / "t.json")).values())
    assert got == sorted([
        "MainProcess", "mymod alpha beta", "mymod gamma", "python -c x = 2",
        "python -c x = 3", "python -c x = 4", "site_script.py",
        "mymod a-long-argument-list that goes on\u2026"]), got
    assert b"never joined" not in r.stderr, r.describe()


# A process that joins the session and records nothing, spoken by hand
# (rawproto): a Python process cannot join without its start-up calls
# being recorded.  "ended": it leaves at once; "idle": it stays until the
# session ended.
RAW_MEMBER = """
    import os
    import sys
    import time

    sys.path.insert(0, %r)
    import rawproto as rp

    how = sys.argv[1]
    arena = rp.Arena()
    c = rp.Conn(os.environ["RAW_SOCKET"])
    t, _ = c.hello("producer", arena, name="raw-" + how)
    assert t == rp.WELCOME, t
    t, p = c.request(rp.SESSION_JOIN, {"token": os.environ["RAW_TOKEN"]})
    assert t == rp.SESSION_JOINED and p["active"], (t, p)
    print("joined", os.getpid(), flush=True)
    if how == "idle":
        sys.stdout.close()
        # Until the session ends: its state word is disabled then.
        while arena.state() & 1:
            time.sleep(0.01)
    c.close()
"""


def test_names_process_that_recorded_nothing(daemon, tmp_path):
    from conftest import REPO

    write_program(tmp_path, RAW_MEMBER % str(REPO / "tests/integration"),
                  name="raw_member.py")
    # The members get the session in other variables: with TRACED_SESSION
    # their interpreter would join (and record) by itself.
    parent = write_program(tmp_path, """
        import os
        import subprocess
        import sys

        env = {k: v for k, v in os.environ.items()
               if not k.startswith("TRACED_")}
        env.update(RAW_TOKEN=os.environ["TRACED_SESSION"],
                   RAW_SOCKET=os.environ["TRACED_SOCKET"])
        subprocess.run([sys.executable, "raw_member.py", "ended"],
                       check=True, env=env)
        idle = subprocess.Popen([sys.executable, "raw_member.py", "idle"],
                                stdout=subprocess.PIPE, env=env)
        print(idle.stdout.readline().decode().strip(), flush=True)
    """, name="parent.py")
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, parent],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    events = load_trace(tmp_path / "t.json")
    procs = Procs(events)
    ended, = procs.named("raw-ended")
    idle, = procs.named("raw-idle")
    labels = {p: procs._one(p, "process_labels") for p in (ended, idle)}
    assert labels[ended] == "ppid %d, traced: nothing recorded (it ended " \
        "before its first call)" % procs.ppid(ended), labels
    assert labels[idle] == "ppid %d, traced: nothing recorded (no call " \
        "before the session ended)" % procs.ppid(idle), labels
    # Processes that recorded say nothing of the kind.
    main = procs.named("MainProcess")[0]
    assert "nothing recorded" not in procs._one(main, "process_labels")

"""Process names a user recognises: loky workers started by a child process
are LokyProcess-N (not loky's launcher module), a `python -c` process is
named by its code's first words."""

import sys

import pytest

from conftest import TRACED_BIN, load_trace, run, write_program


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

"""Tracing never changes what a program prints or how it exits."""

import signal
import sys

import pytest

from conftest import (TRACED_BIN, clean_env, load_trace, named, pyname, run,
                      summary_line, write_program)

NOISY = """
    import subprocess
    import sys


    def main():
        data = sys.stdin.buffer.read()
        print("hello stdout")
        print("got %d bytes of stdin: %r" % (len(data), data[:20]))
        sys.stdout.write("\\u00fcn\\u00efc\\u00f6d\\u00e9 \\u2713\\n")
        print("hello stderr", file=sys.stderr)
        sys.stdout.flush()
        sys.stdout.buffer.write(bytes(range(256)))
        sys.stdout.buffer.flush()
        for i in range(3000):
            print(i, i * i, "x" * (i % 50))
        sys.stdout.flush()
        child = subprocess.run(
            [sys.executable, "-c",
             "import sys; print('child out'); "
             "print('child err', file=sys.stderr); sys.exit(4)"])
        print("child exited", child.returncode)
        sys.stderr.write("last stderr line\\n")
        sys.stdout.write("no newline at the end")
        sys.exit(3)


    main()
"""

STDIN = b"some input\n\x00\xffbinary\n" * 100


def untraced(script, tmp_path, input=b""):
    return run([sys.executable, script], env=clean_env(), cwd=tmp_path,
               input=input)


def test_output_and_status_unchanged_by_traced_run(daemon, tmp_path):
    script = write_program(tmp_path, NOISY)
    plain = untraced(script, tmp_path, STDIN)
    assert plain.returncode == 3, plain.describe()
    out = tmp_path / "trace.json"
    traced = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
                 env=daemon.env, cwd=tmp_path, input=STDIN)
    assert traced.returncode == 3, traced.describe()
    assert traced.stdout == plain.stdout
    # `traced run` adds exactly one line, its summary, after the program's
    # own stderr.
    assert traced.stderr.startswith(plain.stderr), traced.describe()
    extra = traced.stderr[len(plain.stderr):]
    assert extra.count(b"\n") == 1 and extra.endswith(b"\n"), extra
    assert str(out).encode() in extra
    # The parent and its child both recorded.
    events = load_trace(out)
    assert len(named(events, pyname(script, "main"))) == 1
    pids = {e["pid"] for e in events if e.get("ph") == "X"}
    assert len(pids) == 2, pids


def test_output_and_status_unchanged_by_env_attach(daemon, tmp_path):
    script = write_program(tmp_path, NOISY)
    plain = untraced(script, tmp_path, STDIN)
    out = tmp_path / "trace.json"
    traced = run([sys.executable, script],
                 env=dict(daemon.env, TRACED_OUTPUT=str(out)), cwd=tmp_path,
                 input=STDIN)
    assert traced.returncode == plain.returncode == 3, traced.describe()
    assert traced.stdout == plain.stdout
    assert traced.stderr == plain.stderr
    # The child joined the parent's session instead of creating its own.
    events = load_trace(out)
    assert len(named(events, pyname(script, "main"))) == 1
    pids = {e["pid"] for e in events if e.get("ph") == "X"}
    assert len(pids) == 2, pids


KILLED = """
    import os
    import signal
    import sys
    import time


    def die(signum):
        print("about to die", flush=True)
        os.kill(os.getpid(), signum)
        time.sleep(30)


    def main():
        die(int(sys.argv[1]))


    main()
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGTERM", "SIGKILL"])
def test_killed_by_signal_exits_128_plus_signal(daemon, tmp_path, signum):
    script = write_program(tmp_path, KILLED)
    plain = run([sys.executable, script, int(signum)], env=clean_env(),
                cwd=tmp_path)
    assert plain.returncode == -signum, plain.describe()
    out = tmp_path / "trace.json"
    traced = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
                  int(signum)], env=daemon.env, cwd=tmp_path)
    assert traced.returncode == 128 + signum, traced.describe()
    assert traced.stdout == plain.stdout == b"about to die\n"
    assert plain.stderr == b""
    assert traced.stderr.count(b"\n") == 1, traced.describe()
    assert str(out) in summary_line(traced.stderr)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL],
                         ids=["SIGTERM", "SIGKILL"])
def test_killed_program_leaves_unfinished_slices(daemon, tmp_path, signum):
    script = write_program(tmp_path, KILLED)
    out = tmp_path / "trace.json"
    traced = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
                  int(signum)], env=daemon.env, cwd=tmp_path)
    assert traced.returncode == 128 + signum, traced.describe()
    events = load_trace(out)
    for func in ("die", "main"):
        found = named(events, pyname(script, func))
        assert len(found) == 1, func
        assert found[0]["args"]["unfinished"] is True, found[0]
    # time.sleep was never reached.
    assert named(events, "time.sleep") == []

"""`traced run`: exit status, summary line, output file, private daemon,
usage errors."""

import datetime
import json
import os
import re
import sys

import pytest

from conftest import (TRACED_BIN, call_forest, clean_env, load_trace, named,
                      parent_names, parse_summary, processes_mentioning,
                      pyname, run, summary_line, terminate_pid, write_program)

PROGRAM = """
    import sys


    def f():
        return 1


    def g():
        for _ in range(100):
            f()


    g()
    sys.exit(int(sys.argv[1]))
"""


def check_program_trace(events, script):
    nodes = call_forest(events)
    assert parent_names(nodes, pyname(script, "f")) == {
        pyname(script, "g"): 100}


@pytest.mark.parametrize("status", [0, 5])
def test_run_exit_status_and_summary(daemon, tmp_path, status):
    script = write_program(tmp_path, PROGRAM)
    out = tmp_path / "out.json"
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
             status], env=daemon.env, cwd=tmp_path)
    assert r.returncode == status, r.describe()
    assert r.stdout == b""
    # The program prints nothing to stderr: all of it is the summary.
    assert r.stderr.count(b"\n") == 1, r.describe()
    line = summary_line(r.stderr)
    assert str(out) in line
    events = load_trace(out)
    check_program_trace(events, script)
    s = parse_summary(line)
    # Events are what the trace records; metadata (names) are not counted.
    assert s["event"] == len([e for e in events if e["ph"] != "M"]), line
    assert s["byte"] == os.path.getsize(out), line
    assert s["process"] == 1, line
    assert s["thread"] == 1, line
    assert s["dropped"] == 0, line


DEFAULT_NAME = re.compile(r"traced-(\d{8}-\d{6})\.json")


def test_run_default_output_name(daemon, tmp_path):
    script = write_program(tmp_path, PROGRAM)
    before = datetime.datetime.now().replace(microsecond=0)
    r = run([TRACED_BIN, "run", "--", sys.executable, script, 0],
            env=daemon.env, cwd=tmp_path)
    after = datetime.datetime.now()
    assert r.returncode == 0, r.describe()
    made = sorted(set(os.listdir(tmp_path)) - {script.name})
    assert len(made) == 1 and DEFAULT_NAME.fullmatch(made[0]), made
    stamp = datetime.datetime.strptime(
        DEFAULT_NAME.fullmatch(made[0]).group(1), "%Y%m%d-%H%M%S")
    assert before <= stamp <= after, (before, stamp, after)
    assert made[0] in summary_line(r.stderr)
    check_program_trace(load_trace(tmp_path / made[0]), script)


def test_trace_file_format(daemon, tmp_path):
    """One event per line in the object form; VizTracer-compatible fields."""
    script = write_program(tmp_path, PROGRAM)
    out = tmp_path / "out.json"
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script, 0],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    lines = out.read_text().splitlines()
    # Finished: the object form, one event per line (docs/daemon.md).
    assert lines[0] == '{"traceEvents":['
    assert lines[-1] == "]}"
    lines.pop()
    parsed = []
    for line in lines[1:]:
        text = line[:-1] if line.endswith(",") else line
        event = json.loads(text)
        assert isinstance(event, dict), line
        parsed.append(event)
    assert parsed == load_trace(out)

    pid = None
    for e in parsed:
        if e["ph"] == "X":
            assert isinstance(e["name"], str) and e["name"]
            assert isinstance(e["ts"], (int, float))
            assert isinstance(e["dur"], (int, float)) and e["dur"] >= 0
            assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
            assert e["cat"] in ("python", "c"), e
            pid = e["pid"]
    fs = named(parsed, pyname(script, "f"))
    assert len(fs) == 100
    # Nanosecond precision: microseconds keep their fractional part.
    assert any(ns != int(ns) for e in fs for ns in (e["ts"], e["dur"]))
    procs = [e for e in parsed
             if e["ph"] == "M" and e["name"] == "process_name"]
    assert [e["pid"] for e in procs] == [pid]
    assert isinstance(procs[0]["args"]["name"], str)
    assert procs[0]["args"]["name"]
    tids = {e["tid"] for e in parsed if e["ph"] == "X"}
    assert len(tids) == 1
    threads = [e for e in parsed
               if e["ph"] == "M" and e["name"] == "thread_name"]
    assert [(e["pid"], e["tid"]) for e in threads] == [(pid, tids.pop())]


def test_run_starts_private_daemon_when_none_listens(tmp_path,
                                                     private_socket):
    """With no daemon on TRACED_SOCKET, `traced run` starts one, which
    stays up for later runs and exits on SIGTERM."""
    script = write_program(tmp_path, PROGRAM)
    env = clean_env(TRACED_SOCKET=private_socket)
    daemons = []
    for i in range(2):
        out = tmp_path / ("out%d.json" % i)
        r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
                 i], env=env, cwd=tmp_path)
        assert r.returncode == i, r.describe()
        check_program_trace(load_trace(out), script)
        daemons.append(processes_mentioning(private_socket))
    assert len(daemons[0]) == 1, daemons
    assert daemons[1] == daemons[0], "the second run started another daemon"
    assert terminate_pid(daemons[0][0]), "the daemon ignored SIGTERM"


@pytest.mark.parametrize("args", [
    ["bogus"],
    [],
    ["run"],
    ["run", "--"],
    ["run", "-o", "x.json"],
    ["run", "-o", "x.json", "--"],
    ["run", "-q", "-m"],
], ids=["bogus", "no-command", "run", "run--", "run-o", "run-o--",
        "run-m-without-module"])
def test_bad_usage(tmp_path, private_socket, args):
    r = run([TRACED_BIN] + args, env=clean_env(TRACED_SOCKET=private_socket),
            cwd=tmp_path)
    assert r.returncode != 0, r.describe()
    assert b"usage" in r.stderr.lower(), r.describe()
    assert os.listdir(tmp_path) == []
    assert processes_mentioning(private_socket) == []


def test_no_autostart_runs_untraced(tmp_path):
    """TRACED_NO_AUTOSTART=1: with no daemon, `traced run` starts none; the
    command runs untraced with one warning and keeps its exit status."""
    from conftest import clean_env
    sock = tmp_path / "none" / "traced.sock"
    env = clean_env(TRACED_SOCKET=sock, TRACED_NO_AUTOSTART=1)
    out = tmp_path / "t.json"
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, "-c",
             "import sys; print('hi'); sys.exit(4)"], env=env, cwd=tmp_path)
    assert r.returncode == 4 and r.stdout == b"hi\n", r.describe()
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("traced: warning:"), lines
    assert not out.exists()
    assert not sock.parent.exists()  # no daemon made its directory


@pytest.mark.parametrize("form", ["dashdash", "plain"])
def test_run_options_end_at_the_command(daemon, tmp_path, form):
    """Options end at the first word that is not one (like time, nice,
    strace); "--" stays accepted.  The command's own options (-o, -q,
    --output) are the command's."""
    script = write_program(tmp_path, """
        import sys

        def f():
            return 1

        f()
        print(sys.argv[1:])
    """)
    out = tmp_path / "out.json"
    cmd = [TRACED_BIN, "run", "-o", out] + (["--"] if form == "dashdash"
                                             else [])
    r = run(cmd + [sys.executable, script, "-o", "x", "-q", "--output=y"],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"['-o', 'x', '-q', '--output=y']\n", r.describe()
    assert parse_summary(summary_line(r.stderr))["process"] == 1
    assert named(load_trace(out), pyname(script, "f"))
    assert sorted(os.listdir(tmp_path)) == ["out.json", script.name]


def test_run_script_and_module_with_tracers_python(daemon, tmp_path):
    """`traced run script.py ARGS` and `traced run -m module ARGS` run with
    the interpreter in $TRACED_PYTHON (set by the `traced` Python command
    to the one traced is installed in)."""
    script = write_program(tmp_path, """
        import sys

        def f():
            return 1

        f()
        print(sys.argv[1:])
    """)
    (tmp_path / "mymod.py").write_text(script.read_text())
    env = dict(daemon.env, TRACED_PYTHON=sys.executable,
               PATH="/usr/bin:/bin")   # no python3 of the .venv there
    r = run([TRACED_BIN, "run", "-o", "s.json", script.name, "a", "-o"],
            env=env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"['a', '-o']\n"
    assert named(load_trace(tmp_path / "s.json"), pyname(script, "f"))
    r = run([TRACED_BIN, "run", "-o", "m.json", "-m", "mymod", "b", "-q"],
            env=env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout == b"['b', '-q']\n"
    assert parse_summary(summary_line(r.stderr))["process"] == 1
    assert named(load_trace(tmp_path / "m.json"),
                 pyname(tmp_path / "mymod.py", "f"))


def empty_session_lines(r):
    lines = [ln for ln in r.stderr.decode().splitlines()
             if "no process joined the session" in ln]
    assert len(lines) == 1, r.describe()
    return lines[0]


def test_empty_session_not_python(daemon, tmp_path):
    r = run([TRACED_BIN, "run", "-q", "-o", "t.json", "true"],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    line = empty_session_lines(r)
    assert "true is not a Python interpreter" in line, line
    assert r.stderr.decode().count("\n") == 1, r.describe()


def test_empty_session_python_without_traced(daemon, tmp_path):
    """The command's interpreter cannot import traced: the message names
    it, both when it is the command and when a script's #! line names
    it."""
    import venv
    bare = tmp_path / "bare"
    venv.EnvBuilder(with_pip=False).create(bare)
    python = bare / "bin" / "python"
    script = tmp_path / "tool"
    script.write_text("#!/usr/bin/env python\nprint('ok')\n")
    script.chmod(0o755)
    env = dict(daemon.env, PATH="%s:/usr/bin:/bin" % (bare / "bin"))
    for cmd in ([str(python), "-c", "print('ok')"], ["./tool"]):
        r = run([TRACED_BIN, "run", "-o", "t.json"] + cmd, env=env,
                cwd=tmp_path)
        assert r.returncode == 0 and r.stdout == b"ok\n", r.describe()
        line = empty_session_lines(r)
        assert "cannot import the traced package" in line, line
        assert str(bare / "bin" / "python") in line, line
        assert parse_summary(summary_line(r.stderr))["process"] == 0


def test_traced_python_joins_no_message(daemon, tmp_path):
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, "-c", "1"],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert b"no process joined" not in r.stderr, r.describe()


@pytest.mark.parametrize("name", ["t.json", "t.pftrace"])
def test_big_trace_gets_a_note(daemon, tmp_path, name):
    """Past $TRACED_SIZE_NOTE bytes (default 256 MiB) one line before the
    summary says how big and what makes it smaller (.pftrace unless it is
    one already); below it, nothing."""
    script = write_program(tmp_path, PROGRAM)
    for limit, noted in (("1", True), ("", False)):
        env = dict(daemon.env, TRACED_SIZE_NOTE=limit)
        r = run([TRACED_BIN, "run", "-o", name, sys.executable, script, 0],
                env=env, cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        lines = r.stderr.decode().splitlines()
        assert parse_summary(lines[-1])["process"] == 1, r.describe()
        notes = [ln for ln in lines if "the trace is big" in ln]
        assert len(notes) == (1 if noted else 0), r.describe()
        if noted:
            assert re.search(r"\d+ bytes per event", notes[0]), notes
            assert ("pftrace" in notes[0]) == name.endswith(".json"), notes
            assert "--min-duration" in notes[0]

"""Python processes that never joined the session are named (issue 14):
a traced process tells the daemon which processes it starts
(traced/_children.py, PROCESS_INFO `child`); when the session ends, the
Python interpreters among them whose pid never joined are listed in its
summary, and `traced run`, the inline API and the pytest plugin print one
line for each.  A child that joined, and a start that failed, are not
named.  The wrapping changes nothing the program sees."""

import re
import subprocess
import sys

import pytest

from conftest import TRACED_BIN, load_trace, run, run_traced, write_program

LINE = re.compile(r"traced: pid (\d+) never joined the session: (\S+)"
                  r"(?: \((.*)\))? ran without traced(.*)$")


@pytest.fixture(scope="module")
def bare_python(tmp_path_factory):
    """The interpreter of a fresh venv without traced: it really lacks the
    package (checked)."""
    d = tmp_path_factory.mktemp("bare") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(d)],
                   check=True, timeout=120)
    python = d / "bin" / "python"
    r = subprocess.run([str(python), "-c", "import traced"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0, "the bare venv can import traced"
    return str(python)


def unjoined(stderr):
    """[(pid, interpreter, shown argv, rest of the line)] of the
    never-joined lines, in order."""
    out = []
    for line in stderr.decode(errors="replace").splitlines():
        m = LINE.match(line)
        if m:
            out.append((int(m.group(1)), m.group(2), m.group(3) or "",
                        m.group(4)))
    return out


def pids_in(events):
    return {e["pid"] for e in events if e.get("ph") == "X"}


PARENT = """
    import os
    import subprocess
    import sys

    BARE = sys.argv[1]


    def note(what, pid):
        print("pid-" + what, pid, flush=True)


    def main():
        # A Python without traced (a venv that lacks it): never joins.
        p = subprocess.Popen([BARE, "-c", "print('bare')"])
        p.wait()
        note("bare", p.pid)
        # The same interpreter as this one, with -S: no site-packages, so
        # traced's start-up hook never runs.
        p = subprocess.Popen([sys.executable, "-S", "-c", "print('nosite')"])
        p.wait()
        note("nosite", p.pid)
        # One that joins.
        p = subprocess.Popen([sys.executable, "-c", "print('joined')"])
        p.wait()
        note("joined", p.pid)
        # The same interpreter, given an environment without the session:
        # it cannot join whatever it has, so it is not named (its line
        # would wrongly tell the user to install traced there).
        p = subprocess.Popen([sys.executable, "-c", "print('noenv')"],
                             env={"PATH": os.environ["PATH"]})
        p.wait()
        note("noenv", p.pid)
        # -X as the last argument (its value missing: Python refuses it):
        # named, with the install advice.
        p = subprocess.Popen([BARE, "-X"], stderr=subprocess.DEVNULL)
        p.wait()
        note("xlast", p.pid)
        # A start that fails: no process, nothing to name.
        try:
            subprocess.run([os.path.join(os.path.dirname(BARE), "python9"),
                            "-c", "pass"])
        except FileNotFoundError as e:
            note("missing", e.errno)
        # Not Python at all.
        subprocess.run(["true"], check=True)


    main()
"""


def test_children_never_joined_named_by_traced_run(daemon, tmp_path,
                                                   bare_python):
    script = write_program(tmp_path, PARENT)
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, script,
             bare_python], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    got = dict(line[4:].split() for line in r.stdout.decode().splitlines()
               if line.startswith("pid-"))
    assert set(got) == {"bare", "nosite", "joined", "noenv", "xlast",
                        "missing"}, r.describe()
    lines = unjoined(r.stderr)
    assert [pid for pid, *_ in lines] == [int(got["bare"]),
                                         int(got["nosite"]),
                                         int(got["xlast"])], r.describe()
    pid, interp, shown, rest = lines[0]
    assert interp == bare_python and shown == "-c print('bare')", lines
    assert rest == "; install traced in that interpreter: %s -m pip " \
        "install traced" % bare_python, lines
    pid, interp, shown, rest = lines[1]
    assert interp == sys.executable and shown == "-S -c print('nosite')"
    assert rest.startswith(": -S leaves out site-packages"), lines
    pid, interp, shown, rest = lines[2]
    assert interp == bare_python and shown == "-X", lines
    assert rest.startswith("; install traced in that interpreter"), lines
    # The summary stays the last line, after them.
    text = r.stderr.decode().splitlines()
    assert text[-1].startswith("traced: 2 processes,"), r.describe()
    assert all(LINE.match(t) for t in text[-4:-1]), r.describe()
    events = load_trace(tmp_path / "t.json")
    assert int(got["joined"]) in pids_in(events)
    assert int(got["bare"]) not in pids_in(events)
    assert b"event=unjoined" in daemon.log().encode(), daemon.log()


def test_children_quiet_run_still_names_them(daemon, tmp_path, bare_python):
    script = write_program(tmp_path, """
        import subprocess
        import sys

        subprocess.run([sys.argv[1], "-c", "pass"], check=True)
    """)
    r = run([TRACED_BIN, "run", "-q", "-o", "t.json", sys.executable, script,
             bare_python], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert len(unjoined(r.stderr)) == 1, r.describe()
    assert b"processes," not in r.stderr, r.describe()


EXEC_AND_SPAWN = """
    import os
    import subprocess
    import sys

    BARE = sys.argv[1]
    kind = sys.argv[2]


    def main():
        if kind == "exec":
            sys.stdout.flush()
            os.execv(BARE, [BARE, "-c", "print('execd')"])
        elif kind == "exec-fails":
            try:
                os.execv(BARE + "-missing", [BARE, "-c", "pass"])
            except FileNotFoundError:
                print("exec failed")
        elif kind == "execlp":
            sys.stdout.flush()
            os.environ["PATH"] = os.path.dirname(BARE) + ":" + \\
                os.environ["PATH"]
            os.execlp("python", "python", "-c", "print('execlpd')")
        elif kind == "spawnv":
            rc = os.spawnv(os.P_WAIT, BARE, [BARE, "-c", "print('spawned')"])
            print("spawnv", rc)
        elif kind == "posix_spawn":
            pid = os.posix_spawn(BARE, [BARE, "-c", "print('ps')"],
                                 os.environ)
            os.waitpid(pid, 0)
            print("posix_spawn", pid)
        elif kind in ("shell", "bash"):
            # dash (/bin/sh here) forks the command, bash execs it.
            shell = "/bin/bash" if kind == "bash" else None
            subprocess.run("%s -c 'print(1)'" % BARE, shell=True, check=True,
                           executable=shell)
            subprocess.run("%s -c 'print(2)'" % sys.executable, shell=True,
                           check=True, executable=shell)
        elif kind == "many":
            for i in range(11):
                subprocess.run([sys.executable, "-S", "-c", "pass"],
                               check=True)


    main()
"""


@pytest.mark.parametrize("kind,named", [
    ("exec", 1), ("exec-fails", 0), ("execlp", 1), ("spawnv", 1),
    ("posix_spawn", 1), ("shell", 1), ("bash", 1)])
def test_children_exec_spawn_shell(daemon, tmp_path, bare_python, kind,
                                   named):
    script = write_program(tmp_path, EXEC_AND_SPAWN)
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, script,
             bare_python, kind], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    lines = unjoined(r.stderr)
    assert len(lines) == named, r.describe()
    if kind in ("shell", "bash"):
        # Named by the command's word for the interpreter, with the
        # shell's pid (dash forks it; bash execs it, keeping the pid); the
        # interpreter that joined, under either, is not named.
        assert lines[0][1] == bare_python, lines
        assert lines[0][2].startswith(
            "/bin/%s -c " % ("bash" if kind == "bash" else "sh")), lines
    elif named:
        # execlp finds `python` on PATH: the bare venv's.
        assert lines[0][1] == bare_python, lines
    if kind == "exec":
        assert r.stdout == b"execd\n", r.describe()
    if kind == "posix_spawn":
        assert lines[0][0] == int(r.stdout.split()[-1]), r.describe()


def test_children_cap_and_omitted(daemon, tmp_path, bare_python):
    script = write_program(tmp_path, EXEC_AND_SPAWN)
    r = run([TRACED_BIN, "run", "-o", "t.json", sys.executable, script,
             bare_python, "many"], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert len(unjoined(r.stderr)) == 8, r.describe()
    assert b"traced: 3 more Python processes never joined the session " \
        b"(not listed)\n" in r.stderr, r.describe()


INLINE = """
    import subprocess
    import sys

    import traced

    with traced.session(output="t.json") as s:
        subprocess.run([sys.argv[1], "-c", "pass"], check=True)
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    (pid, interp, argv), = s.summary.unjoined
    assert interp == sys.argv[1] and argv == (sys.argv[1], "-c", "pass"), \\
        s.summary
    assert s.summary.unjoined_omitted == 0
    assert s.summary.processes == 2, s.summary
    print("unjoined", pid)
"""


def test_children_inline_session(daemon, tmp_path, bare_python):
    script = write_program(tmp_path, INLINE)
    r = run([sys.executable, script, bare_python], env=daemon.env,
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    lines = unjoined(r.stderr)
    assert [pid for pid, *_ in lines] == [int(r.stdout.split()[-1])], \
        r.describe()


def test_children_env_session(daemon, tmp_path, bare_python):
    """TRACED_OUTPUT: the process creates the session; its end (at exit)
    names them too."""
    t = run_traced(daemon, """
        import subprocess
        import sys

        subprocess.run([sys.argv[1], "-c", "pass"], check=True)
    """, tmp_path, via="env", args=[bare_python])
    assert t.returncode == 0, t.result.describe()
    assert len(unjoined(t.stderr)) == 1, t.result.describe()


SUITE = """
    import subprocess
    import sys

    BARE = %r


    def test_bare():
        subprocess.run([BARE, "-c", "pass"], check=True)


    def test_joined():
        subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def test_children_pytest_plugin(daemon, tmp_path, bare_python):
    write_program(tmp_path, SUITE % bare_python, name="test_suite.py")
    r = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             "--traced=t.json", "test_suite.py"], env=daemon.env,
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    lines = unjoined(r.stderr)
    assert len(lines) == 1 and lines[0][1] == bare_python, r.describe()
    last = r.stderr.decode().splitlines()[-1]
    assert last.startswith("traced: 2 processes"), r.describe()


BEHAVIOUR = """
    import inspect
    import os
    import subprocess
    import sys

    import traced

    def facts():
        out = []
        p = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
        out.append(("rc", p.wait()))
        out.append(("out", subprocess.run(["echo", "hi"], capture_output=True,
                                          check=True).stdout))
        try:
            subprocess.Popen(["/nonexistent/prog"])
        except OSError as e:
            out.append(("err", type(e).__name__, e.errno, e.filename))
        try:
            subprocess.Popen(["true"], bogus=1)
        except TypeError as e:
            out.append(("typeerr", str(e)))
        try:
            os.execv("/nonexistent/prog", ["x"])
        except OSError as e:
            out.append(("execerr", type(e).__name__, e.errno, e.filename))
        try:
            os.execv("/bin/true")
        except TypeError as e:
            out.append(("exectype", str(e)))
        out.append(("sig", str(inspect.signature(subprocess.Popen))))
        out.append(("names", subprocess.Popen.__init__.__name__,
                    os.execv.__name__, os.posix_spawn.__name__))
        return out

    if sys.argv[1] == "traced":
        with traced.session(output="t.json"):
            got = facts()
    else:
        got = facts()
    print(repr(got))
"""


def test_children_wrappers_change_nothing(daemon, tmp_path):
    """Results, exceptions and signatures are those of the originals."""
    script = write_program(tmp_path, BEHAVIOUR)
    plain = run([sys.executable, script, "plain"], env=daemon.env,
                cwd=tmp_path)
    traced = run([sys.executable, script, "traced"], env=daemon.env,
                 cwd=tmp_path)
    assert plain.returncode == 0, plain.describe()
    assert traced.returncode == 0, traced.describe()
    assert traced.stdout == plain.stdout, (plain.describe(),
                                           traced.describe())
    assert b"never joined" not in traced.stderr, traced.describe()
    # The program's calls of Popen are in the trace as its own.
    events = load_trace(tmp_path / "t.json")
    facts = [e for e in events if e.get("ph") == "X"
             and e["name"].startswith("facts (")]
    inits = [e for e in events if e.get("ph") == "X"
             and e["name"].startswith("Popen.__init__ (")]
    assert len(facts) == 1 and len(inits) == 3, [e["name"] for e in events]
    assert not [e for e in events if "_traced_call_through" in
                e.get("name", "") or "_children.py" in e.get("name", "")]


def test_children_protocol_summary_keys(daemon):
    """At the wire: a creator announces children (PROCESS_INFO child) and
    its SESSION_SUMMARY lists the Python ones whose pid never joined, as
    maps of pid, path and argv; a summary without any has no such key
    (what a client that predates them reads is unchanged)."""
    import os

    import rawproto as rp

    def session(children):
        arena = rp.Arena()
        out = rp.memfd(0, seal=False, name="children-out")
        try:
            with rp.Conn(daemon.socket) as c:
                assert c.hello("producer", arena)[0] == rp.WELCOME
                assert c.create_session(out)[0] == rp.SESSION_CREATED
                for child in children:
                    c.send(rp.PROCESS_INFO, {"child": child})
                t, summary = c.request(rp.SESSION_END, {})
                assert t == rp.SESSION_SUMMARY, (t, summary)
                return summary
        finally:
            arena.close()
            os.close(out)

    plain = session([])
    assert "unjoined" not in plain and "unjoined_omitted" not in plain, plain
    children = [
        {"pid": 4000001, "path": "/usr/bin/python3", "argv": ["python3", "a"]},
        {"pid": 4000002, "path": "/bin/ls", "argv": ["ls"]},
        {"pid": 4000003, "path": "/bin/sh",
         "argv": ["sh", "-c", "exec python3.12 -u b.py"]},
        {"pid": 4000004, "path": "/usr/bin/python3", "argv": ["python3"],
         "failed": True},
    ] + [{"pid": 4000100 + i, "path": "python3", "argv": ["python3", "-S"]}
         for i in range(8)]
    summary = session(children)
    assert summary["unjoined"][:2] == [
        {"pid": 4000001, "path": "/usr/bin/python3",
         "argv": ["python3", "a"]},
        {"pid": 4000003, "path": "python3.12",
         "argv": ["sh", "-c", "exec python3.12 -u b.py"]}], summary
    assert len(summary["unjoined"]) == 8, summary
    assert summary["unjoined_omitted"] == 2, summary
    assert set(summary) >= {"processes", "threads", "events", "dropped",
                            "bytes", "path"}, summary

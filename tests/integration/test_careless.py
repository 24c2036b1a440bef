"""What a careless (or unlucky) user meets on a shared machine, each a
case of issue 15's Low list: an existing trace file a refused session must
not empty, a FIFO as the output, a session token one digit off.
docs/hostile.md, "Careless users"."""

import errno
import json
import os
import sys
import time

import rawproto as rp
from conftest import (TRACED_BIN, clean_env, load_trace, processes_mentioning,
                      run, terminate_pid, write_program)

PRECIOUS = "precious earlier trace, not to be emptied\n"


def hold_session(d):
    """A raw connection holding one open session of this uid (so that a
    daemon with --max-sessions-per-uid 1 refuses the next)."""
    c = rp.Conn(d.socket)
    out = rp.memfd(0, seal=False, name="held-output")
    t, p = c.hello("control")
    assert t == rp.WELCOME, (t, p)
    t, p = c.create_session(out)
    assert t == rp.SESSION_CREATED, (t, p)
    return c, out, p["token"]


def test_refused_session_leaves_the_existing_output(daemon_with, tmp_path):
    d = daemon_with("--max-sessions-per-uid", "1")
    c, held, _ = hold_session(d)
    try:
        out = tmp_path / "kept.json"
        out.write_text(PRECIOUS)
        prog = write_program(tmp_path, "print('ran')\n")
        r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, prog],
                env=d.env, cwd=tmp_path)
        assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
        assert b"refused the session" in r.stderr, r.describe()
        assert out.read_text() == PRECIOUS

        api = write_program(tmp_path, """
            import traced
            assert traced.start(output=%r) is False
            print("ran")
        """ % str(out), name="api.py")
        r = run([sys.executable, api], env=d.env, cwd=tmp_path)
        assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
        assert out.read_text() == PRECIOUS
    finally:
        c.close()
        os.close(held)


def test_accepted_session_replaces_a_longer_file(daemon, tmp_path):
    """Not truncating at open must not leave the old file's tail behind."""
    out = tmp_path / "long.json"
    out.write_text("x" * 1000000)
    prog = write_program(tmp_path, "print('ran')\n")
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, prog],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert "x" * 10 not in out.read_text()
    load_trace(out)


def test_fifo_output_is_refused_up_front(daemon, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    r = run([TRACED_BIN, "run", "-o", fifo, "--", "true"], env=daemon.env,
            cwd=tmp_path, timeout=20)
    assert r.returncode == 2, r.describe()
    assert b"FIFO" in r.stderr and b"regular files" in r.stderr, r.describe()


def test_a_token_one_digit_off_is_an_unknown_session(daemon):
    """A live token changed in its first, its last, or both digits names
    no session: SESSION_JOINED {active: false}, neither joined nor
    "another user's"."""
    c, held, token = hold_session(daemon)
    try:
        assert len(token) == 32
        flip = {x: "0" if x != "0" else "1" for x in "0123456789abcdef"}
        variants = [flip[token[0]] + token[1:], token[:-1] + flip[token[-1]],
                    flip[token[0]] + token[1:-1] + flip[token[-1]]]
        arena = rp.Arena()
        try:
            for v in variants:
                with rp.Conn(daemon.socket) as j:
                    t, p = j.hello("producer", arena)
                    assert t == rp.WELCOME, (t, p)
                    t, p = j.request(rp.SESSION_JOIN, {"token": v})
                    assert t == rp.SESSION_JOINED, (v, t, p)
                    assert p.get("active") is False, (v, p)
            with rp.Conn(daemon.socket) as j:
                t, p = j.hello("producer", arena)
                t, p = j.request(rp.SESSION_JOIN, {"token": token})
                assert t == rp.SESSION_JOINED and p.get("active") is True, p
        finally:
            arena.close()
    finally:
        c.close()
        os.close(held)


def test_log_file_symlink_is_not_followed(tmp_path):
    """A root daemon told to log to a name that is a symbolic link must
    not append to the file the link names."""
    target = tmp_path / "victim-file"
    target.write_text(PRECIOUS)
    link = tmp_path / "daemon.log"
    os.symlink(target, link)
    sock = tmp_path / "s.sock"
    r = run([TRACED_BIN, "serve", "--daemon", "--socket", sock,
             "--log-file", link, "--idle-exit", "1"],
            env=clean_env(), cwd=tmp_path, timeout=20)
    try:
        assert r.returncode != 0, r.describe()
        assert b"symbolic link" in r.stderr, r.describe()
        assert target.read_text() == PRECIOUS
    finally:
        for pid in processes_mentioning(str(sock)):
            terminate_pid(pid)


def test_bad_hellos_are_logged_a_burst_per_user(daemon):
    """A client that sends bad HELLOs in a loop gets an ERROR for each, and
    the log a burst of lines and one line saying the rest were held back
    (not one line per connection)."""
    n = 2000
    before = len(daemon.log().splitlines())
    start = time.monotonic()
    for _ in range(n):
        with rp.Conn(daemon.socket) as c:
            c.send(rp.HELLO, {"magic": "nope"})
            kind, code, _ = c.outcome()
            assert kind == "error" and code == errno.EPROTO, (kind, code)
    windows = int((time.monotonic() - start) / 10) + 1
    lines = daemon.log().splitlines()[before:]
    drops = [ln for ln in lines if "event=drop" in ln]
    limits = [ln for ln in lines if "event=limit" in ln
              and "what=refusal_log" in ln]
    # A burst of 200 lines per uid per 10 s window (daemon/lograte.h).
    assert 1 <= len(drops) <= 200 * windows, (len(drops), windows)
    assert 1 <= len(limits) <= 2 * windows, limits
    assert "uid=%d " % os.getuid() in limits[0], limits
    # A well-behaved session still works, and is logged.
    summary, events = rp.raw_session(daemon.socket)
    assert summary["events"] == 50, summary


def test_status_escapes_and_marks_client_paths(daemon, tmp_path):
    """A display path is whatever its client said: root's `traced status`
    shows it escaped and says where it came from."""
    out = rp.memfd(0, seal=False, name="escape-output")
    evil = "/tmp/x\x1b]0;owned\x07\nsession 99: owner root\x1b[2J\u009b1m"
    try:
        with rp.Conn(daemon.socket) as c:
            t, p = c.hello("control")
            t, p = c.create_session(out, path=evil)
            assert t == rp.SESSION_CREATED, (t, p)
            r = run([TRACED_BIN, "status", "--socket", daemon.socket],
                    env=clean_env(), cwd=tmp_path)
            assert r.returncode == 0, r.describe()
            text = r.stdout.decode()
            for bad in ("\x1b", "\x07", "\u009b"):
                assert bad not in text, text
            lines = [ln for ln in text.splitlines() if "session " in ln]
            assert len(lines) == 1, text
            assert "given by its client" in lines[0], lines
            assert "\\x1b]0;owned\\x07\\x0asession 99" in lines[0], lines
            assert "\\xc2\\x9b1m" in lines[0], lines
    finally:
        os.close(out)


def test_long_paths_do_not_hide_sessions(daemon, tmp_path):
    """60 sessions with 1000-byte display paths, then one more: the status
    reply bounds each path, so every session is listed."""
    conns, fds = [], []
    try:
        for i in range(61):
            c = rp.Conn(daemon.socket)
            conns.append(c)
            fd = rp.memfd(0, seal=False, name="long-%d" % i)
            fds.append(fd)
            c.hello("control")
            path = "/last" if i == 60 else "/" + ("p%02d" % i) * 333
            t, p = c.create_session(fd, path=path)
            assert t == rp.SESSION_CREATED, (i, t, p)
        r = run([TRACED_BIN, "status", "--socket", daemon.socket, "--json"],
                env=clean_env(), cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        st = json.loads(r.stdout)
        assert st["sessions_omitted"] == 0, st["sessions_omitted"]
        paths = [s["path"] for s in st["sessions"]]
        assert len(paths) == 61 and "/last" in paths
        assert all(len(p.encode()) <= 256 for p in paths), \
            max(len(p) for p in paths)
        assert all(p.endswith("...") for p in paths if p != "/last")
    finally:
        for c in conns:
            c.close()
        for fd in fds:
            os.close(fd)


def test_connection_limit_is_named_not_errno(daemon_with, tmp_path):
    """Over the per-user connection limit, the warning gives the daemon's
    reason, not "Too many open files"."""
    d = daemon_with("--max-conns-per-uid", "1")
    # The daemon may not have torn down its start-up probe's connection
    # yet: retry until this one is the user's only connection.
    for _ in range(100):
        held = rp.Conn(d.socket)
        try:
            t, p = held.hello("control")
        except (BrokenPipeError, ConnectionResetError) as e:
            # Refused while the probe still counted: closed at once.
            t, p = None, e
        if t == rp.WELCOME:
            break
        held.close()
        time.sleep(0.05)
    try:
        assert t == rp.WELCOME, (t, p)
        prog = write_program(tmp_path, "print('ran')\n")
        out = tmp_path / "t.json"
        for cmd, env in (
                ([TRACED_BIN, "run", "-o", out, "--", sys.executable, prog],
                 d.env),
                ([sys.executable, prog], dict(d.env, TRACED_OUTPUT=str(out)))):
            r = run(cmd, env=env, cwd=tmp_path)
            assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
            assert b"too many connections for this user" in r.stderr, \
                r.describe()
            assert b"Too many open files" not in r.stderr, r.describe()
    finally:
        held.close()


def test_deleted_output_is_reported(daemon, tmp_path):
    out = tmp_path / "gone.json"
    prog = write_program(tmp_path, """
        import os
        os.unlink(%r)
        print("ran")
    """ % str(out))
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, prog],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
    assert b"was deleted during the run" in r.stderr, r.describe()


def test_relative_socket_is_refused_with_a_reason(daemon, tmp_path):
    prog = write_program(tmp_path, "print('ran')\n")
    rel = os.path.relpath(daemon.socket, tmp_path)
    for cmd, extra in (
            ([TRACED_BIN, "run", "-o", "t.json", "--", sys.executable, prog],
             {}),
            ([sys.executable, prog], {"TRACED_OUTPUT": "t.json"}),
            ([TRACED_BIN, "status"], {})):
        env = dict(daemon.env, TRACED_SOCKET=rel, **extra)
        r = run(cmd, env=env, cwd=tmp_path)
        assert b"is relative" in r.stderr and b"absolute path" in r.stderr, \
            r.describe()


def test_invalid_tuning_variables_warn_once(daemon, tmp_path):
    """TRACED_RING_SLOTS, TRACED_ARENA_SIZE, TRACED_CLOCK and
    TRACED_EVAL_HOOK with invalid values: one warning each saying what is
    used instead (not once more in a child process), and the program is
    traced."""
    prog = write_program(tmp_path, """
        import os, subprocess, sys


        def parent_work():
            return 1


        parent_work()
        subprocess.run([sys.executable, "-c", "print('child ran')"],
                       check=True)
        print(os.environ.get("TRACED_RING_SLOTS"),
              os.environ.get("TRACED_ARENA_SIZE"))
    """)
    out = tmp_path / "t.json"
    env = dict(daemon.env, TRACED_OUTPUT=str(out), TRACED_RING_SLOTS="3000",
               TRACED_ARENA_SIZE="99999999999", TRACED_CLOCK="tsc",
               TRACED_EVAL_HOOK="off")
    r = run([sys.executable, prog], env=env, cwd=tmp_path)
    assert r.returncode == 0 and b"child ran" in r.stdout, r.describe()
    err = r.stderr.decode()
    for want in ("TRACED_RING_SLOTS=3000: not a power of two; using the "
                 "default 65536",
                 "TRACED_ARENA_SIZE=99999999999: outside 65536..268435456; "
                 "using 268435456",
                 "TRACED_CLOCK=tsc: not auto or monotonic; using auto",
                 "TRACED_EVAL_HOOK=off: not 0 or 1; using 1"):
        assert err.count(want) == 1, (want, err)
    assert b"None 268435456" in r.stdout, r.describe()
    names = [e.get("name", "") for e in load_trace(out)]
    assert any(n.startswith("parent_work") for n in names), names


def test_socket_in_a_missing_directory_is_named(tmp_path):
    """--socket (or TRACED_SOCKET) in a directory that does not exist: one
    line naming that directory, no daemon started for it (its log file
    could not exist either), and the program runs untraced."""
    missing = tmp_path / "no-such-dir"
    sock = str(missing / "traced.sock")
    prog = write_program(tmp_path, "print('ran')\n")
    r = run([TRACED_BIN, "run", "--socket", sock, "-o", tmp_path / "t.json",
             "--", sys.executable, prog], env=clean_env(), cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
    assert "directory %s does not exist" % missing in err, err
    assert "log file" not in err and not missing.exists(), err
    api = write_program(tmp_path, """
        import traced
        assert traced.start(output=%r) is False
        print("ran")
    """ % str(tmp_path / "api.json"), name="api.py")
    r = run([sys.executable, api], env=clean_env(TRACED_SOCKET=sock),
            cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 0 and b"ran" in r.stdout, r.describe()
    assert "directory %s does not exist" % missing in err, err
    assert not missing.exists()

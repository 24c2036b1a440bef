"""Operating the daemon: `traced status`, `traced stop`, system mode's
socket permissions, socket activation, the record rate limit, and the
rule that `traced run` never starts a private daemon in a shared place.
The two-user tests are in test_shared_machine.py."""

import grp
import json
import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from conftest import (TRACED_BIN, Daemon, TIMEOUT, clean_env, load_trace,
                      parse_summary, processes_mentioning, pyname, run,
                      short_tmpdir, slices, summary_line, terminate_pid,
                      write_program)

# A program that starts two Python children, waits until the three of
# them are recording, says "ready", and finishes when told (a line on
# stdin).  Every process calls work() `n` times.
HOLDER = """
    import subprocess
    import sys


    def work():
        return 1


    def main(n):
        for _ in range(n):
            work()
        if len(sys.argv) > 2:  # a child
            sys.stdout.write("child ready\\n")
            sys.stdout.flush()
            sys.stdin.readline()
            return 0
        kids = [subprocess.Popen([sys.executable, __file__, str(n), "child"],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE) for _ in range(2)]
        for k in kids:
            assert k.stdout.readline() == b"child ready\\n"
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()
        for k in kids:
            k.communicate(b"\\n")
        print("done")
        return 4


    sys.exit(main(int(sys.argv[1])))
"""


def status_json(socket_path, env=None):
    r = run([TRACED_BIN, "status", "--socket", socket_path, "--json"],
            env=env or clean_env(), cwd="/")
    assert r.returncode == 0, r.describe()
    return json.loads(r.stdout)


def start_holder(d, tmp_path, out, n=20):
    script = write_program(tmp_path, HOLDER, "holder.py")
    p = subprocess.Popen([TRACED_BIN, "run", "-o", str(out), "--",
                          sys.executable, str(script), str(n)],
                         env=d.env, cwd=tmp_path, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = p.stdout.readline()
    if line != b"ready\n":
        p.kill()
        out_, err = p.communicate()
        pytest.fail("the traced program did not start: %r %r %r\n%s" %
                    (line, out_, err, d.log()))
    return p, script


def test_status_shows_the_running_session(daemon, tmp_path):
    out = tmp_path / "held.json"
    p, script = start_holder(daemon, tmp_path, out)
    try:
        st = status_json(daemon.socket)
        me = pwd.getpwuid(os.getuid()).pw_name
        assert st["mode"] == "private"
        assert st["socket"] == daemon.socket
        assert st["daemon_pid"] == daemon.proc.pid
        assert st["daemon_uid"] == os.getuid()
        assert st["version"] == "0.1.0" and st["protocol"] == 1
        assert st["uptime_ns"] > 0
        assert st["sessions_total"] == 1
        assert len(st["sessions"]) == 1
        s = st["sessions"][0]
        assert s["owner"] == os.getuid() and s["owner_name"] == me
        # The parent and its two children, all still recording.
        assert s["processes"] == 3 and s["members"] == 3, s
        assert s["threads"] == 3, s
        assert s["path"] == str(out)
        assert s["dropped"] == 0
        assert "token" not in json.dumps(st)
        # The text form says the same on one line per session.
        r = run([TRACED_BIN, "status", "--socket", daemon.socket],
                env=clean_env(), cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        text = r.stdout.decode()
        assert "pid %d" % daemon.proc.pid in text
        assert "private mode" in text
        assert re.search(r"session %d: owner %s \(uid %d\), 3 processes "
                         r"\(3 connected\), 3 threads" %
                         (s["id"], re.escape(me), os.getuid()), text), text
        assert str(out) in text
    finally:
        stdout, stderr = p.communicate(b"\n", timeout=TIMEOUT)
    assert p.returncode == 4, stderr
    assert stdout == b"done\n"
    events = load_trace(out)
    assert len(slices(events, pyname(script, "work"))) == 60
    # Ended sessions are gone from the status.
    assert status_json(daemon.socket)["sessions"] == []


def test_status_and_stop_without_daemon(private_socket):
    for cmd in ("status", "stop"):
        r = run([TRACED_BIN, cmd, "--socket", private_socket],
                env=clean_env(), cwd="/")
        assert r.returncode == 1, r.describe()
        assert r.stdout == b""
        assert r.stderr.decode() == (
            "traced %s: no traced daemon reachable at %s (No such file or "
            "directory)\n" % (cmd, private_socket))
    # Neither starts a daemon.
    assert processes_mentioning(private_socket) == []


@pytest.mark.parametrize("args", [["--bogus"], ["extra"],
                                  ["--socket"], ["--system", "--socket", "x"]])
@pytest.mark.parametrize("cmd", ["status", "stop"])
def test_status_and_stop_usage(cmd, args):
    r = run([TRACED_BIN, cmd] + args, env=clean_env(), cwd="/")
    assert r.returncode == 2, r.describe()
    assert b"usage: traced %s" % cmd.encode() in r.stderr


STOPPED = """
    import sys


    def before():
        return 1


    def after():
        return 2


    for _ in range(100):
        before()
    sys.stdout.write("phase 1\\n")
    sys.stdout.flush()
    sys.stdin.readline()
    for _ in range(100):
        after()
    print("phase 2")
    sys.exit(7)
"""


def test_stop_during_a_run(tmp_path):
    """`traced stop` finalises the running session: the file is complete
    and holds what was recorded before; the program goes on untraced and
    exits with its own status; the daemon exits 0."""
    d = Daemon(short_tmpdir())
    d.start()
    try:
        script = write_program(tmp_path, STOPPED)
        out = tmp_path / "stopped.json"
        p = subprocess.Popen([TRACED_BIN, "run", "-o", str(out), "--",
                              sys.executable, str(script)], env=d.env,
                             cwd=tmp_path, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert p.stdout.readline() == b"phase 1\n"
        r = run([TRACED_BIN, "stop", "--socket", d.socket], env=clean_env(),
                cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        assert r.stdout.decode() == (
            "traced: stopped the daemon (pid %d) on %s; 1 session(s) "
            "finalised\n" % (d.proc.pid, d.socket))
        # `traced stop` returns once the daemon has exited.
        assert d.proc.wait(timeout=TIMEOUT) == 0, d.log()
        assert not os.path.exists(d.socket)
        # The file is complete (object form) before the program goes on.
        events = load_trace(out)
        assert len(slices(events, pyname(script, "before"))) == 100
        stdout, stderr = p.communicate(b"\n", timeout=TIMEOUT)
        assert p.returncode == 7, stderr
        assert stdout == b"phase 2\n"  # after the "phase 1" read above
        lines = stderr.decode().splitlines()
        assert lines[0] == ("traced: the daemon was stopped during the run: "
                            "the trace ends there and the rest of the run "
                            "was not traced"), stderr
        s = parse_summary(lines[-1])
        assert len(lines) == 2, stderr
        assert s["event"] == len([e for e in load_trace(out)
                                  if e["ph"] != "M"])
        assert s["byte"] == os.path.getsize(out)
        # Nothing after the stop is in the file, which did not change.
        assert load_trace(out) == events
        assert slices(events, pyname(script, "after")) == []
        log = d.log()
        assert re.search(r"INFO event=stop_request pid=\d+ uid=%d sessions=1"
                         % os.getuid(), log), log
        assert re.search(r"INFO event=session_end session=1 uid=%d "
                         r"processes=1 threads=1 events=\d+ dropped=0 " %
                         os.getuid(), log), log
    finally:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()


# A system daemon started as root serves as its service user unless told
# to keep root (cli/privdrop_unix.c); these tests run it as whoever runs them.
AS_ROOT = ["--allow-root"] if os.geteuid() == 0 else []


def system_daemon(top, name="sys", *extra):
    """A --system daemon whose socket, in top/name/, every user reaches."""
    os.chmod(top, 0o755)
    d = Daemon(top)
    d.socket = str(top / name / "traced.sock")
    d.log_path = top / (name + ".log")
    d.start("--system", *AS_ROOT, *extra)
    return d


def test_stop_by_another_user_is_refused():
    """Only the daemon's user and root may stop it: a peer of another uid
    gets ERROR EPERM and `traced stop` exits 3; the daemon goes on."""
    import rawproto as rp
    if os.getuid() != 0:
        pytest.skip("needs root to connect as another uid (CI runs as root)")
    top = short_tmpdir()
    d = system_daemon(top)
    try:
        pid = os.fork()
        if pid == 0:  # the child speaks as uid 65534
            code = 1
            try:
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
                with rp.Conn(d.socket) as c:
                    t, _ = c.hello("control")
                    t, p = c.request(rp.STOP, {})
                    if t == rp.ERROR and p["code"] == 1 and p["message"] == (
                            "only uid 0 (the daemon's user) and root may "
                            "stop the daemon") and c.wait_eof():
                        code = 0
                    else:
                        sys.stderr.write("got %r %r\n" % (t, p))
            except BaseException as e:
                sys.stderr.write("child failed: %r\n" % e)
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0, d.log()
        r = run(["setpriv", "--reuid", "65534", "--regid", "65534",
                 "--clear-groups", TRACED_BIN, "stop", "--socket", d.socket],
                env=clean_env(), cwd="/")
        assert r.returncode == 3, r.describe()
        assert r.stderr.decode() == (
            "traced stop: refused: only uid 0 (the daemon's user) and root "
            "may stop the daemon\n")
        assert d.proc.poll() is None
        lines = [l for l in d.log().splitlines() if "request=STOP" in l]
        assert len(lines) == 2, d.log()
        assert " WARN event=refuse pid=%d uid=65534 request=STOP " % pid \
            in lines[0], lines
        assert status_json(d.socket)["daemon_pid"] == d.proc.pid
    finally:
        d.stop()
        import shutil
        shutil.rmtree(top, ignore_errors=True)


def test_system_mode_socket_is_open_to_every_user():
    """--system: the socket's directory is created 0755 and the socket
    0666, so every local user may connect; --group makes them 0750/0660
    and owned by the group."""
    top = short_tmpdir()
    try:
        for group in (None, grp.getgrgid(os.getgid()).gr_name):
            sock = top / ("g" if group else "all") / "traced.sock"
            d = Daemon(top)
            d.socket = str(sock)
            d.log_path = top / ("g.log" if group else "all.log")
            args = ["--system"] + AS_ROOT + (["--group", group] if group
                                             else [])
            d.start(*args)
            try:
                st = os.stat(sock)
                dst = os.stat(sock.parent)
                assert stat.S_ISSOCK(st.st_mode)
                assert stat.S_IMODE(st.st_mode) == (0o660 if group else 0o666)
                assert stat.S_IMODE(dst.st_mode) == (0o750 if group else 0o755)
                if group:
                    assert st.st_gid == os.getgid()
                    assert dst.st_gid == os.getgid()
                status = status_json(str(sock))
                assert status["mode"] == "system"
                assert status["socket"] == str(sock)
                assert "mode=system" in d.log()
            finally:
                d.stop()
    finally:
        import shutil
        shutil.rmtree(top, ignore_errors=True)


def test_system_mode_refuses_a_directory_others_can_write():
    top = short_tmpdir()
    try:
        (top / "open").mkdir()
        os.chmod(top / "open", 0o777)
        r = run([TRACED_BIN, "serve", "--system"] + AS_ROOT + ["--socket",
                 str(top / "open" / "traced.sock")], env=clean_env(),
                cwd="/")
        assert r.returncode == 1, r.describe()
        assert b"event=error path=%s reason=\"the socket directory must be" \
            % str(top / "open").encode() in r.stderr, r.describe()
        assert not os.path.exists(top / "open" / "traced.sock")
    finally:
        import shutil
        shutil.rmtree(top, ignore_errors=True)


def test_serve_usage_errors():
    for args in (["--group", "root"], ["--system", "--group", "no-such-grp"],
                 ["--max-record-rate-per-uid", "-1"], ["--threads", "0"],
                 ["--threads", "257"], ["--threads", "two"],
                 # Once accepted, keeping the low 32 bits (65536 here).
                 ["--max-frame-bytes", str(2**32 + 65536)],
                 ["--max-frame-bytes", "4095"], ["--max-frame-bytes", "65537"]):
        r = run([TRACED_BIN, "serve"] + args, env=clean_env(), cwd="/")
        assert r.returncode == 2, r.describe()
        assert b"usage: traced serve" in r.stderr


def test_socket_activation(tmp_path):
    """Started the way systemd starts a socket-activated service (the
    listening socket as descriptor 3, LISTEN_PID and LISTEN_FDS set), the
    daemon serves that socket and leaves its path alone."""
    top = short_tmpdir()
    path = str(top / "activated.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    lsock.bind(path)
    lsock.listen(16)
    log = open(top / "daemon.log", "wb")

    def as_fd3():
        os.dup2(lsock.fileno(), 3)

    # The shell's $$ is the daemon's pid after exec, as LISTEN_PID must be.
    d = subprocess.Popen(
        ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@"', "sh",
         TRACED_BIN, "serve", "--system"] + AS_ROOT,
        env=clean_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        preexec_fn=as_fd3, pass_fds=(3,), cwd="/")
    lsock.close()
    try:
        script = write_program(tmp_path, """
            def f():
                return 1


            for _ in range(10):
                f()
        """)
        out = tmp_path / "act.json"
        r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
                env=clean_env(TRACED_SOCKET=path, TRACED_NO_AUTOSTART=1),
                cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        assert out.exists(), r.describe()
        assert len(slices(load_trace(out), pyname(script, "f"))) == 10
        st = status_json(path)
        assert st["daemon_pid"] == d.pid and st["socket"] == path
        d.send_signal(signal.SIGTERM)
        assert d.wait(timeout=TIMEOUT) == 0
        text = (top / "daemon.log").read_text()
        assert re.search(r"event=listen socket=%s mode=system activated=1 "
                         % re.escape(path), text), text
        # systemd owns the path: the daemon neither removed it nor locked.
        assert os.path.exists(path)
        assert not os.path.exists(path + ".lock")
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
        log.close()
        import shutil
        shutil.rmtree(top, ignore_errors=True)


def test_no_private_daemon_in_a_shared_place(tmp_path):
    """`traced run` with TRACED_SOCKET in a directory another user owns (a
    system daemon's place) that nobody serves: one warning, the program
    runs untraced with its exit status, and no daemon is started."""
    if os.getuid() == 0:
        shared = short_tmpdir()
        os.chown(shared, 65534, 65534)
    else:
        shared = None
    try:
        place = str(shared) if shared else "/"
        sock = os.path.join(place, "traced-test-nobody-serves.sock")
        script = write_program(tmp_path, """
            import sys
            print("untraced")
            sys.exit(6)
        """)
        out = tmp_path / "never.json"
        r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
                env=clean_env(TRACED_SOCKET=sock), cwd=tmp_path)
        assert r.returncode == 6, r.describe()
        assert r.stdout == b"untraced\n"
        assert r.stderr.decode() == (
            "traced: warning: cannot reach the traced daemon at %s (No such "
            "file or directory); running untraced\n" % sock)
        assert processes_mentioning(sock) == []
        assert not os.path.exists(sock)
    finally:
        if shared:
            import shutil
            shutil.rmtree(shared, ignore_errors=True)


RATE = """
    import sys
    import traced


    def f():
        return 1


    with traced.session(output=sys.argv[1]) as s:
        for _ in range(300000):
            f()
    print(s.summary.events, s.summary.dropped)
"""


def test_record_rate_limit_drops_are_counted(daemon_with, tmp_path):
    """A user over --max-record-rate-per-uid loses events, and every lost
    event is counted: in the summary, in the process label and thread
    name, with one log line naming the user.  Nothing is lost silently:
    calls kept plus calls dropped is what the program made."""
    d = daemon_with("--max-record-rate-per-uid", 5000)
    script = write_program(tmp_path, RATE)
    out = tmp_path / "rate.json"
    r = run([sys.executable, script, out],
            env=dict(d.env, TRACED_ON_FULL="drop", TRACED_FULL_WAIT_MS="0",
                     TRACED_RING_SLOTS="1024"),
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    events = load_trace(out)
    kept = len(slices(events, pyname(script, "f")))
    summary_events, dropped = map(int, r.stdout.split())
    assert dropped > 0 and kept < 300000
    # A dropped call is two dropped records (its enter and its exit),
    # except a call whose exit alone was dropped: it is kept, unfinished.
    unfinished = [e for e in slices(events, pyname(script, "f"))
                  if e.get("args", {}).get("unfinished")]
    assert 2 * (300000 - kept) + len(unfinished) == dropped, (
        kept, len(unfinished), dropped)
    names = [e for e in events if e.get("ph") == "M" and
             e["name"] == "thread_name" and e["pid"] == r_pid(events)]
    assert sum(e["args"].get("dropped", 0) for e in names) == dropped
    labels = [e["args"]["labels"] for e in events
              if e.get("ph") == "M" and e["name"] == "process_labels"]
    assert any("traced: %d events dropped" % dropped in l for l in labels)
    lines = [l for l in d.log().splitlines() if "what=record_rate" in l]
    assert lines and all(" WARN event=limit uid=%d what=record_rate "
                         "limit=5000 " % os.getuid() in l for l in lines)


def r_pid(events):
    pids = {e["pid"] for e in events if e.get("ph") == "X"}
    assert len(pids) == 1
    return pids.pop()

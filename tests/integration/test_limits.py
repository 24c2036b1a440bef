"""Per-user limits of `traced serve`: a peer over a limit gets a clear
refusal with one log line naming it, and everyone else goes on."""

import os
import socket
import struct
import sys

from conftest import TRACED_BIN, load_trace, run, slices, write_program

PROGRAM = """
    import sys


    def f():
        return 1


    for _ in range(50):
        f()
    print("done")
    sys.exit(3)
"""


def traced_run(d, tmp_path, out, env=None):
    script = write_program(tmp_path, PROGRAM)
    return run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
               env=env or d.env, cwd=tmp_path), script


def log_lines(d, text):
    return [line for line in d.log().splitlines() if text in line]


def hello(sock):
    """Sends a control HELLO; True when the daemon welcomes it."""
    import msgpack
    body = msgpack.packb({"magic": "traced", "version": 1, "role": "control",
                          "pid": os.getpid()})
    sock.sendall(struct.pack("<IHH", len(body), 1, 0) + body)
    sock.settimeout(10)
    head = b""
    while len(head) < 8:
        chunk = sock.recv(8 - len(head))
        if not chunk:
            return False
        head += chunk
    length, mtype, _ = struct.unpack("<IHH", head)
    return mtype == 2


def test_connections_per_uid(daemon_with, tmp_path):
    d = daemon_with("--max-conns-per-uid", 3)
    held = []
    try:
        # The fixture's readiness probe may still count for a moment, so
        # take the three allowed connections as soon as they are welcome.
        for _ in range(100):
            if len(held) == 3:
                break
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(d.socket)
            if hello(s):
                held.append(s)
            else:
                s.close()
        assert len(held) == 3, d.log()
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.connect(d.socket)
        extra.settimeout(10)
        # Refused: an ERROR frame (EMFILE) then end of stream.
        data = b""
        while True:
            chunk = extra.recv(4096)
            if not chunk:
                break
            data += chunk
        extra.close()
        length, mtype, flags = struct.unpack("<IHH", data[:8])
        assert mtype == 15 and flags == 0 and len(data) == 8 + length
        lines = log_lines(d, "too many connections for this user")
        assert lines, d.log()
        assert all("pid=%d uid=%d" % (os.getpid(), os.getuid()) in line
                   for line in lines), d.log()
    finally:
        for s in held:
            s.close()
    # Once the daemon has seen them go (a new connection is welcome again),
    # a traced program is served normally.
    import time
    for _ in range(200):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(d.socket)
        welcome = hello(probe)
        probe.close()
        if welcome:
            break
        time.sleep(0.05)
    time.sleep(0.1)  # and the probe's own close
    out = tmp_path / "t.json"
    r, script = traced_run(d, tmp_path, out)
    assert r.returncode == 3 and r.stdout == b"done\n", r.describe()
    assert len(slices(load_trace(out), "f (")) == 50


def test_sessions_per_uid(daemon_with, tmp_path):
    """With one session allowed, a second concurrent session is refused:
    that program runs untraced with one warning and its exit status; the
    first session's file is complete and correct."""
    d = daemon_with("--max-sessions-per-uid", 1)
    holder = write_program(tmp_path, """
        import sys, traced


        def f():
            return 1


        with traced.session(output=sys.argv[1]):
            for _ in range(20):
                f()
            sys.stdout.write("ready\\n")
            sys.stdout.flush()
            sys.stdin.readline()
    """, name="holder.py")
    import subprocess
    p = subprocess.Popen([sys.executable, holder, tmp_path / "first.json"],
                         env=d.env, cwd=tmp_path, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready\n"
        second = tmp_path / "second.json"
        r, _ = traced_run(d, tmp_path, second)
        assert r.returncode == 3 and r.stdout == b"done\n", r.describe()
        warnings = [l for l in r.stderr.decode().splitlines()
                    if l.startswith("traced:")]
        assert len(warnings) == 1, r.describe()
        assert "refused the session" in warnings[0]
        assert len(log_lines(d, "session")) >= 1
    finally:
        out, err = p.communicate(b"\n", timeout=60)
    assert p.returncode == 0, err
    assert err == b""
    assert len(slices(load_trace(tmp_path / "first.json"), "f (")) == 20


def test_ring_size_limit(daemon_with, tmp_path):
    """A ring larger than the daemon allows is refused with a log line;
    the program's output and exit status are unchanged."""
    d = daemon_with("--max-ring-slots", 1024)
    env = dict(d.env, TRACED_RING_SLOTS="4096")
    out = tmp_path / "t.json"
    r, _ = traced_run(d, tmp_path, out, env=env)
    assert r.returncode == 3 and r.stdout == b"done\n", r.describe()
    lines = log_lines(d, "exceeds the limit of 1024")
    assert len(lines) == 1, d.log()
    assert "uid=%d" % os.getuid() in lines[0]
    # The refused process recorded nothing into the file; it is complete.
    assert slices(load_trace(out), "f (") == []


def test_frame_size_limit(daemon_with, tmp_path):
    """--max-frame-bytes lowers the largest control message accepted: a
    larger frame ends that connection with EMSGSIZE and one log line; a
    traced program still runs and is traced."""
    import msgpack
    d = daemon_with("--max-frame-bytes", 4096)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    body = msgpack.packb({"magic": "traced", "version": 1, "role": "control",
                          "pid": os.getpid(), "argv": ["x" * 5000]})
    s.sendall(struct.pack("<IHH", len(body), 1, 0) + body)
    s.settimeout(10)
    data = b""
    try:
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        pass  # closed with our frame unread: the ERROR may be lost with it
    s.close()
    if data:
        length, mtype, _ = struct.unpack("<IHH", data[:8])
        assert mtype == 15
        reply = msgpack.unpackb(data[8:8 + length])
        assert reply["code"] == 90  # EMSGSIZE
    lines = log_lines(d, "exceeds the 4096-byte limit")
    assert len(lines) == 1, d.log()
    assert "pid=%d uid=%d" % (os.getpid(), os.getuid()) in lines[0]
    out = tmp_path / "t.json"
    r, _ = traced_run(d, tmp_path, out)
    assert r.returncode == 3 and r.stdout == b"done\n", r.describe()
    assert len(slices(load_trace(out), "f (")) == 50


def test_silent_client_is_dropped(daemon_with, tmp_path):
    """A client that connects and never says HELLO is dropped after
    --hello-timeout with ETIMEDOUT and one log line naming it."""
    import msgpack
    d = daemon_with("--hello-timeout", 1)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(d.socket)
    s.settimeout(30)
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    length, mtype, _ = struct.unpack("<IHH", data[:8])
    assert mtype == 15
    assert msgpack.unpackb(data[8:8 + length])["code"] == 110  # ETIMEDOUT
    lines = log_lines(d, "no HELLO within 1 s")
    assert len(lines) == 1, d.log()
    assert "pid=%d uid=%d" % (os.getpid(), os.getuid()) in lines[0]
    out = tmp_path / "t.json"
    r, _ = traced_run(d, tmp_path, out)
    assert r.returncode == 3, r.describe()
    assert len(slices(load_trace(out), "f (")) == 50


def wait_stopped(pid, timeout=20):
    """Waits until every thread of process `pid` is stopped (SIGSTOP)."""
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = []
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/stat" % (pid, tid)) as fh:
                    states.append(fh.read().rsplit(")", 1)[1].split()[0])
            except OSError:
                pass
        if states and all(st in ("T", "t") for st in states):
            return
        time.sleep(0.005)
    raise AssertionError("process %d did not stop within %d s" %
                         (pid, timeout))


def test_hello_timeout_does_not_count_a_stopped_daemon(daemon_with):
    """The HELLO timeout measures the peer's silence, not the daemon's: a
    client whose HELLO reached the socket before the daemon was stopped
    for three times --hello-timeout is welcomed when it continues, not
    dropped for a silence that was the daemon's own."""
    import signal
    import time
    d = daemon_with("--hello-timeout", 1, "-v")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(d.socket)
        # The daemon accepted it (its clock for this peer started).
        tag = "event=connect pid=%d " % os.getpid()
        deadline = time.monotonic() + 20
        while not log_lines(d, tag) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert log_lines(d, tag), d.log()
        d.proc.send_signal(signal.SIGSTOP)
        try:
            # Every thread stopped before the HELLO is sent: the loop's
            # wait ends with EINTR on SIGCONT, not with this socket ready,
            # so the daemon's timers run before it reads anything.
            wait_stopped(d.proc.pid)
            import msgpack
            body = msgpack.packb({"magic": "traced", "version": 1,
                                  "role": "control", "pid": os.getpid()})
            s.sendall(struct.pack("<IHH", len(body), 1, 0) + body)
            time.sleep(3)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        s.settimeout(20)
        head = b""
        while len(head) < 8:
            chunk = s.recv(8 - len(head))
            assert chunk, d.log()
            head += chunk
        length, mtype, _ = struct.unpack("<IHH", head)
        assert mtype == 2, (mtype, d.log())  # WELCOME, not ERROR
        assert not log_lines(d, "no HELLO within"), d.log()
    finally:
        s.close()

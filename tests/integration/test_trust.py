"""A client trusts nothing it did not make: two real users (created here
with useradd, their programs run with setpriv), a victim A and a hostile B
who gets to /tmp first.  B squats A's default socket directory
(/tmp/traced-<uid of A>: XDG_RUNTIME_DIR is unset), with and without a
listener, or as a symbolic link; A leaves a directory open to others; B
listens on a socket A was pointed at.  A's `traced run`, `traced status`
and auto-attached Python processes never send B anything, say why in one
line naming the uid, and run A's program untraced with its exit status.

These tests need root (to create users and switch to them) and say so
when skipped; CI runs as root.  docs/hostile.md, "Who may serve a
client"."""

import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import TRACED_BIN, load_trace, run, terminate_pid

PATH = "/usr/local/bin:/usr/bin:/bin"

# The test users cannot run the project's interpreter (it may live under
# /root); they run the system's Python of the same minor version with the
# project's site-packages added as a site directory, whose .pth hook then
# attaches the program exactly as an installed package would.
SYSTEM_PYTHON = "/usr/bin/python3"
SITE = next(p for p in sys.path if p.endswith("site-packages")
            and os.path.exists(os.path.join(p, "traced-attach.pth")))


def python(prog):
    """argv that runs `prog` as a user's auto-attached Python program."""
    return [SYSTEM_PYTHON, "-c",
            "import site, sys; site.addsitedir(%r); sys.argv = [%r]; "
            "exec(compile(open(%r).read(), %r, 'exec'))"
            % (SITE, str(prog), str(prog), str(prog))]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="the trust tests create Unix users and switch to them: they "
           "need root (CI runs as root)")
needs_python = pytest.mark.skipif(
    not os.path.exists(SYSTEM_PYTHON) or subprocess.run(
        [SYSTEM_PYTHON, "-c", "import sys; sys.exit(sys.version_info[:2] "
         "!= %r)" % (tuple(sys.version_info[:2]),)]).returncode != 0,
    reason="the test users need %s of this Python's version" % SYSTEM_PYTHON)
pytestmark = [needs_root, needs_python]


class User:
    def __init__(self, name):
        self.name = name
        pw = pwd.getpwnam(name)
        self.uid, self.gid, self.home = pw.pw_uid, pw.pw_gid, Path(pw.pw_dir)
        self.default_dir = Path("/tmp/traced-%d" % self.uid)

    def cmd(self, argv, **env):
        """argv as this user, umask 077, with a clean environment: no
        XDG_RUNTIME_DIR, so the default socket is under /tmp."""
        e = ["env", "-i", "PATH=%s" % PATH, "HOME=%s" % self.home,
             "LANG=C.UTF-8"] + ["%s=%s" % kv for kv in env.items()]
        return ["setpriv", "--reuid", self.name, "--regid", self.name,
                "--init-groups", "--", "sh", "-c", 'umask 077; exec "$@"',
                "sh"] + e + [str(a) for a in argv]

    def run(self, argv, **env):
        return run(self.cmd(argv, **env), env={"PATH": PATH}, cwd=self.home)

    def write(self, name, text):
        path = self.home / name
        path.write_text(text)
        os.chown(path, self.uid, self.gid)
        return path


def _sweep(u):
    """Ends what a test left running as `u` (processes these tests
    started) and removes its default socket directory."""
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and os.stat("/proc/" + entry).st_uid == u.uid:
                terminate_pid(int(entry))
        except OSError:
            pass
    if u.default_dir.is_symlink() or u.default_dir.is_file():
        u.default_dir.unlink()
    else:
        shutil.rmtree(u.default_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def users():
    tag = secrets.token_hex(3)
    names = ["tracedtrust_%s_%s" % (k, tag) for k in ("a", "b")]
    made = []
    try:
        for n in names:
            r = run(["useradd", "--create-home", "--shell", "/bin/sh", n],
                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, cwd="/")
            assert r.returncode == 0, r.describe()
            made.append(n)
        a, b = User(names[0]), User(names[1])
        for u in (a, b):
            os.chmod(u.home, 0o711)  # others may reach files they are shown
        yield a, b
    finally:
        for n in made:
            try:
                _sweep(User(n))
            except KeyError:
                pass
            subprocess.run(["userdel", "-r", "-f", n],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


@pytest.fixture
def pair(users):
    a, b = users
    for u in users:
        _sweep(u)
    try:
        yield a, b
    finally:
        for u in users:
            _sweep(u)


PROG = """
import sys


def victim_secret_work(password):
    return len(password)


for _ in range(20):
    victim_secret_work("hunter2")
print("victim done")
sys.exit(7)
"""

# B's listener: accepts every connection and records, per connection, how
# many bytes it received before the peer closed or went quiet for 2 s.
LISTENER = r"""
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
s.listen(64)
open(log, "w").close()
while True:
    c, _ = s.accept()
    c.settimeout(2)
    got = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    with open(log, "a") as f:
        f.write("connection %d bytes %r\n" % (len(got), got[:200]))
    c.close()
"""


class Listener:
    """B's hostile listener on `path`."""

    def __init__(self, b, path):
        self.log = b.home / ("listener-%s.log" % secrets.token_hex(3))
        script = b.write("listener.py", LISTENER)
        self.proc = subprocess.Popen(
            b.cmd([SYSTEM_PYTHON, script, path, self.log]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={"PATH": PATH})
        deadline = time.monotonic() + 10
        while not (os.path.exists(path) and self.log.exists()):
            assert self.proc.poll() is None, "the listener died"
            assert time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.02)

    def received(self):
        """Bytes received per connection so far."""
        time.sleep(0.1)
        return self.log.read_text()

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def squat(a, b, mode=0o777):
    """B makes A's default socket directory first."""
    d = a.default_dir
    d.mkdir()
    os.chown(d, b.uid, b.gid)
    os.chmod(d, mode)
    return d


def run_victim(a, via, **env):
    """A's program, traced by `traced run` or by auto-attaching Python;
    returns the result and the output path."""
    prog = a.write("victim.py", PROG)
    out = a.home / "victim.json"
    if out.exists():
        out.unlink()
    if via == "cli":
        r = a.run([TRACED_BIN, "run", "-o", out, "--"] + python(prog), **env)
    else:
        r = a.run(python(prog), TRACED_OUTPUT=str(out), **env)
    return r, out


def assert_untraced_with_reason(r, out, *words):
    """A's program ran, untraced, kept its exit status, and stderr says
    why in one line holding every word in `words`."""
    assert r.returncode == 7, r.describe()
    assert b"victim done" in r.stdout, r.describe()
    err = r.stderr.decode(errors="replace")
    lines = [ln for ln in err.splitlines() if "running untraced" in ln]
    assert len(lines) == 1, r.describe()
    for w in words:
        assert w in lines[0], "%r not in %r" % (w, lines[0])
    if out.exists():
        assert "victim_secret_work" not in out.read_text(errors="replace")


@pytest.mark.parametrize("via", ["cli", "python"])
def test_squatted_directory_without_listener(pair, via):
    a, b = pair
    d = squat(a, b)
    r, out = run_victim(a, via)
    assert_untraced_with_reason(r, out, str(d), "uid %d" % b.uid,
                                "XDG_RUNTIME_DIR")
    # A started no daemon of its own in B's directory.
    assert list(d.iterdir()) == [], list(d.iterdir())


@pytest.mark.parametrize("via", ["cli", "python"])
def test_squatted_directory_with_listener_receives_nothing(pair, via):
    a, b = pair
    d = squat(a, b)
    lst = Listener(b, str(d / "traced.sock"))
    try:
        r, out = run_victim(a, via, TRACED_LOG_ARGS="1")
        assert_untraced_with_reason(r, out, str(d), "uid %d" % b.uid)
        assert lst.received() == "", lst.received()
        s = a.run([TRACED_BIN, "status"])
        assert s.returncode != 0, s.describe()
        assert ("uid %d" % b.uid).encode() in s.stderr, s.describe()
        assert lst.received() == "", lst.received()
    finally:
        lst.stop()


def test_symlinked_directory_is_refused(pair):
    a, b = pair
    target = b.home / "fake-run"
    target.mkdir()
    os.chown(target, b.uid, b.gid)
    os.chmod(target, 0o777)
    os.symlink(target, a.default_dir)
    lst = Listener(b, str(target / "traced.sock"))
    try:
        for via in ("cli", "python"):
            r, out = run_victim(a, via)
            assert_untraced_with_reason(r, out, str(a.default_dir),
                                        "symbolic link")
        assert lst.received() == "", lst.received()
    finally:
        lst.stop()


@pytest.mark.parametrize("via", ["cli", "python"])
def test_directory_open_to_others_is_refused(pair, via):
    a, b = pair
    d = a.default_dir
    d.mkdir()
    os.chown(d, a.uid, a.gid)
    os.chmod(d, 0o755)
    r, out = run_victim(a, via)
    assert_untraced_with_reason(r, out, "chmod 700 %s" % d)


def test_a_listener_of_another_user_is_refused(pair):
    """A is pointed (TRACED_SOCKET) at a world-writable directory where B
    listens: the peer's credentials give B away, before A sends a byte."""
    a, b = pair
    shared = Path(tempfile.mkdtemp(prefix="traced-shared-", dir="/tmp"))
    os.chmod(shared, 0o1777)
    sock = str(shared / "traced.sock")
    lst = Listener(b, sock)
    try:
        for via in ("cli", "python"):
            r, out = run_victim(a, via, TRACED_SOCKET=sock)
            assert_untraced_with_reason(r, out, "uid %d" % b.uid, sock)
        s = a.run([TRACED_BIN, "status"], TRACED_SOCKET=sock)
        assert s.returncode != 0, s.describe()
        assert ("uid %d" % b.uid).encode() in s.stderr, s.describe()
        got = lst.received()
        # B saw the connections (that is how the kernel tells A who B is)
        # but not one byte on them.
        assert got.count("connection 0 bytes") == 3 and "bytes b''" in got, got
        assert all(ln.startswith("connection 0 bytes")
                   for ln in got.splitlines()), got
    finally:
        lst.stop()
        shutil.rmtree(shared, ignore_errors=True)


def test_own_private_directory_still_traces(pair):
    """The checks let the ordinary case through: A's first run makes the
    directory (0700, A's) and a private daemon, and A's trace is written."""
    a, _ = pair
    for via in ("cli", "python"):
        r, out = run_victim(a, via)
        assert r.returncode == 7, r.describe()
        assert b"running untraced" not in r.stderr, r.describe()
        names = [e.get("name", "") for e in load_trace(out)]
        assert any(n.startswith("victim_secret_work") for n in names), names
    st = os.lstat(a.default_dir)
    assert st.st_uid == a.uid and (st.st_mode & 0o777) == 0o700


# ---- the system daemon started as root -----------------------------------


def start_system_daemon(top, *args):
    """`traced serve --system` started by root with `args`; returns the
    process, its socket and its log path once it listens (or has exited)."""
    sock = top / "run" / "traced.sock"
    log_path = top / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [TRACED_BIN, "serve", "--system", "--socket", str(sock)]
            + list(args), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            env={"PATH": PATH}, cwd="/")
    deadline = time.monotonic() + 10
    while not sock.exists() and proc.poll() is None:
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.02)
    return proc, str(sock), log_path


def stop_daemon(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def proc_ids(pid, field):
    """The four ids of /proc/PID/status's Uid: or Gid: line."""
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith(field + ":"):
            return [int(x) for x in line.split()[1:]]
    raise AssertionError("no %s line" % field)


def test_root_system_daemon_serves_as_its_service_user(pair):
    """Started by root with --user B, the system daemon runs as B (all
    four uids), its socket directory is B's, A's trace goes through it and
    is A's file."""
    a, b = pair
    top = Path(tempfile.mkdtemp(prefix="traced-sys-", dir="/tmp"))
    os.chmod(top, 0o755)
    proc, sock, log_path = start_system_daemon(top, "--user", b.name)
    try:
        assert proc.poll() is None, log_path.read_text()
        assert proc_ids(proc.pid, "Uid") == [b.uid] * 4
        assert proc_ids(proc.pid, "Gid") == [b.gid] * 4
        st = os.stat(os.path.dirname(sock))
        assert st.st_uid == b.uid and (st.st_mode & 0o777) == 0o755
        assert "event=privileges user=%s uid=%d" % (b.name, b.uid) in \
            log_path.read_text()
        r, out = run_victim(a, "cli", TRACED_SOCKET=sock,
                            TRACED_NO_AUTOSTART="1")
        assert r.returncode == 7, r.describe()
        assert b"running untraced" not in r.stderr, r.describe()
        names = [e.get("name", "") for e in load_trace(out)]
        assert any(n.startswith("victim_secret_work") for n in names)
        assert os.stat(out).st_uid == a.uid
    finally:
        stop_daemon(proc)
        shutil.rmtree(top, ignore_errors=True)
    assert proc.returncode == 0, log_path.read_text()


def test_root_system_daemon_needs_a_user_or_allow_root(users):
    top = Path(tempfile.mkdtemp(prefix="traced-sys-", dir="/tmp"))
    os.chmod(top, 0o755)
    try:
        proc, sock, log_path = start_system_daemon(
            top, "--user", "no_such_user_%s" % secrets.token_hex(3))
        assert proc.wait(timeout=10) == 1
        err = log_path.read_text()
        assert "does not exist" in err and "--allow-root" in err, err
        assert not os.path.exists(sock)

        proc, sock, log_path = start_system_daemon(top, "--allow-root")
        try:
            assert proc.poll() is None, log_path.read_text()
            assert proc_ids(proc.pid, "Uid") == [0] * 4
            assert re.search(r"WARN event=privileges user=root ",
                             log_path.read_text()), log_path.read_text()
        finally:
            stop_daemon(proc)
    finally:
        shutil.rmtree(top, ignore_errors=True)

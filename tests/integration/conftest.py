"""Fixtures and helpers for traced's integration tests: a real daemon on a
private socket, real traced Python programs, and trace-file checks.

Every test runs its programs with `sys.executable`, the traced-ready
interpreter of the project's .venv (its .pth hook attaches a process that
starts with the session environment).  $TRACED_BIN and
$TRACED_NATIVE_EXAMPLE name the binaries under test (the Makefile sets
them; they default to this checkout's build/ directory).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TRACED_BIN = os.environ.get("TRACED_BIN") or str(REPO / "build/bin/traced")
TRACED_NATIVE_EXAMPLE = os.environ.get("TRACED_NATIVE_EXAMPLE") or str(
    REPO / "build/tests/native_example")

# Every child process gets this bound, so a hung product fails one test
# instead of hanging the suite.
TIMEOUT = 60

# Timestamps are written in microseconds with 3 decimals (nanoseconds);
# comparisons are made in integer nanoseconds with this tolerance.
TOLERANCE_NS = 1

# A well-formed session token that names no session.
BOGUS_TOKEN = "0123456789abcdef0123456789abcdef"


# ---- processes -------------------------------------------------------------


# Tuning that the test run itself sets (`make valgrind`) and that every
# traced program must see.
PASSTHROUGH = {"TRACED_STALL_MS"}


def clean_env(**extra):
    """os.environ without any TRACED_* variable, plus `extra` (a value of
    None removes the variable)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRACED_") or k in PASSTHROUGH}
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


class Result:
    """What a finished command did."""

    def __init__(self, cmd, returncode, stdout, stderr):
        self.cmd = cmd
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr

    def describe(self):
        return ("command: %r\nexit status: %r\n--- stdout ---\n%s\n"
                "--- stderr ---\n%s" %
                (self.cmd, self.returncode,
                 self.stdout.decode(errors="replace")[-4000:],
                 self.stderr.decode(errors="replace")[-4000:]))


def run(cmd, env, cwd, input=b"", timeout=TIMEOUT):
    """Runs cmd with stdout/stderr captured through pipes and returns a
    Result.  Fails the test if it runs longer than `timeout`, or if its
    pipes stay open after it exited (some process it started, e.g. a
    daemon, inherited them: `traced run ... | less` would hang)."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    chunks = {"out": [], "err": []}

    def feed():
        try:
            proc.stdin.write(input)
            proc.stdin.close()
        except BrokenPipeError:
            pass

    def drain(stream, key):
        for block in iter(lambda: stream.read1(65536), b""):
            chunks[key].append(block)

    threads = [threading.Thread(target=feed, daemon=True),
               threading.Thread(target=drain, args=(proc.stdout, "out"),
                                daemon=True),
               threading.Thread(target=drain, args=(proc.stderr, "err"),
                                daemon=True)]
    for t in threads:
        t.start()

    def result(rc):
        return Result(cmd, rc, b"".join(chunks["out"]),
                      b"".join(chunks["err"]))

    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("%r did not finish within %d s\n%s" %
                    (cmd, timeout, result(None).describe()))
    for t in threads[1:]:
        t.join(timeout=5)
        if t.is_alive():
            pytest.fail("%r exited with status %r but its stdout/stderr "
                        "pipes stayed open for 5 s more: a process it "
                        "started keeps them (`traced run ... | less` would "
                        "hang)\n%s" % (cmd, rc, result(rc).describe()))
    proc.stdout.close()
    proc.stderr.close()
    return result(rc)


def processes_mentioning(text):
    """Pids of live processes (other than this one) whose command line or
    environment contains `text`."""
    found = []
    needle = text.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        for what in ("cmdline", "environ"):
            try:
                with open("/proc/%s/%s" % (entry, what), "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            if needle in data:
                found.append(int(entry))
                break
    return found


def _is_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as fh:
            stat = fh.read()
    except OSError:
        return True
    # Field 3, after the parenthesised command name, is the state.
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def terminate_pid(pid, timeout=10):
    """SIGTERMs a process that is not our child and waits until it is gone
    (SIGKILL after `timeout`).  Returns True if SIGTERM was enough."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _is_gone(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return False


# ---- the daemon ------------------------------------------------------------


def _socket_accepts(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1)
        s.connect(path)
        return True
    except OSError:
        return False
    finally:
        s.close()


class Daemon:
    """A `traced serve` process on a private socket."""

    def __init__(self, directory):
        self.dir = directory
        self.socket = str(directory / "traced.sock")
        self.log_path = directory / "daemon.log"
        self.env = clean_env(TRACED_SOCKET=self.socket)
        self.proc = None

    def log(self):
        """The daemon's stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self, *extra):
        # $TRACED_DAEMON_WRAPPER runs the daemon under a tool, e.g.
        # `make valgrind` sets "valgrind --error-exitcode=99 ...": its
        # findings then fail stop()'s exit-status check.
        wrapper = os.environ.get("TRACED_DAEMON_WRAPPER", "").split()
        cmd = wrapper + [TRACED_BIN, "serve", "--socket", self.socket]
        cmd += [str(a) for a in extra]
        with open(self.log_path, "wb") as log, \
                open(os.devnull, "rb") as null:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=str(self.dir),
                                         stdin=null, stdout=log, stderr=log)
        deadline = time.monotonic() + (60 if wrapper else 10)
        while True:
            if self.proc.poll() is not None:
                pytest.fail("traced serve exited with status %r before "
                            "accepting connections; its log:\n%s" %
                            (self.proc.returncode, self.log()))
            if os.path.exists(self.socket) and _socket_accepts(self.socket):
                return
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("traced serve did not accept connections on %s "
                            "within 10 s; its log:\n%s" %
                            (self.socket, self.log()))
            time.sleep(0.02)

    def stop(self):
        """SIGTERM, then the daemon must exit 0 within 10 s."""
        if self.proc.poll() is not None:
            pytest.fail("the daemon died during the test with status %r; "
                        "its log:\n%s" % (self.proc.returncode, self.log()))
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(
                timeout=60 if os.environ.get("TRACED_DAEMON_WRAPPER") else 10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the daemon did not exit within 10 s of SIGTERM; "
                        "its log:\n%s" % self.log())
        assert rc == 0, ("the daemon exited with status %r after SIGTERM; "
                         "its log:\n%s" % (rc, self.log()))


def short_tmpdir():
    """A fresh directory with a short path: AF_UNIX socket paths are limited
    to 107 bytes, which deep pytest tmp_paths can exceed."""
    return Path(tempfile.mkdtemp(prefix="traced-it-", dir="/tmp"))


@pytest.fixture
def daemon_with():
    """daemon_with(*serve_args): like `daemon`, started with extra
    `traced serve` arguments (e.g. limits); stopped the same way."""
    started = []

    def start(*extra):
        d = Daemon(short_tmpdir())
        started.append(d)
        d.start(*extra)
        return d

    try:
        yield start
    finally:
        for d in started:
            try:
                if d.proc is not None:
                    d.stop()
            finally:
                shutil.rmtree(d.dir, ignore_errors=True)


@pytest.fixture
def daemon():
    """A real daemon on a private socket; always stopped, and it must then
    exit 0."""
    d = Daemon(short_tmpdir())
    try:
        d.start()
    except BaseException:
        shutil.rmtree(d.dir, ignore_errors=True)
        raise
    try:
        yield d
    finally:
        try:
            d.stop()
        finally:
            shutil.rmtree(d.dir, ignore_errors=True)


@pytest.fixture
def private_socket():
    """A socket path in a fresh short directory where nothing listens.  Any
    process still mentioning it at the end of the test (e.g. a daemon that
    `traced run` started) is terminated."""
    directory = short_tmpdir()
    path = str(directory / "traced.sock")
    try:
        yield path
    finally:
        for pid in processes_mentioning(path):
            terminate_pid(pid)
        shutil.rmtree(directory, ignore_errors=True)


# ---- programs --------------------------------------------------------------


def write_program(tmp_path, text, name="prog.py"):
    """Writes a test program (dedented) into tmp_path; returns its absolute
    path, which is also the path its functions' names carry."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def line_of(path, prefix):
    """1-based number of the only line of `path` that starts with `prefix`
    (after indentation): a function's co_firstlineno when prefix is its
    `def` line."""
    hits = [i + 1 for i, line in enumerate(Path(path).read_text().splitlines())
            if line.lstrip().startswith(prefix)]
    assert len(hits) == 1, "expected one line starting with %r in %s" % (
        prefix, path)
    return hits[0]


def pyname(path, func, qualname=None):
    """The trace name of a Python function defined in `path` by a line
    `def func(`: `qualname (path:firstlineno)`."""
    return "%s (%s:%d)" % (qualname or func, path,
                           line_of(path, "def %s(" % func))


class Traced:
    """A traced program's run and its trace."""

    def __init__(self, result, script, output, events):
        self.result = result
        self.script = script
        self.output = output
        self.events = events

    @property
    def returncode(self):
        return self.result.returncode

    @property
    def stdout(self):
        return self.result.stdout

    @property
    def stderr(self):
        return self.result.stderr


def run_traced(daemon, script_text, tmp_path, via="cli", args=(), input=b"",
               name="prog.py", output_name="trace.json"):
    """Writes script_text to tmp_path/name and runs it traced by `daemon`:

    * via="cli": `traced run -o OUTPUT -- python SCRIPT ARGS...`;
    * via="env": `python SCRIPT ARGS...` with TRACED_OUTPUT=OUTPUT, so the
      process creates the session itself (the file is complete when it
      exits).

    Returns a Traced with the loaded trace."""
    script = write_program(tmp_path, script_text, name)
    output = tmp_path / output_name
    if via == "cli":
        cmd = [TRACED_BIN, "run", "-o", output, "--", sys.executable, script]
        env = daemon.env
    elif via == "env":
        cmd = [sys.executable, script]
        env = dict(daemon.env, TRACED_OUTPUT=str(output))
    else:
        raise ValueError(via)
    result = run(cmd + list(args), env=env, cwd=tmp_path, input=input)
    assert output.exists(), ("no trace file %s\n%s\ndaemon log:\n%s" %
                             (output, result.describe(), daemon.log()))
    try:
        events = load_trace(output)
    except ValueError as e:
        pytest.fail("trace %s does not load: %s\n%s\ndaemon log:\n%s" %
                    (output, e, result.describe(), daemon.log()))
    return Traced(result, script, output, events)


# ---- traces ----------------------------------------------------------------


def load_trace(path):
    """The trace file's events (json.load of the whole file).  A finished
    trace is the object form {"traceEvents": [...]} and nothing else; the
    array form is what a file cut short looks like."""
    with open(path) as fh:
        data = json.load(fh)
    if isinstance(data, dict):
        if list(data) != ["traceEvents"] or not isinstance(
                data["traceEvents"], list):
            raise ValueError("trace object has keys %r" % list(data))
        return data["traceEvents"]
    if not isinstance(data, list):
        raise ValueError("trace is a %s, not a JSON array or object" %
                         type(data).__name__)
    return data


def slices(events, name_prefix=""):
    """Complete ('X') events whose name starts with name_prefix."""
    return [e for e in events
            if e.get("ph") == "X" and e.get("name", "").startswith(name_prefix)]


def named(events, name, ph="X"):
    """Events of phase ph whose name is exactly `name`."""
    return [e for e in events if e.get("ph") == ph and e.get("name") == name]


def instants(events, name):
    return [e for e in events
            if e.get("ph") in ("i", "I") and e.get("name") == name]


def thread_names(events):
    """{(pid, tid): [names]} from thread_name metadata events."""
    out = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            out.setdefault((e["pid"], e["tid"]), []).append(e["args"]["name"])
    return out


def ns(us):
    """Microseconds (3 decimals) to integer nanoseconds."""
    return int(round(us * 1000))


def start_ns(e):
    return ns(e["ts"])


def end_ns(e):
    return ns(e["ts"]) + ns(e["dur"])


def contains(outer, inner):
    """inner lies within outer on the same thread (timestamps ±1 ns)."""
    return (outer["pid"] == inner["pid"] and outer["tid"] == inner["tid"]
            and start_ns(outer) <= start_ns(inner) + TOLERANCE_NS
            and end_ns(inner) <= end_ns(outer) + TOLERANCE_NS)


class Node:
    """One X slice in its thread's call tree."""

    def __init__(self, event):
        self.event = event
        self.parent = None
        self.children = []

    @property
    def name(self):
        return self.event["name"]


def call_forest(events):
    """Builds each thread's call tree from its X slices and asserts they
    form one: every two slices of a thread are either disjoint or one lies
    within the other (no partial overlap).  Returns [Node] in event
    order."""
    nodes = [Node(e) for e in events if e.get("ph") == "X"]
    by_thread = {}
    for n in nodes:
        by_thread.setdefault((n.event["pid"], n.event["tid"]), []).append(n)
    for key, thread_nodes in by_thread.items():
        # Parents sort before their children: earlier start, then longer.
        thread_nodes.sort(key=lambda n: (start_ns(n.event), -end_ns(n.event)))
        stack = []
        for n in thread_nodes:
            s, e = start_ns(n.event), end_ns(n.event)
            assert e >= s, "negative duration: %r" % n.event
            while stack and end_ns(stack[-1].event) <= s + TOLERANCE_NS:
                stack.pop()
            if stack:
                top = stack[-1]
                assert e <= end_ns(top.event) + TOLERANCE_NS, (
                    "slices overlap partially on pid/tid %r:\n  %r\n  %r" %
                    (key, top.event, n.event))
                n.parent = top
                top.children.append(n)
            stack.append(n)
    return nodes


def parent_names(nodes, name):
    """{parent name (None for a root): count} for the slices named `name`."""
    out = {}
    for n in nodes:
        if n.name == name:
            p = n.parent.name if n.parent else None
            out[p] = out.get(p, 0) + 1
    return out


_SUMMARY_KEYS = ("process", "thread", "event", "dropped", "byte")


def parse_summary(line):
    """{key: int} for processes, threads, events, dropped and bytes from a
    summary line such as '... 1 process, 2 threads, 3 events, 0 dropped,
    4 bytes ...' or '... events=3 ...'."""
    out = {}
    for key in _SUMMARY_KEYS:
        m = (re.search(r"\b%s\w*\s*[=:]\s*(\d+)" % key, line) or
             re.search(r"(\d+)\s+%s\w*" % key, line))
        assert m, "summary line lacks %r: %r" % (key, line)
        out[key] = int(m.group(1))
    return out


def summary_line(stderr):
    """The one line `traced run` adds to stderr after the program's own
    output: its last line."""
    text = stderr.decode(errors="replace")
    assert text.endswith("\n"), "stderr does not end with a line: %r" % text
    return text[:-1].rsplit("\n", 1)[-1]

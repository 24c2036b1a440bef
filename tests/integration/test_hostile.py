"""Hostile and broken clients (issue 4): the raw protocol spoken by hand
with every kind of bad input.  For each one the daemon must refuse or
bound it -- an ERROR frame with the right code and/or the connection
closed, exactly one log line naming the peer (pid, uid) and the reason --
stay alive, and go on serving correct sessions (a raw one after each
input, a real `traced run` after all of them).

The tests under "daemon bugs" at the end (and test_empty_string_names
under `make asan`) fail until the bugs their docstrings name are fixed:
see docs/hostile.md, "Known bugs".
"""

import errno
import fcntl
import json
import mmap
import os
import random
import re
import resource
import select
import socket
import struct
import termios
import threading
import time

import msgpack
import pytest

import rawproto as rp
from conftest import (TRACED_BIN, pyname, run, run_traced, slices,
                      summary_line)
from rawproto import (HDR, HELLO, RING_ADD, SESSION_END, SESSION_JOIN,
                      SESSION_JOINED, WELCOME, Arena, Conn, Ring, frame,
                      hello_payload, memfd, raw_session)

MY_PID = os.getpid()
MY_UID = os.getuid()
LOG_LINE = re.compile(r"^\S+ traced\[\d+\] (ERROR|WARN|INFO|DEBUG) (.*)$")


def peer_tag(pid=MY_PID, uid=MY_UID):
    # "pid=12 uid=0" never matches inside "pid=123 uid=0".
    return "pid=%d uid=%d" % (pid, uid)


# ---- checks shared by the tests ---------------------------------------------


class LogMark:
    """The daemon log from a point on."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.pos = len(daemon.log())

    def mark(self):
        self.pos = len(self.daemon.log())

    def lines(self):
        return self.daemon.log()[self.pos:].splitlines()

    def naming(self, pid=MY_PID, uid=MY_UID):
        tag = peer_tag(pid, uid)
        return [l for l in self.lines() if tag + " " in l or
                l.endswith(tag) or tag + ":" in l]

    def complaints(self, pid=MY_PID, uid=MY_UID):
        """WARN and ERROR lines naming the peer."""
        return [l for l in self.naming(pid, uid)
                if " WARN " in l or " ERROR " in l]


def alive(daemon):
    assert daemon.proc.poll() is None, (
        "the daemon died (status %r); its log:\n%s" %
        (daemon.proc.returncode, daemon.log()))


def assert_serves(daemon, calls=50):
    """A complete correct raw session still works and is exact."""
    summary, events = raw_session(daemon.socket, calls=calls)
    got = [e for e in events if e.get("ph") == "X"]
    assert len(got) == calls, events
    assert all(e["name"] == "healthy (raw.py:1)" for e in got)
    assert summary["events"] == calls, summary
    assert summary["dropped"] == 0, summary


def assert_refused(daemon, log, conn, code, reason, pid=MY_PID):
    """The connection got ERROR `code` whose message matches `reason`
    (code None: whatever frames come, only the close counts), then EOF; the log
    gained exactly one WARN line naming the peer, with that reason."""
    if code is not None:
        kind, got_code, message = conn.outcome(timeout=5)
        assert kind == "error", (
            "expected ERROR %s (%s), got %r %r %r; log:\n%s" %
            (code, rp.errname(code), kind, got_code, message,
             "\n".join(log.lines())))
        assert got_code == code, (
            "ERROR code %s (%s), expected %s (%s): %r" %
            (got_code, rp.errname(got_code), code, rp.errname(code),
             message))
        assert re.search(reason, message), (reason, message)
    assert conn.wait_eof(5), "the daemon kept the connection open"
    lines = log.naming(pid)
    assert len(lines) == 1, (
        "expected one log line naming %s, got:\n%s" %
        (peer_tag(pid), "\n".join(log.lines())))
    m = LOG_LINE.match(lines[0])
    assert m and m.group(1) == "WARN", lines[0]
    assert re.search(reason, m.group(2)), (reason, lines[0])
    alive(daemon)


def daemon_fd_targets(daemon):
    """What the daemon's descriptors point to."""
    base = "/proc/%d/fd" % daemon.proc.pid
    out = []
    for name in os.listdir(base):
        try:
            out.append(os.readlink(os.path.join(base, name)))
        except OSError:
            pass
    return out


# Tests that measure the daemon process itself (its memory, mappings and
# descriptor limit) mean nothing under a wrapper such as valgrind, which
# owns that process's memory, mappings and descriptors.
not_under_wrapper = pytest.mark.skipif(
    bool(os.environ.get("TRACED_DAEMON_WRAPPER")),
    reason="measures the daemon process; meaningless under a wrapper")


def daemon_status(daemon, key):
    with open("/proc/%d/status" % daemon.proc.pid) as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def daemon_map_count(daemon):
    with open("/proc/%d/maps" % daemon.proc.pid) as fh:
        return sum(1 for _ in fh)


def raise_nofile(n):
    """Raises this process's soft descriptor limit to at least n (up to
    the hard limit); skips the test when the hard limit is lower."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip("needs %d descriptors, hard limit is %d" % (n, hard))
    if soft != resource.RLIM_INFINITY and soft < n:
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))
    return soft, hard


def as_other_user(fn, uid=65534, timeout=20):
    """Runs fn() in a forked child that dropped to `uid` and returns what
    it returned (JSON-able) or raises with its error.  Needs root."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            result = {"ok": fn()}
        except BaseException as e:  # the child must always _exit
            result = {"error": "%s: %s" % (type(e).__name__, e)}
        try:
            os.write(w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        chunks.append(chunk)
        if time.monotonic() > deadline:
            break
    os.close(r)
    os.waitpid(pid, 0)
    result = json.loads(b"".join(chunks) or b'{"error": "no answer"}')
    if "error" in result:
        raise AssertionError("as uid %d: %s" % (uid, result["error"]))
    return result["ok"]


def open_to_others(daemon):
    """Lets other uids reach the private socket (its directory is 0700)."""
    os.chmod(daemon.dir, 0o711)
    os.chmod(daemon.socket, 0o777)


def other_user_session(daemon, uid=65534):
    """A raw session by another uid; returns its number of events."""
    open_to_others(daemon)
    path = daemon.socket

    def session():
        summary, events = raw_session(path, calls=20)
        return [summary["events"],
                sum(1 for e in events if e.get("ph") == "X")]

    return as_other_user(session, uid)


# ---- the bad inputs ---------------------------------------------------------


class Ctx:
    """What a bad-input case gets: the socket, a scratch directory, a list
    that keeps its objects alive until the checks ran, and mark() to call
    just before the bad input (setup lines before it do not count)."""

    def __init__(self, daemon, tmp, log):
        self.path = daemon.socket
        self.tmp = tmp
        self.keep = []
        self.mark = log.mark

    def conn(self):
        c = Conn(self.path)
        self.keep.append(c)
        return c

    def producer(self):
        c = self.conn()
        arena = Arena()
        self.keep.append(arena)
        t, p = c.hello("producer", arena)
        assert t == WELCOME, (t, p)
        return c

    def control(self):
        c = self.conn()
        t, p = c.hello("control")
        assert t == WELCOME, (t, p)
        return c


def first(type_, payload=None, flags=0, fds=()):
    """Case: this frame is the connection's first."""
    def run(ctx):
        c = ctx.conn()
        ctx.mark()
        c.send_bytes(frame(type_, payload, flags), fds)
        return c
    return run


def raw_first(data):
    def run(ctx):
        c = ctx.conn()
        ctx.mark()
        c.send_bytes(data)
        return c
    return run


def after_hello(type_, payload=None, flags=0, role="control"):
    """Case: this frame after a good HELLO."""
    def run(ctx):
        c = ctx.producer() if role == "producer" else ctx.control()
        ctx.mark()
        c.send_bytes(frame(type_, payload, flags))
        return c
    return run


def bad_hello(**override):
    """Case: a control HELLO with keys replaced (None: removed)."""
    m = hello_payload("control")
    for k, v in override.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return first(HELLO, m)


def producer_hello_with(make_fd, arena_size=rp.ARENA_MIN_SIZE, nfds=1):
    """Case: a producer HELLO carrying the descriptor(s) make_fd(ctx)
    returns."""
    def run(ctx):
        fds = make_fd(ctx)
        if isinstance(fds, int):
            fds = [fds]
        c = ctx.conn()
        ctx.mark()
        c.send_bytes(frame(HELLO, hello_payload("producer", arena_size)),
                     fds)
        for fd in fds:
            os.close(fd)
        return c
    return run


def ring_add_with(make_fd, slots=rp.RING_MIN_SLOTS, tid=424242,
                  role="producer", payload=None):
    """Case: a producer (or control) connection, then RING_ADD carrying the
    descriptor(s) make_fd(ctx) returns (None: none)."""
    def run(ctx):
        c = ctx.producer() if role == "producer" else ctx.control()
        fds = make_fd(ctx) if make_fd else []
        if isinstance(fds, int):
            fds = [fds]
        body = payload if payload is not None else {
            "tid": tid, "slots": slots, "name": "t"}
        ctx.mark()
        c.send_bytes(frame(RING_ADD, body), fds)
        for fd in fds:
            os.close(fd)
        return c
    return run


def create_with(make_fd, payload=None):
    """Case: a control connection, then SESSION_CREATE carrying
    make_fd(ctx)'s descriptor (None: none)."""
    def run(ctx):
        c = ctx.control()
        fds = [make_fd(ctx)] if make_fd else []
        ctx.mark()
        c.send_bytes(frame(rp.SESSION_CREATE, payload or {
            "path": "x.json", "format": "json"}), fds)
        for fd in fds:
            os.close(fd)
        return c
    return run


# Descriptors of every wrong kind.

def a_pipe(ctx):
    r, w = os.pipe()
    ctx.keep.append(w)
    return r


def a_pipe_writer(ctx):
    r, w = os.pipe()
    ctx.keep.append(r)
    return w


def out_memfd():
    """A session output that is a memfd (a regular file)."""
    return memfd(0, seal=False, name="trace-output")


def a_socket(ctx):
    a, b = socket.socketpair()
    ctx.keep.append(b)
    return os.dup(a.fileno())


def a_regular_file(size):
    def make(ctx):
        path = os.path.join(ctx.tmp, "regular-%d" % len(ctx.keep))
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(fd, size)
        ctx.keep.append(path)
        return fd
    return make


def a_memfd(size, seal=True, header=None):
    """A memfd of `size` bytes; header(map) may write a header."""
    def make(ctx):
        fd = memfd(size, seal=False)
        if header is not None:
            m = mmap.mmap(fd, size)
            header(m)
            m.close()
        if seal:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, rp.SEALS)
        return fd
    return make


def arena_header(data_size, magic=rp.ARENA_MAGIC):
    def write(m):
        struct.pack_into("<IHHI", m, 0, magic, rp.VERSION,
                         rp.SHM_HEADER_SIZE, data_size)
    return write


def ring_header(slots, tid=424242, magic=rp.RING_MAGIC):
    def write(m):
        struct.pack_into("<IHHII", m, 0, magic, rp.VERSION,
                         rp.SHM_HEADER_SIZE, slots, tid)
    return write


ARENA_BYTES = rp.SHM_HEADER_SIZE + rp.ARENA_MIN_SIZE
RING_BYTES = rp.SHM_HEADER_SIZE + rp.RING_MIN_SLOTS * 16


def good_arena(ctx):
    return a_memfd(ARENA_BYTES, header=arena_header(rp.ARENA_MIN_SIZE))(ctx)


def three_memfds(ctx):
    return [good_arena(ctx), memfd(64, name="hostile-extra"),
            memfd(64, name="hostile-extra")]


def fds_faster_than_frames(ctx):
    """One byte of a frame header per sendmsg, each with a descriptor: the
    kernel ends a read at every message that carries descriptors, so each
    is a batch that no complete frame claims yet."""
    c = ctx.control()
    hdr = frame(rp.DOORBELL)
    ctx.mark()
    for i in range(5):
        fd = memfd(64, name="hostile-extra")
        c.send_bytes(hdr[i:i + 1], [fd])
        os.close(fd)
    return c


def session_end_from_member(ctx):
    creator = ctx.control()
    out = out_memfd()
    ctx.keep.append(out)
    t, p = creator.create_session(out)
    assert t == rp.SESSION_CREATED, (t, p)
    member = ctx.producer()
    t, j = member.request(SESSION_JOIN, {"token": p["token"]})
    assert t == SESSION_JOINED and j["active"], (t, j)
    ctx.mark()
    member.send(SESSION_END, {})
    return member


def create_twice(ctx):
    c = ctx.control()
    out = out_memfd()
    ctx.keep.append(out)
    assert c.create_session(out)[0] == rp.SESSION_CREATED
    ctx.mark()
    c.send(rp.SESSION_CREATE, {"path": "y", "format": "json"}, [out])
    return c


def join_from_creator(ctx):
    other = ctx.control()
    out = out_memfd()
    ctx.keep.append(out)
    t, p = other.create_session(out)
    c = ctx.producer()
    assert c.create_session(out)[0] == rp.SESSION_CREATED
    ctx.mark()
    c.send(SESSION_JOIN, {"token": p["token"]})
    return c


def ring_positions(publish):
    """Case: a producer adds a good ring, then publish(ring) breaks its
    positions; the drain timer must find it."""
    def run(ctx):
        c = ctx.producer()
        ring = Ring()
        ctx.keep.append(ring)
        c.add_ring(ring)
        assert c.sync()[0] == SESSION_JOINED
        ctx.mark()
        publish(ring)
        return c
    return run


def head_backwards(ring):
    ts = time.monotonic_ns()
    for i in range(10):
        ring.put(ts + i, 0, rp.INSTANT)
    ring.publish()
    deadline = time.monotonic() + 5
    while ring.tail() != 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert ring.tail() == 10, "the daemon did not drain the ring"
    ring.publish(5)


def nested(depth):
    v = 1
    for _ in range(depth):
        v = [v]
    return v


EPROTO, EMSGSIZE, EBADF, EINVAL, EPERM, EBUSY = (
    errno.EPROTO, errno.EMSGSIZE, errno.EBADF, errno.EINVAL, errno.EPERM,
    errno.EBUSY)
MALFORMED = r"malformed frame header"
NOT_A_MAP = r"payload is not a msgpack map"
BAD_ARENA = r"HELLO: bad arena descriptor"
BAD_RING = r"RING_ADD: bad ring descriptor"
POSITIONS = r"the ring of thread 424242 has impossible head/tail positions"

# (id, case, ERROR code, reason in the ERROR and the log line)
BAD_INPUTS = [
    # -- framing
    ("header-flags-nonzero", first(HELLO, hello_payload("control"), flags=1),
     EPROTO, MALFORMED + r" \(type 1, flags 0x1\)"),
    ("header-type-zero", first(0, hello_payload("control")),
     EPROTO, MALFORMED + r" \(type 0, flags 0x0\)"),
    ("header-flags-after-hello", after_hello(rp.DOORBELL, flags=0x8000),
     EPROTO, MALFORMED + r" \(type 8, flags 0x8000\)"),
    ("length-over-64k", raw_first(HDR.pack(65537, HELLO, 0) + b"\x80" * 64),
     EMSGSIZE, r"frame of 65537 bytes exceeds the 65536-byte limit"),
    ("length-4g", raw_first(HDR.pack(0xffffffff, HELLO, 0)),
     EMSGSIZE, r"frame of 4294967295 bytes exceeds"),
    ("garbage-msgpack", first(HELLO, b"\xc1\xc1garbage\xff"),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("truncated-map", first(HELLO, b"\x8a\xa5magic\xa6traced"),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("huge-array-count", first(HELLO, b"\x81\xa4argv\xdd\xff\xff\xff\xff"),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("huge-map-count", first(HELLO, b"\xdf\xff\xff\xff\xff\xc0"),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("deep-nesting",
     first(HELLO, msgpack.packb(dict(hello_payload("control"),
                                     argv=nested(40)))),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("trailing-bytes",
     first(HELLO, msgpack.packb(hello_payload("control")) + b"\xc0"),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("payload-array", first(HELLO, msgpack.packb(["magic", "traced"])),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("payload-string", first(HELLO, msgpack.packb("traced")),
     EPROTO, "HELLO: " + NOT_A_MAP),
    ("payload-garbage-after-hello", after_hello(rp.PROCESS_INFO, b"\x93\x01"),
     EPROTO, "PROCESS_INFO: " + NOT_A_MAP),
    ("unknown-type", after_hello(30, {}),
     EPROTO, r"unexpected message type 30 \(\?\)"),
    ("daemon-type-from-client", after_hello(WELCOME, {"version": 1}),
     EPROTO, r"unexpected message type 2 \(WELCOME\)"),
    ("error-type-from-client", after_hello(rp.ERROR, {"code": 1}),
     EPROTO, r"unexpected message type 15 \(ERROR\)"),
    ("unknown-type-before-hello", first(40000, {}),
     EPROTO, r"\? before HELLO"),
    # -- handshake
    ("hello-wrong-version", bad_hello(version=2),
     EPROTO, r"HELLO: protocol version 2, this daemon speaks 1"),
    ("hello-version-not-uint", bad_hello(version="1"),
     EPROTO, r"HELLO: missing version"),
    ("hello-wrong-magic", bad_hello(magic="tracer"),
     EPROTO, r"HELLO: missing or wrong magic"),
    ("hello-magic-prefix", bad_hello(magic="trace"),
     EPROTO, r"HELLO: missing or wrong magic"),
    ("hello-empty", first(HELLO), EPROTO, r"HELLO: missing or wrong magic"),
    ("hello-no-magic", bad_hello(magic=None),
     EPROTO, r"HELLO: missing or wrong magic"),
    ("hello-no-version", bad_hello(version=None),
     EPROTO, r"HELLO: missing version"),
    ("hello-no-role", bad_hello(role=None), EPROTO, r"HELLO: missing role"),
    ("hello-no-pid", bad_hello(pid=None),
     EPROTO, r"HELLO: missing or invalid pid"),
    ("hello-unknown-role", bad_hello(role="root"),
     EPROTO, r"HELLO: unknown role 'root'"),
    ("hello-pid-zero", bad_hello(pid=0),
     EPROTO, r"HELLO: missing or invalid pid"),
    ("hello-pid-negative", bad_hello(pid=-5),
     EPROTO, r"HELLO: missing or invalid pid"),
    ("hello-pid-too-big", bad_hello(pid=1 << 40),
     EPROTO, r"HELLO: missing or invalid pid"),
    ("hello-other-clock", bad_hello(clock="realtime"),
     EPROTO, r"HELLO: clock 'realtime' is not supported"),
    ("hello-producer-no-arena-size",
     producer_hello_with(good_arena, arena_size=None),
     EPROTO, r"HELLO: producer without arena_size"),
    ("hello-twice", after_hello(HELLO, hello_payload("control")),
     EPROTO, r"second HELLO"),
    # -- messages before HELLO
    ("join-before-hello", first(SESSION_JOIN, {"token": "0" * 32}),
     EPROTO, r"SESSION_JOIN before HELLO"),
    ("doorbell-before-hello", first(rp.DOORBELL),
     EPROTO, r"DOORBELL before HELLO"),
    ("end-before-hello", first(SESSION_END, {}),
     EPROTO, r"SESSION_END before HELLO"),
    ("ring-add-before-hello",
     lambda ctx: first(RING_ADD, {"tid": 1, "slots": 1024},
                       fds=[Ring(tid=1).fd])(ctx),
     EPROTO, r"RING_ADD before HELLO"),
    # -- the arena descriptor
    ("arena-missing", first(HELLO, hello_payload("producer")),
     EBADF, r"HELLO: producer without the arena descriptor"),
    ("arena-pipe", producer_hello_with(a_pipe),
     EINVAL, BAD_ARENA + r": wrong size or header"),
    ("arena-socket", producer_hello_with(a_socket),
     EINVAL, BAD_ARENA + r": wrong size or header"),
    ("arena-regular-file", producer_hello_with(a_regular_file(ARENA_BYTES)),
     EPERM, BAD_ARENA + r": not sealed against shrinking"),
    ("arena-wrong-size",
     producer_hello_with(a_memfd(ARENA_BYTES + 4096,
                                 header=arena_header(rp.ARENA_MIN_SIZE))),
     EINVAL, BAD_ARENA + r": wrong size or header"),
    ("arena-unsealed",
     producer_hello_with(a_memfd(ARENA_BYTES, seal=False,
                                 header=arena_header(rp.ARENA_MIN_SIZE))),
     EPERM, BAD_ARENA + r": not sealed against shrinking"),
    ("arena-bad-magic",
     producer_hello_with(a_memfd(ARENA_BYTES,
                                 header=arena_header(rp.ARENA_MIN_SIZE, 0))),
     EINVAL, BAD_ARENA + r": wrong size or header"),
    ("arena-capacity-mismatch",
     producer_hello_with(a_memfd(ARENA_BYTES,
                                 header=arena_header(rp.ARENA_MIN_SIZE * 2))),
     EINVAL, BAD_ARENA + r": wrong size or header"),
    ("arena-size-too-small", producer_hello_with(good_arena, arena_size=4096),
     EINVAL, r"HELLO: arena_size 4096 out of range"),
    ("arena-size-too-big",
     producer_hello_with(good_arena, arena_size=rp.ARENA_MAX_SIZE + 1),
     EINVAL, r"HELLO: arena_size 268435457 out of range"),
    ("three-descriptors", producer_hello_with(three_memfds),
     EPROTO, r"more than 2 descriptors in one message \(MSG_CTRUNC\)"),
    ("descriptors-faster-than-frames", fds_faster_than_frames,
     EPROTO, r"descriptors sent without frames to claim them"),
    # -- ring descriptors
    ("ring-missing-fd", ring_add_with(None),
     EBADF, r"RING_ADD without the ring descriptor"),
    ("ring-pipe", ring_add_with(a_pipe),
     EINVAL, BAD_RING + r" \(1024 slots\): wrong size, slot count or header"),
    ("ring-regular-file", ring_add_with(a_regular_file(RING_BYTES)),
     EPERM, BAD_RING + r" \(1024 slots\): not sealed against shrinking"),
    ("ring-wrong-size",
     ring_add_with(a_memfd(RING_BYTES - 16, header=ring_header(1024))),
     EINVAL, BAD_RING + r" \(1024 slots\): wrong size"),
    ("ring-unsealed",
     ring_add_with(a_memfd(RING_BYTES, seal=False, header=ring_header(1024))),
     EPERM, BAD_RING + r" \(1024 slots\): not sealed against shrinking"),
    ("ring-bad-magic",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024, magic=1))),
     EINVAL, BAD_RING + r" \(1024 slots\): wrong size"),
    ("ring-slots-not-power-of-two",
     ring_add_with(a_memfd(rp.SHM_HEADER_SIZE + 1500 * 16,
                           header=ring_header(1500)), slots=1500),
     EINVAL, BAD_RING + r" \(1500 slots\)"),
    ("ring-slots-too-few",
     ring_add_with(a_memfd(rp.SHM_HEADER_SIZE + 512 * 16,
                           header=ring_header(512)), slots=512),
     EINVAL, BAD_RING + r" \(512 slots\)"),
    ("ring-slots-over-32-bits",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024)),
                   slots=(1 << 32) + 1024),
     errno.EFBIG, r"RING_ADD: 4294968320 slots exceeds the limit of 16777216"),
    ("ring-slots-over-limit",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024)),
                   slots=rp.RING_MAX_SLOTS * 2),
     errno.EFBIG, r"RING_ADD: 33554432 slots exceeds the limit of 16777216"),
    ("ring-header-tid-zero",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024, tid=0)),
                   tid=0),
     EINVAL, BAD_RING + r" \(1024 slots\): wrong size"),
    ("ring-tid-mismatch",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024)), tid=7),
     EPROTO, r"RING_ADD: header tid 424242 differs from tid 7"),
    ("ring-without-tid",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024)),
                   payload={"slots": 1024}),
     EPROTO, r"RING_ADD without tid or slots"),
    ("ring-on-control-connection",
     ring_add_with(a_memfd(RING_BYTES, header=ring_header(1024)),
                   role="control"),
     EPROTO, r"RING_ADD on a control connection"),
    # -- the output descriptor
    ("output-missing", create_with(None),
     EBADF, r"SESSION_CREATE without the output descriptor"),
    ("output-read-only",
     create_with(lambda ctx: os.open("/dev/null", os.O_RDONLY)),
     EBADF, r"the output descriptor is not open for writing"),
    ("output-pipe", create_with(a_pipe_writer),
     EINVAL, r"the output is not a regular file or device"),
    ("output-socket", create_with(a_socket),
     EINVAL, r"the output is not a regular file or device"),
    ("output-format",
     create_with(lambda ctx: out_memfd(),
                 {"path": "x", "format": "xml"}),
     EINVAL, r"format 'xml' is not supported \(use 'json', 'json.gz' or "
             r"'perfetto'\)"),
    ("output-format-not-a-string",
     create_with(lambda ctx: out_memfd(), {"path": "x", "format": 3}),
     EINVAL, r"SESSION_CREATE: format is not a string"),
    ("session-create-twice", create_twice,
     EBUSY, r"SESSION_CREATE while this connection's session is open"),
    # -- sessions
    ("session-end-without-session", after_hello(SESSION_END, {}),
     EINVAL, r"SESSION_END without an open session"),
    ("session-end-from-member", session_end_from_member,
     EPERM, r"SESSION_END from a process that did not create its session"),
    ("join-token-not-a-string", after_hello(SESSION_JOIN, {"token": 1234}),
     EPROTO, r"SESSION_JOIN without a token"),
    ("join-token-binary", after_hello(SESSION_JOIN, {"token": b"0" * 32}),
     EPROTO, r"SESSION_JOIN without a token"),
    ("join-token-missing", after_hello(SESSION_JOIN, {}),
     EPROTO, r"SESSION_JOIN without a token"),
    ("join-from-creator-of-another-session", join_from_creator,
     EBUSY, r"SESSION_JOIN from the creator of another open session"),
    # -- a started process announced (PROCESS_INFO child)
    ("child-not-a-map", after_hello(rp.PROCESS_INFO, {"child": 7}),
     EPROTO, r"PROCESS_INFO: child is not a map"),
    ("child-without-pid",
     after_hello(rp.PROCESS_INFO, {"child": {"path": "python3", "argv": []}}),
     EPROTO, r"PROCESS_INFO: child without a valid pid"),
    ("child-path-too-long",
     after_hello(rp.PROCESS_INFO, {"child": {"pid": 5, "path": "p" * 1025,
                                            "argv": []}}),
     EPROTO, r"PROCESS_INFO: child path longer than 1024 bytes"),
    ("child-argv-not-strings",
     after_hello(rp.PROCESS_INFO, {"child": {"pid": 5, "path": "python3",
                                            "argv": ["python3", 1]}}),
     EPROTO, r"PROCESS_INFO: child argv holds a non-string"),
    ("child-argv-too-long",
     after_hello(rp.PROCESS_INFO, {"child": {"pid": 5, "path": "python3",
                                            "argv": ["a" * 2048]}}),
     EPROTO, r"PROCESS_INFO: child argv longer than 2048 bytes"),
    # -- ring positions in shared memory
    ("ring-head-beyond-capacity",
     ring_positions(lambda r: r.publish(rp.RING_MIN_SLOTS + 1)),
     EPROTO, POSITIONS),
    ("ring-head-max", ring_positions(lambda r: r.publish((1 << 64) - 1)),
     EPROTO, POSITIONS),
    ("ring-head-backwards", ring_positions(head_backwards),
     EPROTO, POSITIONS),
    # The whole ring published, not one slot written: the daemon must not
    # read (and so allocate) the pages.
    ("ring-pages-never-written",
     ring_positions(lambda r: r.publish(rp.RING_MIN_SLOTS)),
     EPROTO, r"the ring of thread 424242 publishes records in pages it "
             r"never wrote"),
]


@pytest.mark.parametrize("case,code,reason",
                         [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused(daemon, tmp_path, case, code, reason):
    log = LogMark(daemon)
    ctx = Ctx(daemon, str(tmp_path), log)
    conn = case(ctx)
    assert_refused(daemon, log, conn, code, reason)
    # Nothing the case sent stays open in the daemon.
    left = [t for t in daemon_fd_targets(daemon)
            if "hostile" in t or "regular-" in t]
    assert not left, left
    assert_serves(daemon)


def test_traced_run_after_every_bad_input(daemon, tmp_path):
    """All the bad inputs against one daemon, then a real traced program:
    its trace is exact."""
    for i, (name, case, code, reason) in enumerate(BAD_INPUTS):
        log = LogMark(daemon)
        scratch = tmp_path / ("case-%d" % i)
        scratch.mkdir()
        ctx = Ctx(daemon, str(scratch), log)
        conn = case(ctx)
        try:
            assert_refused(daemon, log, conn, code, reason)
        except AssertionError as e:
            raise AssertionError("case %s: %s" % (name, e)) from None
        for c in ctx.keep:
            if isinstance(c, Conn):
                c.close()
    t = run_traced(daemon, NORMAL_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    assert_normal_trace(t)


NORMAL_PROGRAM = """
    def f(i):
        return i * 2


    def main():
        for i in range(300):
            f(i)


    main()
"""


def assert_normal_trace(t, calls=300):
    f_name = pyname(t.script, "f")
    main_name = pyname(t.script, "main")
    fs = slices(t.events, "f (")
    assert len(fs) == calls and all(e["name"] == f_name for e in fs), fs[:3]
    assert len([e for e in t.events if e.get("name") == main_name]) == 1
    assert not [e for e in t.events if e.get("args", {}).get("unfinished")]


# ---- descriptors, tokens, sizes that are not refusals -----------------------


def test_descriptors_no_frame_takes_are_closed(daemon):
    """Descriptors riding with a frame that takes none (DOORBELL,
    SESSION_JOIN, a control HELLO) are closed at once; the connection goes
    on and nothing is logged (PROTOCOL.md section 1)."""
    log = LogMark(daemon)
    c = Conn(daemon.socket)
    extra = [memfd(4096, name="hostile-extra") for _ in range(2)]
    t, p = c.request(HELLO, hello_payload("control"), extra[:1])
    assert t == WELCOME, (t, p)
    c.send(rp.DOORBELL, None, extra)
    t, p = c.request(SESSION_JOIN, {"token": "f" * 32}, extra[1:])
    assert t == SESSION_JOINED and p["active"] is False, (t, p)
    for fd in extra:
        os.close(fd)
    # That reply left while its frame was handled; the daemon closes what
    # the frame did not claim right after.  One more round trip.
    assert c.sync()[0] == SESSION_JOINED
    assert not [t for t in daemon_fd_targets(daemon) if "hostile" in t], (
        daemon_fd_targets(daemon))
    assert log.naming() == [], log.lines()
    c.close()
    assert_serves(daemon)


@pytest.mark.parametrize("token", ["", "xyz", "0" * 31, "0" * 33, "g" * 32,
                                   "\u00e9" * 16, "f" * 4096])
def test_join_with_malformed_token_string(daemon, token):
    """A token that is a string but names no session is not an error (the
    process waits idle to be adopted): SESSION_JOINED active=false, the
    connection stays usable, nothing is logged."""
    log = LogMark(daemon)
    with Conn(daemon.socket) as c:
        arena = Arena()
        assert c.hello("producer", arena)[0] == WELCOME
        t, p = c.request(SESSION_JOIN, {"token": token})
        assert (t, p) == (SESSION_JOINED, {"active": False, "epoch": 0})
        assert c.sync()[0] == SESSION_JOINED
    assert log.naming() == [], log.lines()
    assert_serves(daemon)


def test_frame_of_exactly_64k_is_accepted(daemon):
    """The limit is inclusive: a HELLO of exactly 65536 payload bytes (an
    unknown key pads it) is welcome; one byte more is refused."""
    base = hello_payload("control")
    for pad in range(65536, 65000, -1):
        body = msgpack.packb(dict(base, padding="x" * pad))
        if len(body) == 65536:
            break
    assert len(body) == 65536
    with Conn(daemon.socket) as c:
        c.send_bytes(frame(HELLO, body))
        assert c.recv_frame()[0] == WELCOME
    log = LogMark(daemon)
    with Conn(daemon.socket) as c:
        c.send_bytes(frame(HELLO, body + b"\xc0"))
        assert_refused(daemon, log, c, errno.EMSGSIZE,
                       r"frame of 65537 bytes exceeds the 65536-byte limit")


# ---- clients that stall -----------------------------------------------------


def test_silent_and_stalled_clients_do_not_block_others(daemon, tmp_path):
    """Connections that never speak, stop inside a header, or announce a
    64 KiB frame and send 100 bytes of it: the daemon keeps them (there is
    no handshake timeout: they are bounded by the per-uid connection limit
    and one 64 KiB input buffer each) and serves everyone else meanwhile."""
    log = LogMark(daemon)
    hello_bytes = frame(HELLO, hello_payload("control"))
    silent = Conn(daemon.socket)
    half_header = Conn(daemon.socket)
    half_header.send_bytes(hello_bytes[:5])
    half_frame = Conn(daemon.socket)
    half_frame.send_bytes(hello_bytes[:-3])
    big = Conn(daemon.socket)
    big.send_bytes(HDR.pack(65536, HELLO, 0) + b"\x80" * 100)
    stalled = [silent, half_header, half_frame, big]
    assert_serves(daemon)
    t = run_traced(daemon, NORMAL_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    assert_normal_trace(t)
    assert all(c.is_open() for c in stalled)
    assert log.complaints() == [], log.lines()
    # A stalled frame completed late is handled normally.
    half_frame.send_bytes(hello_bytes[-3:])
    assert half_frame.recv_frame()[0] == WELCOME
    for c in stalled:
        c.close()
    alive(daemon)


def set_daemon_nofile(daemon, soft):
    """Sets the daemon's soft descriptor limit (at most its hard limit)."""
    _, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < soft:
        pytest.skip("the daemon's hard descriptor limit is %d" % hard)
    resource.prlimit(daemon.proc.pid, resource.RLIMIT_NOFILE, (soft, hard))


def connect_many(path, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        socks.append(s)
    return socks


def refused_among(socks, expect, timeout=10.0):
    """Waits until `expect` of socks were answered or closed by the daemon
    (or timeout) and returns {index: [frames...] or [] for EOF} of those
    that were: each one read to its end."""
    poller = select.poll()
    for i, s in enumerate(socks):
        poller.register(s, select.POLLIN)
    ready = set()
    deadline = time.monotonic() + timeout
    while len(ready) < expect and time.monotonic() < deadline:
        for fd, _ in poller.poll(100):
            ready.add(fd)
            poller.unregister(fd)
    time.sleep(0.2)  # any stragglers beyond `expect`
    for fd, _ in poller.poll(0):
        ready.add(fd)
    out = {}
    for i, s in enumerate(socks):
        if s.fileno() not in ready:
            continue
        s.settimeout(5)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            data += chunk
        frames = []
        while len(data) >= 8:
            n, t, _ = HDR.unpack_from(data)
            frames.append((t, msgpack.unpackb(data[8:8 + n])))
            data = data[8 + n:]
        out[i] = frames
    return out


def settle(daemon):
    """Waits until the daemon holds no client connection (the fixture's
    readiness probe among them): only its listening socket is left."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sockets = [t for t in daemon_fd_targets(daemon)
                   if t.startswith("socket:")]
        if len(sockets) == 1:
            return
        time.sleep(0.01)
    raise AssertionError("the daemon still holds %d sockets" % len(sockets))


CONNS_PER_UID = 1024


@not_under_wrapper
def test_idle_connection_flood(daemon, tmp_path):
    """2000 idle connections from one uid: the first 1024 (the per-uid
    limit) are kept, every other one gets ERROR EMFILE; the log gets a
    burst of lines naming the peer per 10 s window (daemon/lograte.h), then
    one line saying the rest are held back, and, with the next refusal in
    a later window, how many were: logged plus held back is every refusal.
    Another user is served meanwhile; once they close, a traced program's
    trace is exact."""
    n = 2000
    raise_nofile(n + 256)
    set_daemon_nofile(daemon, 8192)
    settle(daemon)
    log = LogMark(daemon)
    socks = connect_many(daemon.socket, n)
    try:
        refused = refused_among(socks, n - CONNS_PER_UID)
        assert len(refused) == n - CONNS_PER_UID, (
            len(refused), log.lines()[-5:])
        # The daemon accepts in order: the first ones are the kept ones.
        assert min(refused) == CONNS_PER_UID
        for frames in refused.values():
            assert len(frames) == 1 and frames[0][0] == rp.ERROR, frames
            assert frames[0][1]["code"] == errno.EMFILE, frames
            assert frames[0][1]["message"] == \
                "too many connections for this user"
        # One more refusal in a later window reports what was held back.
        time.sleep(10.5)
        late = connect_many(daemon.socket, 1)
        socks += late
        assert len(refused_among(late, 1)) == 1
        lines = log.naming()
        assert 1 <= len(lines) <= len(refused), "\n".join(lines[:5])
        assert all(" WARN " in l and l.endswith(
            "event=refuse %s request=connect reason=\"too many connections "
            "for this user\"" % peer_tag()) for l in lines), lines[:3]
        limits = [l for l in log.lines() if "event=limit uid=%d " % MY_UID
                  in l and "what=refusal_log" in l]
        held = sum(int(l.split("held_back=")[1].split()[0])
                   for l in limits if "held_back=" in l)
        assert len(lines) < len(refused) + 1 and held > 0, limits
        assert len(lines) + held == len(refused) + 1, (len(lines), held)
        alive(daemon)
        if os.getuid() == 0:
            assert other_user_session(daemon) == [20, 20]
    finally:
        for s in socks:
            s.close()
    t = run_traced(daemon, NORMAL_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    assert_normal_trace(t)


def test_client_that_never_reads_replies_is_dropped(daemon):
    """A client that sends requests and never reads the answers is dropped
    once 64 KiB of replies wait for it, with one log line; its ERROR cannot
    be queued any more, so it just sees the end of the stream."""
    log = LogMark(daemon)
    c = Conn(daemon.socket)
    assert c.hello("control")[0] == WELCOME
    batch = frame(SESSION_JOIN, {"token": "f" * 32}) * 2000
    c.sock.setblocking(False)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            c.sock.send(batch)
        except BlockingIOError:
            if log.naming():
                break
            time.sleep(0.01)
        except (BrokenPipeError, ConnectionResetError):
            break
    c.sock.setblocking(True)
    reason = "the client does not read its replies"
    assert_refused(daemon, log, c, None, reason)
    c.close()
    assert_serves(daemon)


def test_rings_per_process_limit(daemon_with):
    """RING_ADD beyond --max-rings-per-process is refused (EMFILE)."""
    daemon = daemon_with("--max-rings-per-process", 8)
    log = LogMark(daemon)
    c = Conn(daemon.socket, timeout=30)
    arena = Arena()
    assert c.hello("producer", arena)[0] == WELCOME
    rings = [Ring(tid=1000 + i) for i in range(9)]
    for ring in rings[:8]:
        add = frame(RING_ADD, {"tid": ring.tid, "slots": ring.slots,
                               "name": "x"})
        socket.send_fds(c.sock, [add], [ring.fd])
    assert c.sync()[0] == SESSION_JOINED
    assert log.naming() == []
    log.mark()
    add = frame(RING_ADD, {"tid": rings[8].tid, "slots": rings[8].slots,
                           "name": "x"})
    socket.send_fds(c.sock, [add], [rings[8].fd])
    assert_refused(daemon, log, c, errno.EMFILE,
                   r"RING_ADD: more than 8 rings in one process")
    c.close()
    for ring in rings:
        ring.close()
    assert_serves(daemon)


def test_same_ring_registered_twice(daemon):
    """A memfd already registered by the process is refused (EEXIST): one
    mapping per ring, so a peer cannot multiply the daemon's mappings."""
    log = LogMark(daemon)
    c = Conn(daemon.socket, timeout=30)
    arena = Arena()
    assert c.hello("producer", arena)[0] == WELCOME
    ring = Ring()
    add = frame(RING_ADD, {"tid": ring.tid, "slots": ring.slots, "name": "x"})
    socket.send_fds(c.sock, [add], [ring.fd])
    assert c.sync()[0] == SESSION_JOINED
    log.mark()
    socket.send_fds(c.sock, [add], [ring.fd])
    assert_refused(daemon, log, c, errno.EEXIST,
                   r"RING_ADD: this ring is already registered")
    c.close()
    ring.close()
    assert_serves(daemon)


def test_join_another_users_session(daemon):
    """SESSION_JOIN with the token of another uid's session: ERROR EACCES,
    one log line naming that peer, and its connection stays usable."""
    creator = Conn(daemon.socket)
    assert creator.hello("control")[0] == WELCOME
    out = out_memfd()
    t, p = creator.create_session(out)
    assert t == rp.SESSION_CREATED
    token = p["token"]
    open_to_others(daemon)
    path = daemon.socket

    def join():
        with Conn(path) as c:
            arena = Arena()
            assert c.hello("producer", arena)[0] == WELCOME
            t, p = c.request(SESSION_JOIN, {"token": token})
            after = c.sync()
            return [os.getpid(), t, p, after[0]]

    log = LogMark(daemon)
    pid, t, p, after = as_other_user(join)
    assert t == rp.ERROR and p["code"] == errno.EACCES, (t, p)
    assert after == SESSION_JOINED
    lines = log.naming(pid=pid, uid=65534)
    assert len(lines) == 1 and " WARN " in lines[0], log.lines()
    assert ("event=refuse pid=%d uid=65534 request=SESSION_JOIN "
            "reason=\"the session belongs to uid %d\"" % (pid, MY_UID)
            in lines[0]), lines[0]
    assert creator.request(SESSION_END, {})[0] == rp.SESSION_SUMMARY
    creator.close()
    os.close(out)
    assert_serves(daemon)


# ---- what shared memory says is never trusted -------------------------------


def ended_line(daemon, epoch):
    lines = [l for l in daemon.log().splitlines()
             if "event=session_end session=%d " % epoch in l]
    assert len(lines) == 1, daemon.log()
    return lines[0]


def test_string_ids_and_extras_are_checked(daemon):
    """Records whose string id lies outside the arena (past `committed`,
    unaligned, past the capacity, an entry longer than 4096) or whose
    `extra` is impossible are counted malformed and written as nothing;
    every good record around them is written exactly."""
    c = Conn(daemon.socket)
    arena = Arena()
    assert c.hello("producer", arena)[0] == WELCOME
    out = out_memfd()
    t, p = c.create_session(out)
    assert t == rp.SESSION_CREATED
    epoch = p["epoch"]
    ring = Ring()
    c.add_ring(ring)
    assert c.sync()[0] == SESSION_JOINED
    good = arena.intern("good")
    counter = arena.intern("depth")
    long_entry = arena.intern(b"y" * 16)
    # Its length field now claims 5000 bytes (beyond the 4096 limit and
    # beyond `committed`).
    struct.pack_into("<I", arena.map, rp.SHM_HEADER_SIZE + long_entry, 5000)
    # An entry whose bytes are all there but whose length lies (> 4096).
    lying = arena.intern(b"z" * 5000)
    struct.pack_into("<I", arena.map, rp.SHM_HEADER_SIZE + lying, 4097)
    committed = arena.committed
    bad_ids = [committed, committed + 4, good + 2, 0xfffffffc,
               arena.data_size - 4, arena.data_size, long_entry, lying]
    ts = time.monotonic_ns()
    one = struct.pack("<dQ", 1.5, 0)
    for i in range(3):
        ring.put(ts + i, good, rp.INSTANT)
    ring.put(ts + 10, good, rp.PY_CALL)
    ring.put(ts + 11, good, rp.PY_RETURN)
    ring.put(ts + 12, counter, rp.COUNTER, 1, [one])
    for j, bad in enumerate(bad_ids):
        ring.put(ts + 20 + j, bad, rp.INSTANT)
    ring.put(ts + 40, bad_ids[0], rp.PY_CALL)
    ring.put(ts + 41, bad_ids[0], rp.PY_RETURN)
    ring.put(ts + 42, good, rp.COUNTER)  # a counter needs its extra slot
    ring.put(ts + 43, bad_ids[1], rp.THREAD_NAME)
    ring.put(ts + 44, good, 999, 2, [b"?", b"?"])  # unknown kind: skipped
    ring.publish()
    assert c.sync()[0] == SESSION_JOINED
    time.sleep(0.05)
    # `extra` above 4, then `extra` reaching beyond head: each ends its
    # batch (resync at head).
    ring.put(ts + 50, good, rp.INSTANT, 5)
    ring.publish(ring.head - 5)  # the five slots it claims are not there
    time.sleep(0.05)
    ring.put(ts + 60, good, rp.INSTANT)
    ring.publish()
    time.sleep(0.05)
    ring.put(ts + 70, counter, rp.COUNTER, 1)
    ring.publish(ring.head - 1)
    time.sleep(0.05)
    ring.put(ts + 80, good, rp.INSTANT)
    ring.publish()
    t, summary = c.request(SESSION_END, {})
    assert t == rp.SESSION_SUMMARY, (t, summary)
    data = json.loads(os.pread(out, os.fstat(out).st_size, 0).decode())
    events = [e for e in data["traceEvents"] if e["ph"] != "M"]
    got = sorted((e["ph"], e["name"], e["ts"]) for e in events)
    us = lambda ns: round(ns / 1000, 3)
    want = sorted([("i", "good", us(ts + i)) for i in range(3)] +
                  [("X", "good", us(ts + 10)), ("C", "depth", us(ts + 12)),
                   ("i", "good", us(ts + 60)), ("i", "good", us(ts + 80))])
    assert got == want, events
    assert summary["events"] == len(want)
    # 8 bad instants + the call with a bad id + the counter without its
    # slot + the bad thread name + the two resyncs.
    assert "malformed=13 unmatched=0" in ended_line(daemon, epoch)
    c.close()
    alive(daemon)
    assert_serves(daemon)


HOSTILE_MARK = "HOSTILE-garbage"


def garbage_writer(ring, arena, ids, seed, stop, counter):
    """Publishes records of random garbage (kinds, ids, timestamps,
    extras) at valid positions and rewrites published slots and arena
    entries and `committed` while the daemon reads them."""
    rnd = random.Random(seed)
    cap = ring.slots
    head = ring.head
    while not stop.is_set():
        room = ring.tail() + cap - head
        k = rnd.randint(0, max(0, min(room, 48)))
        now = time.monotonic_ns()
        for i in range(k):
            ring.write(head + i,
                       rnd.choice([now + rnd.randrange(10 ** 6), 0,
                                   (1 << 64) - 1, rnd.getrandbits(64)]),
                       rnd.choice(ids + [rnd.getrandbits(32), 2,
                                         arena.data_size - 4, 0xfffffffc]),
                       rnd.choice(list(range(0, 12)) + [999, 0xffff]),
                       rnd.choice([0] * 12 + [1, 2, 4, 5, 0xffff]))
        for _ in range(4):
            off = ring.slot_offset(rnd.randrange(cap))
            ring.map[off:off + 16] = rnd.randbytes(16)
        head += k
        ring.publish(head)
        off = rp.SHM_HEADER_SIZE + rnd.randrange(256)
        arena.map[off:off + 8] = rnd.randbytes(8)
        if rnd.random() < 0.05:
            struct.pack_into("<I", arena.map, rp.ARENA_COMMITTED,
                             rnd.choice([arena.data_size + 4, 0xffffffff,
                                         0, arena.committed,
                                         rnd.getrandbits(32)]))
        counter[0] += k
        time.sleep(0.0005)


SLOW_PROGRAM = """
    import time


    def f(i):
        return i * 2


    def main():
        for i in range(200):
            f(i)
            time.sleep(0.003)


    main()
"""


def test_garbage_stays_out_of_other_sessions(daemon, tmp_path):
    """While a normal program runs traced, a hostile producer rewrites its
    rings and arena with random garbage, both in a session of its own and
    idle: the daemon keeps up, the hostile session's file is still valid
    JSON and UTF-8, and the normal trace holds exactly the program's events
    and nothing of the garbage."""
    log = LogMark(daemon)
    hostile = Conn(daemon.socket)
    arena = Arena()
    assert hostile.hello("producer", arena)[0] == WELCOME
    out = out_memfd()
    t, p = hostile.create_session(out)
    assert t == rp.SESSION_CREATED
    hostile_epoch = p["epoch"]
    idle = Conn(daemon.socket)
    idle_arena = Arena()
    assert idle.hello("producer", idle_arena)[0] == WELCOME
    marks = [HOSTILE_MARK + s for s in (
        "", "\"quote\\back", "\x00\x01\x1f\x7f", "\u2028\ud7ff")]
    ids = [arena.intern(m) for m in marks]
    ids += [arena.intern(HOSTILE_MARK.encode() + b"\xff\xfe\xc0\x80\xed\xa0"
                         b"\x80\xf4\x90\x80\x80")]
    idle_ids = [idle_arena.intern(m) for m in marks]
    rings = [Ring(tid=900001), Ring(tid=900002)]
    for r in rings:
        hostile.add_ring(r)
    idle_ring = Ring(tid=900003)
    idle.add_ring(idle_ring)
    assert hostile.sync()[0] == SESSION_JOINED
    assert idle.sync()[0] == SESSION_JOINED
    stop = threading.Event()
    written = [0]
    writers = [threading.Thread(target=garbage_writer,
                                args=(r, a, i, seed, stop, written))
               for seed, (r, a, i) in enumerate([
                   (rings[0], arena, ids), (rings[1], arena, ids),
                   (idle_ring, idle_arena, idle_ids)])]
    for w in writers:
        w.start()
    try:
        t = run_traced(daemon, SLOW_PROGRAM, tmp_path)
    finally:
        stop.set()
        for w in writers:
            w.join()
    assert written[0] > 1000, written
    assert t.returncode == 0, t.result.describe()
    assert_normal_trace(t, calls=200)
    raw = t.output.read_bytes()
    assert HOSTILE_MARK.encode() not in raw
    pids = {e["pid"] for e in t.events}
    assert len(pids) == 1, pids
    assert {e["tid"] for e in t.events if e["ph"] != "M"} <= {
        e["tid"] for e in t.events if e.get("name") == "thread_name"}
    # The hostile session ends normally; its file is valid JSON and UTF-8.
    t2, summary = hostile.request(SESSION_END, {}, timeout=10)
    assert t2 == rp.SESSION_SUMMARY, (t2, summary)
    data = json.loads(os.pread(out, os.fstat(out).st_size, 0).decode("utf-8"))
    assert summary["events"] == len(
        [e for e in data["traceEvents"] if e["ph"] != "M"])
    assert "malformed=0 " not in ended_line(daemon, hostile_epoch)
    # Nobody was dropped: garbage in valid positions is only counted.
    assert log.complaints() == [], log.lines()
    assert idle.is_open() and hostile.is_open()
    for c in (hostile, idle):
        c.close()
    alive(daemon)
    assert_serves(daemon)


# ---- daemon bugs: these fail until they are fixed (docs/hostile.md) ---------


def test_terminal_output_cannot_stall_the_daemon(daemon):
    """BUG (daemon/session.c tr_session_create, output/writer_json.c
    tr_json_flush): a session's output may be any character device, and
    the daemon writes it with blocking write(2) on its one thread.  A
    terminal whose output is suspended (^S, or a pty nobody reads) blocks
    that write forever: every session of every user stops, and SIGTERM is
    not handled.  Refusing such an output is fine; accepting it must not
    stall anyone else."""
    master, slave = os.openpty()
    termios.tcflow(slave, termios.TCOOFF)
    c = Conn(daemon.socket)
    try:
        assert c.hello("control")[0] == WELCOME
        c.create_session(slave)  # SESSION_CREATED, or an ERROR: both fine
        time.sleep(0.1)  # more than one drain tick: the file head is due
        answered = None
        try:
            with Conn(daemon.socket, timeout=2) as probe:
                answered = probe.request(HELLO, hello_payload("control"),
                                         timeout=2)[0]
        except (socket.timeout, TimeoutError, rp.Closed, OSError):
            pass
        assert answered == WELCOME, (
            "the daemon stopped answering everyone for 2 s: it is blocked "
            "in write(2) on a session output that is a suspended terminal")
    finally:
        termios.tcflow(slave, termios.TCOON)
        os.set_blocking(master, False)
        c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if not os.read(master, 65536):
                    break
            except BlockingIOError:
                time.sleep(0.05)
                if daemon_fd_targets(daemon).count(os.ttyname(slave)) == 0:
                    break
            except OSError:
                break
        os.close(slave)
        os.close(master)


@not_under_wrapper
def test_refusals_at_the_descriptor_limit_name_the_peer(daemon_with):
    """BUG (daemon/server.c on_listen_poll / accept_one; cli/main.c):
    the daemon never raises its soft RLIMIT_NOFILE, which is 1024 for most
    services, so the documented per-uid connection limit (1024) is never
    reached: accept() fails with EMFILE first.  The spare-descriptor
    fallback then closes connections with no ERROR frame and logs
    "accept: Too many open files" without naming the peer, and it refuses
    every user alike (one uid's idle connections lock everyone out); a
    memfd that a connected producer sends meanwhile is lost (MSG_CTRUNC).
    Every refusal must get ERROR and one WARN line naming the peer."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1300:
        pytest.skip("hard descriptor limit %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        d = daemon_with()  # inherits the common default soft limit: 1024
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    raise_nofile(1400)
    settle(d)
    log = LogMark(d)
    n = 1100
    socks = connect_many(d.socket, n)
    try:
        refused = refused_among(socks, 1, timeout=5)
        assert refused, "nothing was refused: the test did not reach a limit"
        no_error = [i for i, f in refused.items() if not f]
        complaints = log.complaints()
        anonymous = [l for l in log.lines() if "accept:" in l]
        assert not no_error and not anonymous and \
            len(complaints) == len(refused), (
                "%d connections refused, %d without an ERROR frame, %d log "
                "lines naming the peer; lines not naming it: %r" %
                (len(refused), len(no_error), len(complaints),
                 anonymous[:2]))
    finally:
        for s in socks:
            s.close()


@not_under_wrapper
def test_ring_mappings_are_bounded_per_user(daemon):
    """BUG (daemon/server.c handle_ring_add, daemon/proc.c
    tr_proc_add_thread): rings are limited per process (4096) but not per
    uid, and one memfd may be registered any number of times.  About 16
    connections re-sending one 20 KiB memfd as rings fill the daemon's
    mappings up to vm.max_map_count (65530 by default); from then on every
    other user's HELLO or RING_ADD fails with ENOMEM ("cannot map it").
    Here uid 0 floods and another uid must still be served."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    with open("/proc/sys/vm/max_map_count") as fh:
        max_maps = int(fh.read())
    if max_maps > 131072:
        pytest.skip("vm.max_map_count %d: the flood would take too long" %
                    max_maps)
    ring = Ring(tid=777)
    add = frame(RING_ADD, {"tid": ring.tid, "slots": ring.slots, "name": "x"})
    conns = []
    try:
        while len(conns) < 64:
            room = max_maps - daemon_map_count(daemon) - 1
            if room <= 0:
                break
            c = Conn(daemon.socket, timeout=30)
            conns.append(c)
            arena = Arena()
            if c.hello("producer", arena)[0] != WELCOME:
                break
            arena.close()
            for _ in range(min(room, 4096)):
                try:
                    socket.send_fds(c.sock, [add], [ring.fd])
                except OSError:
                    break
            try:
                if c.sync()[0] != SESSION_JOINED:
                    break  # refused: the daemon bounds the flood
            except (rp.Closed, OSError):
                break
        alive(daemon)
        try:
            got = other_user_session(daemon)
        except AssertionError as e:
            got = str(e)
        assert got == [20, 20], (
            "another user is not served once uid %d registered %d ring "
            "mappings (vm.max_map_count %d): %s" %
            (MY_UID, daemon_map_count(daemon), max_maps, got))
    finally:
        for c in conns:
            c.close()
        ring.close()


@not_under_wrapper
def test_open_call_memory_is_bounded_per_user(daemon):
    """BUG (daemon/proc.c stack_grow): open calls are bounded per thread
    (1 Mi) and per process (TR_PROC_MAX_OPEN, 4 Mi = 64 MiB) but not per
    uid, and the daemon allows 1024 connections per uid: one user can make
    it allocate 64 GiB.  Each connection here registers one shared 16 MiB
    memfd of 1 Mi PY_CALL records four times in its own session; 12
    connections must not cost the daemon more than 512 MiB."""
    creator = Conn(daemon.socket, timeout=30)
    assert creator.hello("control")[0] == WELCOME
    out = os.open("/dev/null", os.O_WRONLY)
    t, p = creator.create_session(out)
    os.close(out)
    assert t == rp.SESSION_CREATED
    token = p["token"]
    slots = 1 << 20
    ring = Ring(slots=slots, tid=555)
    # An unaligned name id: the calls still open when the connections close
    # fail their name lookup at once instead of being written as 48 Mi
    # unfinished slices (which takes seconds).
    ring.map[rp.SHM_HEADER_SIZE:] = rp.RECORD.pack(1 << 62, 2, rp.PY_CALL,
                                                   0) * slots
    ring.publish(slots)
    base = daemon_status(daemon, "RssAnon")
    peak = base
    conns = []
    try:
        for _ in range(12):
            c = Conn(daemon.socket, timeout=30)
            conns.append(c)
            arena = Arena()
            if c.hello("producer", arena)[0] != WELCOME:
                break
            if c.request(SESSION_JOIN, {"token": token})[0] != SESSION_JOINED:
                break
            for _ in range(4):
                # A new view starts at the shared tail: rewind it; the
                # DOORBELL drains the view before the next rewind.
                struct.pack_into("<Q", ring.map, rp.RING_TAIL, 0)
                c.add_ring(ring)
                c.send(rp.DOORBELL)
                if c.sync()[0] != SESSION_JOINED:
                    break
            peak = max(peak, daemon_status(daemon, "RssAnon"))
        for _ in range(20):  # the last rings drain on the next ticks
            time.sleep(0.02)
            peak = max(peak, daemon_status(daemon, "RssAnon"))
        alive(daemon)
        grown_mib = (peak - base) // 1024
        assert grown_mib < 512, (
            "one uid made the daemon allocate %d MiB of open-call stacks "
            "with %d connections (the per-uid connection limit is 1024)" %
            (grown_mib, len(conns)))
    finally:
        for c in conns:
            c.close()
        creator.close()
        ring.close()


@not_under_wrapper
def test_empty_rings_are_not_faulted_in(daemon):
    """A producer registers four 64 MiB rings and publishes a head that
    claims every slot of each, writing none: reading them would make the
    daemon allocate 256 MiB of shared memory that the producer never paid
    for (a read of a page nobody wrote allocates it in the reader).  The
    daemon checks that the pages exist before it reads them: its shared
    memory grows by far less than the rings' size, the connection is
    dropped with one log line, and another user's session meanwhile is
    exact."""
    slots = 1 << 22
    rings = [Ring(slots=slots, tid=900 + i) for i in range(4)]
    size = sum(r.size for r in rings)
    log = LogMark(daemon)
    base = daemon_status(daemon, "RssShmem")
    c = Conn(daemon.socket, timeout=30)
    arena = Arena()
    try:
        assert c.hello("producer", arena)[0] == WELCOME
        for ring in rings:
            ring.publish(slots)
            c.add_ring(ring, name="empty")
        kind, code, message = c.outcome(timeout=20)
        assert (kind, code) == ("error", errno.EPROTO), (kind, code, message)
        assert re.search(r"the ring of thread 9\d\d publishes records in "
                         r"pages it never wrote", message), message
        assert c.wait_eof(20)
        if os.getuid() == 0:
            assert other_user_session(daemon) == [20, 20]
        else:
            assert_serves(daemon)
        grown = daemon_status(daemon, "RssShmem") - base
        assert grown * 1024 < size // 16, (
            "the daemon's shared memory grew by %d KiB for %d KiB of rings "
            "that were never written" % (grown, size // 1024))
        complaints = log.complaints()
        assert len(complaints) == 1, "\n".join(log.lines())
        alive(daemon)
    finally:
        c.close()
        arena.close()
        for ring in rings:
            ring.close()


@not_under_wrapper
def test_empty_arena_is_not_faulted_in(daemon):
    """A producer's 256 MiB string arena says it is full (`committed` at
    its capacity) with only its first page written, and its ring names a
    string on every other page: looking them up would make the daemon
    allocate 256 MiB that the producer never paid for.  The daemon does
    not believe that `committed`: those events are malformed (counted),
    its shared memory grows by far less than the arena, and the session
    ends with every record accounted for."""
    asize = rp.ARENA_MAX_SIZE
    arena = Arena(data_size=asize)
    arena.set_committed(asize)
    slots = 1 << 16
    ring = Ring(slots=slots, tid=777)
    base = daemon_status(daemon, "RssShmem")
    out = os.open("/dev/null", os.O_WRONLY)
    c = Conn(daemon.socket, timeout=30)
    try:
        assert c.hello("producer", arena)[0] == WELCOME
        assert c.create_session(out)[0] == rp.SESSION_CREATED
        ts = time.monotonic_ns()
        for k in range(1, slots):
            ring.put(ts + k, k * 4096, rp.INSTANT)
        c.add_ring(ring)
        assert c.sync()[0] == SESSION_JOINED
        ring.publish()
        deadline = time.monotonic() + 20
        while ring.tail() != ring.head and time.monotonic() < deadline:
            time.sleep(0.01)
        assert ring.tail() == ring.head, "the daemon did not drain the ring"
        grown = daemon_status(daemon, "RssShmem") - base
        t, summary = c.request(SESSION_END, {}, timeout=20)
        assert t == rp.SESSION_SUMMARY, (t, summary)
        assert summary["events"] == 0, summary
        assert summary["malformed"] == slots - 1, summary
        assert grown * 1024 < asize // 16, (
            "the daemon's shared memory grew by %d KiB for an arena of %d "
            "KiB that was never written" % (grown, asize // 1024))
        alive(daemon)
    finally:
        c.close()
        os.close(out)
        arena.close()
        ring.close()
    assert_serves(daemon)


def prefilled_rings_then_close(path, rings, slots):
    """(As another user.)  A producer that creates a session into
    /dev/null, registers `rings` rings of `slots` slots each already full
    of calls (slots / 2 enter/exit pairs per ring), and disconnects: the
    daemon's final drain of them is all that is left.  Returns the number
    of calls."""
    arena = Arena()
    out = os.open("/dev/null", os.O_WRONLY)
    made = []
    try:
        with Conn(path, timeout=30) as c:
            t, p = c.hello("producer", arena)
            assert t == WELCOME, (t, p)
            t, p = c.create_session(out, path="/dev/null")
            assert t == rp.SESSION_CREATED, (t, p)
            fid = arena.intern("prefilled (flood.py:1)")
            ts = time.monotonic_ns()
            pair = (rp.RECORD.pack(ts, fid, rp.PY_CALL, 0) +
                    rp.RECORD.pack(ts + 10, fid, rp.PY_RETURN, 0))
            data = pair * (slots // 2)
            for i in range(rings):
                ring = Ring(slots=slots, tid=os.getpid() * 100 + i)
                made.append(ring)
                ring.map[rp.SHM_HEADER_SIZE:] = data
                ring.publish(slots)
                c.add_ring(ring, name="full")
            t, p = c.sync()
            assert t == SESSION_JOINED, (t, p)
        return rings * slots // 2
    finally:
        os.close(out)
        arena.close()
        for ring in made:
            ring.close()


FINAL_DRAIN_PROGRAM = """
    def f(i):
        return i * 2


    def main():
        for i in range(20000):
            f(i)


    main()
"""


def test_prefilled_rings_closing_do_not_stall_others(daemon, tmp_path):
    """Another user fills 256 MiB of rings (16 x 16 MiB of calls) and
    disconnects: the daemon drains all of it (its final drains take turns
    like live work), while this user's traced program runs exact with
    nothing dropped and `traced status` answers."""
    rings, slots = 16, 1 << 20
    if os.environ.get("TRACED_DAEMON_WRAPPER"):
        rings = 1  # the same path, sized for valgrind
    open_to_others(daemon)
    path = daemon.socket
    calls = as_other_user(lambda: prefilled_rings_then_close(path, rings,
                                                             slots),
                          timeout=120)
    assert calls == rings * slots // 2
    st = run([TRACED_BIN, "status", "--socket", daemon.socket],
             env=daemon.env, cwd=tmp_path, timeout=20)
    assert st.returncode == 0, st.describe()
    t = run_traced(daemon, FINAL_DRAIN_PROGRAM, tmp_path)
    assert t.returncode == 0, t.result.describe()
    assert " 0 dropped," in summary_line(t.stderr), t.stderr
    assert_normal_trace(t, calls=20000)
    st = run([TRACED_BIN, "status", "--socket", daemon.socket],
             env=daemon.env, cwd=tmp_path, timeout=20)
    assert st.returncode == 0, st.describe()
    # The other user's session ends once its rings are drained: every
    # call it committed is counted.
    line = None
    deadline = time.monotonic() + 300
    while line is None and time.monotonic() < deadline:
        line = next((l for l in daemon.log().splitlines()
                     if "event=session_end" in l and " uid=65534 " in l),
                    None)
        time.sleep(0.1)
    assert line is not None, daemon.log()[-3000:]
    assert " events=%d dropped=0 " % calls in line, line
    alive(daemon)


def test_empty_string_names(daemon):
    """Regression (found by fuzz_ring, tests/fuzz/regressions/ring-*): a
    name that is the empty string -- traced_instant(""), an empty thread
    name -- made daemon/proc.c name_escaped() call memcpy(NULL, ..., 0),
    undefined behaviour that aborts the ASan/UBSan daemon (`make asan`).
    Every record kind that carries a name, with an empty one: the events
    are written with name "" and the daemon lives."""
    c = Conn(daemon.socket)
    arena = Arena()
    assert c.hello("producer", arena)[0] == WELCOME
    out = out_memfd()
    t, p = c.create_session(out)
    assert t == rp.SESSION_CREATED
    ring = Ring()
    c.add_ring(ring)
    assert c.sync()[0] == SESSION_JOINED
    empty = arena.intern("")
    ts = time.monotonic_ns()
    ring.put(ts, empty, rp.INSTANT)
    ring.put(ts + 1, empty, rp.PY_CALL)
    ring.put(ts + 2, empty, rp.C_CALL)
    ring.put(ts + 3, empty, rp.C_RETURN)
    ring.put(ts + 4, empty, rp.PY_RETURN)
    ring.put(ts + 5, empty, rp.COUNTER, 1, [struct.pack("<dQ", 1.0, 0)])
    ring.put(ts + 6, empty, rp.THREAD_NAME)
    ring.put(ts + 7, empty, rp.BEGIN)
    ring.publish()
    c.send(rp.DOORBELL)
    assert c.sync()[0] == SESSION_JOINED
    alive(daemon)
    t, summary = c.request(SESSION_END, {})
    assert t == rp.SESSION_SUMMARY, (t, summary)
    data = json.loads(os.pread(out, os.fstat(out).st_size, 0).decode())
    got = sorted(e["ph"] for e in data["traceEvents"]
                 if e["ph"] != "M" and e["name"] == "")
    assert got == ["C", "X", "X", "X", "i"], data
    c.close()
    os.close(out)
    alive(daemon)
    assert_serves(daemon)


@pytest.mark.parametrize("fmt", ["json", "json.gz", "perfetto"])
def test_name_id_all_ones(daemon, tmp_path, fmt):
    """Regression (found by fuzz_ring,
    tests/fuzz/regressions/ring-name-id-all-ones-matched-empty-cache-slot):
    string id 0xffffffff, once names were cached, matched an empty cache
    slot (key id + 1 wrapped to 0) and handed memcpy a NULL name, undefined
    behaviour that aborts the ASan/UBSan daemon.  In every format the
    events naming it are counted malformed and the others written."""
    c = Conn(daemon.socket)
    arena = Arena()
    assert c.hello("producer", arena)[0] == WELCOME
    path = tmp_path / "trace"
    out = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    t, p = c.request(rp.SESSION_CREATE, {"path": "t", "format": fmt}, [out])
    assert t == rp.SESSION_CREATED, (t, p)
    ring = Ring()
    c.add_ring(ring)
    assert c.sync()[0] == SESSION_JOINED
    f = arena.intern("f")
    ts = time.monotonic_ns() + 1000000
    ring.put(ts, f, rp.PY_CALL)          # caches the name
    ring.put(ts + 1, f, rp.PY_RETURN)
    for i, kind in enumerate((rp.INSTANT, rp.PY_CALL, rp.PY_RETURN)):
        ring.put(ts + 2 + i, 0xFFFFFFFF, kind)
    ring.put(ts + 5, 0xFFFFFFFF, rp.COUNTER, 1,
             [struct.pack("<dQ", 1.0, 0)])
    ring.put(ts + 6, f, rp.PY_CALL)
    ring.put(ts + 7, f, rp.PY_RETURN)
    ring.publish()
    t, summary = c.request(SESSION_END, {})
    assert t == rp.SESSION_SUMMARY, (t, summary)
    c.close()
    os.close(out)
    # The instant, the call and the counter: malformed, not written.
    assert (summary["events"], summary["malformed"]) == (2, 3), summary
    alive(daemon)
    assert_serves(daemon)

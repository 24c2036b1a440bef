"""The traced wire protocol spoken by hand, for tests that must send what
no real client would (proto/PROTOCOL.md is the spec).

Frames are an 8-byte header (u32 payload length, u16 type, u16 flags, all
little-endian) and a msgpack map.  Shared memory is real: memfds sealed
the way libclient seals them (or not, when a test wants that), mapped here
so a test can write ring records and arena strings, or garbage.

Nothing here asserts; the tests decide what the daemon's answers mean.
"""

import errno
import fcntl
import json
import mmap
import os
import select
import socket
import struct
import time

import msgpack

# ---- protocol constants (proto/traced_proto.h) ------------------------------

MAGIC = "traced"
VERSION = 1

HELLO = 1
WELCOME = 2
SESSION_CREATE = 3
SESSION_CREATED = 4
SESSION_JOIN = 5
SESSION_JOINED = 6
RING_ADD = 7
DOORBELL = 8
SESSION_END = 9
SESSION_SUMMARY = 10
PROCESS_INFO = 11
STATUS = 12
STATUS_REPLY = 13
STOP = 14
ERROR = 15
STOPPING = 16

FRAME_MAX_PAYLOAD = 64 * 1024
FRAME_MAX_FDS = 2

SHM_HEADER_SIZE = 4096
ARENA_MAGIC = 0x54535254  # "TRST"
ARENA_MIN_SIZE = 64 * 1024
ARENA_MAX_SIZE = 256 * 1024 * 1024
RING_MAGIC = 0x47525254  # "TRRG"
RING_MIN_SLOTS = 1024
RING_MAX_SLOTS = 1 << 24
STRING_MAX_LEN = 4096
RECORD_MAX_EXTRA = 256  # TR_RECORD_MAX_EXTRA (4 for daemons before ARGS)

# Record kinds.
PY_CALL = 1
PY_RETURN = 2
C_CALL = 3
C_RETURN = 4
BEGIN = 5
END = 6
INSTANT = 7
COUNTER = 8
THREAD_NAME = 9
LOST = 10

HDR = struct.Struct("<IHH")
RECORD = struct.Struct("<QIHH")

SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL

# Ring header offsets.
RING_HEAD = 64
RING_DROPPED = 72
RING_CLOSED = 80
RING_BELL = 84
RING_TAIL = 128
# Arena header offsets.
ARENA_STATE = 64
ARENA_COMMITTED = 128
ARENA_DROPPED = 132


def frame(type_, payload=None, flags=0, length=None):
    """One frame's bytes.  `payload` is a dict (packed as a msgpack map),
    raw bytes (sent as they are), or None (empty).  `length` overrides the
    header's length field (a lie about the payload)."""
    if payload is None:
        body = b""
    elif isinstance(payload, (bytes, bytearray)):
        body = bytes(payload)
    else:
        body = msgpack.packb(payload, use_bin_type=True)
    n = len(body) if length is None else length
    return HDR.pack(n, type_, flags) + body


def hello_payload(role="producer", arena_size=ARENA_MIN_SIZE, **override):
    """A correct HELLO map for this process; `override` replaces keys, and
    a value of None removes the key."""
    m = {
        "magic": MAGIC,
        "version": VERSION,
        "role": role,
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "argv": ["hostile-test"],
        "name": "hostile-test",
        "clock": "monotonic",
        "now_ns": time.monotonic_ns(),
    }
    if role == "producer" and arena_size is not None:
        m["arena_size"] = arena_size
    for k, v in override.items():
        if v is None:
            m.pop(k, None)
        else:
            m[k] = v
    return m


# ---- shared memory ----------------------------------------------------------


def memfd(size, seal=True, name="hostile"):
    """A memfd of `size` bytes, sealed like libclient's unless seal=False."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    os.ftruncate(fd, size)
    if seal:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, SEALS)
    return fd


class Arena:
    """A string arena: memfd + shared mapping + a writer that interns."""

    def __init__(self, data_size=ARENA_MIN_SIZE, seal=True, fd=None):
        self.data_size = data_size
        self.size = SHM_HEADER_SIZE + data_size
        self.fd = memfd(self.size, seal, "traced-arena") if fd is None else fd
        self.map = mmap.mmap(self.fd, self.size)
        struct.pack_into("<IHHI", self.map, 0, ARENA_MAGIC, VERSION,
                         SHM_HEADER_SIZE, data_size)
        self.committed = 0
        self.unknown = self.intern("<unknown>")

    def intern(self, s):
        """Appends a string entry (bytes or str) and publishes it; returns
        its id."""
        b = s.encode() if isinstance(s, str) else bytes(s)
        at = self.committed
        need = 4 + ((len(b) + 3) & ~3)
        base = SHM_HEADER_SIZE + at
        struct.pack_into("<I", self.map, base, len(b))
        self.map[base + 4:base + 4 + len(b)] = b
        self.set_committed(at + need)
        return at

    def set_committed(self, value):
        self.committed = value
        struct.pack_into("I", self.map, ARENA_COMMITTED, value)

    def state(self):
        return struct.unpack_from("<Q", self.map, ARENA_STATE)[0]

    def close(self):
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Ring:
    """One thread's ring: memfd + shared mapping + a record writer."""

    def __init__(self, slots=RING_MIN_SLOTS, tid=None, seal=True, fd=None):
        self.slots = slots
        self.tid = tid if tid is not None else 424242
        self.size = SHM_HEADER_SIZE + slots * 16
        self.fd = memfd(self.size, seal, "traced-ring") if fd is None else fd
        self.map = mmap.mmap(self.fd, self.size)
        struct.pack_into("<IHHII", self.map, 0, RING_MAGIC, VERSION,
                         SHM_HEADER_SIZE, slots, self.tid)
        self.head = 0

    def slot_offset(self, pos):
        return SHM_HEADER_SIZE + (pos & (self.slots - 1)) * 16

    def write(self, pos, ts, id_, kind, extra=0):
        RECORD.pack_into(self.map, self.slot_offset(pos), ts, id_, kind,
                         extra)

    def put(self, ts, id_, kind, extra=0, payload=()):
        """Writes one record (and its extra slots, raw 16-byte values)
        at head without publishing it."""
        self.write(self.head, ts, id_, kind, extra)
        for i, p in enumerate(payload):
            off = self.slot_offset(self.head + 1 + i)
            self.map[off:off + 16] = bytes(p).ljust(16, b"\0")[:16]
        self.head += 1 + extra

    def publish(self, head=None):
        """Release-stores head (x86: a plain aligned store after the
        records' stores)."""
        if head is not None:
            self.head = head
        # Native "Q" is one 8-byte store (CPython memcpy()s native
        # formats; "<Q" stores byte by byte, and a daemon reading between
        # two of those bytes sees a torn head: impossible positions, which
        # it rightly punishes).  The machine is little-endian (x86-64).
        struct.pack_into("Q", self.map, RING_HEAD, self.head)

    def tail(self):
        # One 8-byte load, for the same reason (the daemon stores it).
        return struct.unpack_from("Q", self.map, RING_TAIL)[0]

    def set_closed(self):
        struct.pack_into("<I", self.map, RING_CLOSED, 1)

    def close(self):
        self.map.close()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# ---- the connection ---------------------------------------------------------


class Closed(Exception):
    """The daemon closed the connection."""


class Conn:
    """A raw connection to the daemon."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_bytes(self, data, fds=()):
        """Sends bytes; descriptors ride with the first byte."""
        data = bytes(data)
        if fds:
            n = socket.send_fds(self.sock, [data], list(fds))
            data = data[n:]
        if data:
            self.sock.sendall(data)

    def send(self, type_, payload=None, fds=(), flags=0, length=None):
        self.send_bytes(frame(type_, payload, flags, length), fds)

    def recv_frame(self, timeout=5.0):
        """The next frame as (type, payload) with payload decoded (a dict,
        or the raw bytes if it does not decode).  Raises Closed on EOF and
        socket.timeout when nothing complete arrives in time."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= HDR.size:
                n, t, _ = HDR.unpack_from(self.buf)
                if len(self.buf) >= HDR.size + n:
                    body = self.buf[HDR.size:HDR.size + n]
                    self.buf = self.buf[HDR.size + n:]
                    try:
                        payload = msgpack.unpackb(body, raw=False) if n else {}
                    except Exception:
                        payload = body
                    return t, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete frame within %.1f s" %
                                     timeout)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed()
            self.buf += chunk

    def request(self, type_, payload=None, fds=(), timeout=5.0):
        self.send(type_, payload, fds)
        return self.recv_frame(timeout)

    def outcome(self, timeout=5.0):
        """What the daemon did after a bad input: reads until EOF and
        returns ("error", code, message) if an ERROR frame came first, or
        ("eof", None, None), or ("open", type, payload) when a non-ERROR
        frame arrived (the connection was kept), or ("timeout", None, None)
        when the daemon neither answered nor closed."""
        try:
            t, p = self.recv_frame(timeout)
        except Closed:
            return ("eof", None, None)
        except socket.timeout:
            return ("timeout", None, None)
        if t != ERROR:
            return ("open", t, p)
        return ("error", p.get("code"), p.get("message"))

    def wait_eof(self, timeout=5.0):
        """True when the daemon closes the connection within timeout
        (frames received meanwhile are discarded)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv_frame(deadline - time.monotonic())
            except Closed:
                return True
            except socket.timeout:
                return False
        return False

    def is_open(self):
        """True when the daemon has not closed its end (nothing to read,
        no EOF pending)."""
        r, _, _ = select.select([self.sock], [], [], 0)
        if not r:
            return True
        try:
            data = self.sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return True
        except ConnectionResetError:
            return False
        return bool(data)

    # ---- well-formed conversations ----------------------------------------

    def hello(self, role="producer", arena=None, **override):
        """HELLO (with the arena's descriptor for a producer) and the
        daemon's answer."""
        fds = [arena.fd] if arena is not None else []
        size = arena.data_size if arena is not None else ARENA_MIN_SIZE
        return self.request(HELLO, hello_payload(role, size, **override),
                            fds)

    def create_session(self, out_fd, path="hostile-test.json"):
        return self.request(SESSION_CREATE, {"path": path, "format": "json"},
                            [out_fd])

    def add_ring(self, ring, name="main"):
        """RING_ADD has no reply: a SESSION_JOIN with a bogus token after it
        is answered only once the RING_ADD was handled."""
        self.send(RING_ADD, {"tid": ring.tid, "slots": ring.slots,
                             "name": name}, [ring.fd])

    def sync(self):
        """A round trip that proves every earlier frame was handled."""
        t, p = self.request(SESSION_JOIN, {"token": "f" * 32})
        return t, p


def errname(code):
    return errno.errorcode.get(code, str(code))


# ---- a whole session --------------------------------------------------------


def raw_session(path, calls=50, name="healthy (raw.py:1)", timeout=10.0):
    """A complete, correct producer session spoken by hand: HELLO with an
    arena, SESSION_CREATE into a memfd, one ring holding `calls` enter/exit
    pairs of `name`, SESSION_END.  Returns (summary, events) where events
    is the finished file's traceEvents list.  Raises on any unexpected
    answer (RuntimeError naming it)."""
    arena = Arena()
    ring = Ring(tid=os.getpid() + 1000000)
    out = memfd(0, seal=False, name="raw-session-output")
    try:
        with Conn(path, timeout) as c:
            t, p = c.hello("producer", arena)
            if t != WELCOME:
                raise RuntimeError("HELLO answered %r %r" % (t, p))
            t, p = c.create_session(out)
            if t != SESSION_CREATED:
                raise RuntimeError("SESSION_CREATE answered %r %r" % (t, p))
            c.add_ring(ring)
            t, p = c.sync()
            if t != SESSION_JOINED:
                raise RuntimeError("RING_ADD/sync answered %r %r" % (t, p))
            fid = arena.intern(name)
            ts = time.monotonic_ns()
            for i in range(calls):
                ring.put(ts + 1000 * i, fid, PY_CALL)
                ring.put(ts + 1000 * i + 500, fid, PY_RETURN)
            ring.publish()
            t, summary = c.request(SESSION_END, {}, timeout=timeout)
            if t != SESSION_SUMMARY:
                raise RuntimeError("SESSION_END answered %r %r" % (t, summary))
        size = os.fstat(out).st_size
        data = json.loads(os.pread(out, size, 0).decode())
        return summary, data["traceEvents"]
    finally:
        arena.close()
        ring.close()
        os.close(out)

"""Output formats (docs/formats.md): the output file's extension picks
Chrome Trace Event JSON (.json, anything else), gzip-compressed JSON
(.json.gz) or a Perfetto protobuf trace (.pftrace, .perfetto-trace), and
the three hold the same events.

* The same recorded events (scripted producers speaking the protocol by
  hand, so every timestamp is known) written through the real daemon in
  each format decode to exactly the same slices (pid, tid, category, name,
  ts, dur, unfinished), instants, counters and process/thread names.
* The same real program (threads, a spawn child, a subprocess, C calls and
  the native C API example) traced to each format gives the same calls in
  the same processes and threads, with exact counts.
* A gzip trace whose daemon is SIGKILLed decompresses up to its last sync
  flush; a Perfetto trace cut the same way decodes up to its last packet.
* A bad format gets a clear error, to that client only; a client that
  sends no format (older than the key) gets JSON.
"""

import collections
import gzip
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import pytest

import pftrace
import rawproto as rp
import tracefile
from conftest import (TRACED_BIN, TRACED_NATIVE_EXAMPLE, Daemon, parse_summary,
                      pyname, run, short_tmpdir, summary_line, write_program)

FORMATS = {
    "trace.json": "json",
    "trace.json.gz": "json.gz",
    "trace.pftrace": "perfetto",
}

GZIP_MAGIC = b"\x1f\x8b"


def file_kind(path):
    """What a file's first bytes say it is."""
    with open(path, "rb") as fh:
        head = fh.read(2)
    if head == GZIP_MAGIC:
        return "json.gz"
    if head[:1] == b"\x0a":
        return "perfetto"
    if head[:1] in (b"{", b"["):
        return "json"
    return repr(head)


# ---- the same recorded events in every format -------------------------------

PA, TA, TW = 31001, 31001, 31011  # scripted process A: main and worker
PB, TB = 31002, 31002             # scripted process B, joined to A's session
HOSTILE = b'q"\\\n\x01\xff\xed\xa0\x80\xc3\xa9'
HOSTILE_TEXT = 'q"\\\n\x01' + "\ufffd" * 4 + "\u00e9"
LOST = "traced: events lost (ring full)"


def scripted_session(daemon, out_path, fmt):
    """Two scripted producers record a known set of events into one
    session writing out_path in `fmt`; returns (summary, base) where base
    is the timestamp every record is relative to."""
    arena_a, arena_b = rp.Arena(), rp.Arena()
    main_a, work_a = rp.Ring(tid=TA), rp.Ring(tid=TW)
    main_b = rp.Ring(tid=TB)
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with rp.Conn(daemon.socket) as a, rp.Conn(daemon.socket) as b:
            t, p = a.hello("producer", arena_a, pid=PA, name="scripted-parent")
            assert t == rp.WELCOME, (t, p)
            create = {"path": str(out_path)}
            if fmt is not None:
                create["format"] = fmt
            t, p = a.request(rp.SESSION_CREATE, create, [out])
            assert t == rp.SESSION_CREATED, (t, p)
            token = p["token"]
            a.add_ring(main_a, "MainThread")
            a.add_ring(work_a, "worker")
            assert a.sync()[0] == rp.SESSION_JOINED
            t, p = b.hello("producer", arena_b, pid=PB, name="scripted-child")
            assert t == rp.WELCOME, (t, p)
            t, p = b.request(rp.SESSION_JOIN, {"token": token})
            assert t == rp.SESSION_JOINED and p["active"], (t, p)
            b.add_ring(main_b, "MainThread")
            assert b.sync()[0] == rp.SESSION_JOINED
            # Records older than a process's join are discarded as late.
            base = time.monotonic_ns() + 10_000_000
            record_a(arena_a, main_a, work_a, base)
            record_b(arena_b, main_b, base)
            b.send(rp.PROCESS_INFO, {"name": "child-renamed"})
            assert b.sync()[0] == rp.SESSION_JOINED
            t, summary = a.request(rp.SESSION_END, {}, timeout=20)
            assert t == rp.SESSION_SUMMARY, (t, summary)
        return summary, base
    finally:
        os.close(out)
        for x in (arena_a, arena_b, main_a, work_a, main_b):
            x.close()


def record_a(arena, main, work, base):
    ids = {n: arena.intern(n) for n in
           ("outer", "builtins.len", "inner", "mark", "depth", "span",
            "left_open", "f1", "f2", "f3", "a", "b", "worker-renamed")}
    ids["hostile"] = arena.intern(HOSTILE)
    nan = struct.pack("<d", float("nan"))
    for rel, name, kind, *payload in (
            (100, "outer", rp.PY_CALL),
            (100, "builtins.len", rp.C_CALL),  # begins with its parent
            (150, "builtins.len", rp.C_RETURN),
            (200, "inner", rp.PY_CALL),
            (250, "mark", rp.INSTANT),
            (300, "inner", rp.PY_RETURN),
            (310, "depth", rp.COUNTER, struct.pack("<d", 2.5)),
            (320, "depth", rp.COUNTER, nan),
            (400, "span", rp.BEGIN),
            (400, "span", rp.END),             # zero duration
            (500, "outer", rp.PY_RETURN),
            (600, "left_open", rp.PY_CALL),    # still open at the end
            (700, "hostile", rp.PY_CALL),
            (710, "hostile", rp.PY_RETURN)):
        main.put(base + rel, ids[name], kind, extra=len(payload),
                 payload=payload)
    main.put(base + 720, 3, rp.LOST)
    main.publish()
    for rel, name, kind in (
            (50, "worker-renamed", rp.THREAD_NAME),
            (100, "f1", rp.PY_CALL), (101, "f2", rp.PY_CALL),
            (102, "f3", rp.PY_CALL), (103, "f3", rp.PY_RETURN),
            (104, "f2", rp.PY_RETURN), (105, "f1", rp.PY_RETURN),
            (200, "a", rp.PY_CALL), (210, "b", rp.PY_CALL),
            (220, "a", rp.PY_RETURN)):  # b's exit was never recorded
        work.put(base + rel, ids[name], kind)
    work.publish()


def record_b(arena, main, base):
    fid = arena.intern("child_work")
    for rel in (100, 120, 140):
        main.put(base + rel, fid, rp.PY_CALL)
        main.put(base + rel + 10, fid, rp.PY_RETURN)
    # A broken producer's clock going backwards: kept as recorded (the
    # Perfetto writer cannot write it as a delta and writes it absolute).
    bid = arena.intern("backwards")
    main.put(base + 50, bid, rp.PY_CALL)
    main.put(base + 60, bid, rp.PY_RETURN)
    main.publish()


EXPECTED_SLICES = sorted([
    (PA, TA, "c", "builtins.len", 100, 50, False),
    (PA, TA, "python", "inner", 200, 100, False),
    (PA, TA, "api", "span", 400, 0, False),
    (PA, TA, "python", "outer", 100, 400, False),
    (PA, TA, "python", HOSTILE_TEXT, 700, 10, False),
    (PA, TA, "python", "left_open", 600, 120, True),   # ends at 720
    (PA, TW, "python", "f3", 102, 1, False),
    (PA, TW, "python", "f2", 101, 3, False),
    (PA, TW, "python", "f1", 100, 5, False),
    (PA, TW, "python", "b", 210, 10, True),
    (PA, TW, "python", "a", 200, 20, False),
    (PB, TB, "python", "child_work", 100, 10, False),
    (PB, TB, "python", "child_work", 120, 10, False),
    (PB, TB, "python", "child_work", 140, 10, False),
    (PB, TB, "python", "backwards", 50, 10, False),
])
EXPECTED_INSTANTS = sorted([
    (PA, TA, "api", "mark", 250, ()),
    (PA, TA, "traced", LOST, 720, (("count", 3),)),
])
EXPECTED_COUNTERS = sorted([(PA, "depth", 310, 2.5), (PA, "depth", 320, None)])
EXPECTED_PROCESSES = {PA: "scripted-parent", PB: "child-renamed"}
EXPECTED_THREADS = {(PA, TA): "MainThread", (PA, TW): "worker-renamed",
                    (PB, TB): "MainThread"}


def relative(model, base):
    """The model's events with timestamps relative to base, sorted."""
    return (sorted(s[:4] + (s[4] - base,) + s[5:] for s in model.slices),
            sorted(i[:4] + (i[4] - base,) + i[5:] for i in model.instants),
            sorted(c[:2] + (c[2] - base,) + c[3:] for c in model.counters))


def test_formats_hold_the_same_events(daemon, tmp_path):
    decoded = {}
    for name, fmt in FORMATS.items():
        path = tmp_path / name
        summary, base = scripted_session(daemon, path, fmt)
        assert file_kind(path) == fmt
        model = tracefile.load(path)
        assert model.errors == []
        slices, instants, counters = relative(model, base)
        assert slices == EXPECTED_SLICES, fmt
        assert instants == EXPECTED_INSTANTS, fmt
        assert counters == EXPECTED_COUNTERS, fmt
        assert model.process_names == EXPECTED_PROCESSES, fmt
        assert model.thread_names == EXPECTED_THREADS, fmt
        # The summary counts what the file holds, in its own bytes.
        assert summary["events"] == model.events == 19, fmt
        assert summary["bytes"] == os.path.getsize(path), fmt
        assert (summary["processes"], summary["threads"]) == (2, 3), fmt
        assert summary["malformed"] == 0 and summary["late"] == 0, fmt
        decoded[fmt] = (slices, instants, counters)
    assert decoded["json"] == decoded["json.gz"] == decoded["perfetto"]
    # gzip holds exactly the bytes a plain JSON trace would.
    with gzip.open(tmp_path / "trace.json.gz", "rb") as fh:
        text = fh.read()
    assert text.startswith(b'{"traceEvents":[\n{"ph":')
    assert text.endswith(b"}\n]}\n")


def test_format_key_absent_means_json(daemon, tmp_path):
    """An older client sends no "format": its session writes JSON, whatever
    the file is called (the daemon never looks at the path)."""
    path = tmp_path / "old-client.pftrace"
    summary, base = scripted_session(daemon, path, None)
    assert file_kind(path) == "json"
    model = tracefile.parse_json(path.read_text(), "json")
    assert relative(model, base)[0] == EXPECTED_SLICES
    assert summary["events"] == 19


@pytest.mark.parametrize("fmt,message", [
    ("yaml", "SESSION_CREATE: format 'yaml' is not supported (use 'json', "
             "'json.gz' or 'perfetto')"),
    ("JSON", "SESSION_CREATE: format 'JSON' is not supported (use 'json', "
             "'json.gz' or 'perfetto')"),
    (7, "SESSION_CREATE: format is not a string"),
])
def test_bad_format_fails_that_client_only(daemon, tmp_path, fmt, message):
    """A bad format is refused with a clear error to the client that sent
    it; a session another client has open meanwhile is untouched."""
    good = tmp_path / "good.pftrace"
    bad_out = os.open(tmp_path / "bad", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with rp.Conn(daemon.socket) as bad:
            # A real traced program holds its session open across the bad
            # request: it waits for the file `go`.
            script = write_program(tmp_path, """
                import os, time
                def step(i):
                    return i
                while not os.path.exists("go"):
                    time.sleep(0.01)
                for i in range(20):
                    step(i)
            """)
            proc = subprocess.Popen(
                [TRACED_BIN, "run", "-o", good, "--", sys.executable, script],
                env=daemon.env, cwd=tmp_path, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
            try:
                t, p = bad.hello("control")
                assert t == rp.WELCOME
                t, p = bad.request(rp.SESSION_CREATE,
                                   {"path": "bad", "format": fmt}, [bad_out])
                assert t == rp.ERROR, (t, p)
                assert p["code"] == 22 and p["message"] == message, p
                assert bad.wait_eof()
            finally:
                (tmp_path / "go").write_text("")
                out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        os.close(bad_out)
    model = tracefile.load(good)
    assert model.errors == []
    steps = [s for s in model.slices if s[3] == pyname(script, "step")]
    assert len(steps) == 20
    assert "SESSION_CREATE: format" in daemon.log()


# ---- the same real program in every format ----------------------------------

PROGRAM = """
    import multiprocessing
    import os
    import subprocess
    import sys
    import threading


    def leaf(i):
        return len(str(i))


    def work(n):
        total = 0
        for i in range(n):
            total += leaf(i)
        return total


    def in_thread():
        work(5)


    def in_child():
        work(3)


    if __name__ == "__main__":
        t = threading.Thread(target=in_thread, name="worker-thread")
        t.start()
        t.join()
        work(4)
        p = multiprocessing.get_context("spawn").Process(target=in_child)
        p.start()
        p.join()
        here = os.path.dirname(os.path.abspath(__file__))
        subprocess.run([sys.executable, os.path.join(here, "child.py")],
                       check=True)
        subprocess.run([sys.argv[1]], check=True, stdout=subprocess.DEVNULL)
"""

CHILD = """
    def sub_work(k):
        return k + 1


    for k in range(2):
        sub_work(k)
"""


def parents(model):
    """{slice index: parent slice index or None} from nesting on each
    thread (a parent starts no later and ends no earlier; ties: longer
    first)."""
    by_thread = collections.defaultdict(list)
    for i, s in enumerate(model.slices):
        by_thread[(s[0], s[1])].append(i)
    out = {}
    for idx in by_thread.values():
        idx.sort(key=lambda i: (model.slices[i][4], -model.slices[i][5]))
        stack = []
        for i in idx:
            ts, dur = model.slices[i][4], model.slices[i][5]
            while stack and (model.slices[stack[-1]][4] +
                             model.slices[stack[-1]][5]) < ts + dur:
                stack.pop()
            out[i] = stack[-1] if stack else None
            stack.append(i)
    return out


def signature(model, keep):
    """Counter of (process name, thread name, category, slice name, parent
    slice name) over the slices whose name passes keep()."""
    par = parents(model)
    sig = collections.Counter()
    for i, s in enumerate(model.slices):
        if not keep(s[3]):
            continue
        p = par[i]
        sig[(model.process_names.get(s[0]),
             model.thread_names.get((s[0], s[1])), s[2], s[3],
             model.slices[p][3] if p is not None else None)] += 1
    return sig


def test_same_program_same_calls_in_every_format(daemon, tmp_path):
    script = write_program(tmp_path, PROGRAM)
    child = write_program(tmp_path, CHILD, name="child.py")
    leaf, work = pyname(script, "leaf"), pyname(script, "work")
    in_thread, in_child = pyname(script, "in_thread"), pyname(script,
                                                              "in_child")
    sub_work = pyname(child, "sub_work")
    ours = {leaf, work, in_thread, in_child, sub_work, "native_work",
            "worker_span"}

    def keep(name):
        return name in ours or name == "builtins.len"

    sigs = {}
    for name, fmt in FORMATS.items():
        out = tmp_path / name
        r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script,
                 TRACED_NATIVE_EXAMPLE], env=daemon.env, cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        assert file_kind(out) == fmt
        summary = parse_summary(summary_line(r.stderr))
        model = tracefile.load(out)
        assert model.errors == [], (fmt, model.errors[:5])
        assert summary["event"] == model.events, fmt
        assert summary["byte"] == os.path.getsize(out), fmt
        assert summary["dropped"] == 0, fmt
        # (multiprocessing's children end in os._exit, inside calls.)
        assert not [s for s in model.slices if s[6] and keep(s[3])], fmt
        sig = signature(model, keep)
        # builtins.len is also called by library code: keep it under leaf.
        sig = collections.Counter({k: v for k, v in sig.items()
                                   if k[3] != "builtins.len" or k[4] == leaf})
        sigs[fmt] = sig
        ticks = collections.Counter(
            (model.thread_names.get((i[0], i[1])), i[3])
            for i in model.instants if i[3] == "tick")
        assert ticks == {("native-main", "tick"): 10}, fmt
        depth = sorted((c[2], c[3]) for c in model.counters
                       if c[1] == "queue_depth")
        assert [v for _, v in depth] == [0, 1, 2, 3, 4], fmt
        assert set(model.process_names.values()) >= {
            "MainProcess", "SpawnProcess-1", "child.py", "native_example"}

    main, spawn = "MainProcess", "SpawnProcess-1"
    module, child_module = "<module> (%s:1)" % script, "<module> (%s:1)" % child
    expected = collections.Counter({
        (main, "MainThread", "python", work, module): 1,
        (main, "MainThread", "python", leaf, work): 4,
        (main, "MainThread", "c", "builtins.len", leaf): 4,
        (main, "worker-thread", "python", work, in_thread): 1,
        (main, "worker-thread", "python", leaf, work): 5,
        (main, "worker-thread", "c", "builtins.len", leaf): 5,
        (spawn, "MainThread", "python", work, in_child): 1,
        (spawn, "MainThread", "python", leaf, work): 3,
        (spawn, "MainThread", "c", "builtins.len", leaf): 3,
        ("child.py", "MainThread", "python", sub_work, child_module): 2,
        ("native_example", "native-main", "api", "native_work", None): 10,
        ("native_example", "native-worker", "api", "worker_span", None): 7,
    })
    # in_thread and in_child have callers from threading/multiprocessing.
    for fmt, sig in sigs.items():
        got = collections.Counter({k: v for k, v in sig.items()
                                   if k[3] not in (in_thread, in_child)})
        assert got == expected, fmt
        assert sum(v for k, v in sig.items() if k[3] == in_thread) == 1
        assert sum(v for k, v in sig.items() if k[3] == in_child) == 1
    assert sigs["json"] == sigs["json.gz"] == sigs["perfetto"]


@pytest.mark.parametrize("output,kind", [
    ("t.json", "json"),
    ("T.JSON.GZ", "json.gz"),
    ("t.PfTrace", "perfetto"),
    ("t.perfetto-trace", "perfetto"),
    ("t.gz", "json"),          # only .json.gz is gzip
    ("no-extension", "json"),
])
def test_extension_picks_the_format(daemon, tmp_path, output, kind):
    script = write_program(tmp_path, """
        def f():
            return 1
        f()
    """)
    out = tmp_path / output
    r = run([TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert file_kind(out) == kind
    if kind != "json":
        model = (tracefile.from_pftrace(pftrace.load(out)) if
                 kind == "perfetto" else
                 tracefile.parse_json(gzip.open(out).read().decode(), kind))
    else:
        model = tracefile.parse_json(out.read_text(), kind)
    assert model.errors == []
    assert [s[3] for s in model.slices].count(pyname(script, "f")) == 1


def test_inline_api_and_env_pick_the_format(daemon, tmp_path):
    """traced.session(output=...) and TRACED_OUTPUT go through the same
    packing as `traced run`: the extension decides."""
    script = write_program(tmp_path, """
        import sys
        import traced

        def g():
            return 2

        with traced.session(output=sys.argv[1]):
            g()
    """)
    r = run([sys.executable, script, tmp_path / "inline.pftrace"],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert file_kind(tmp_path / "inline.pftrace") == "perfetto"
    model = tracefile.load(tmp_path / "inline.pftrace")
    assert model.errors == []
    assert [s[3] for s in model.slices].count(pyname(script, "g")) == 1

    env_script = write_program(tmp_path, """
        def h():
            return 3
        h()
    """, name="envprog.py")
    r = run([sys.executable, env_script],
            env=dict(daemon.env, TRACED_OUTPUT=str(tmp_path / "env.json.gz")),
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert file_kind(tmp_path / "env.json.gz") == "json.gz"
    model = tracefile.load(tmp_path / "env.json.gz")
    assert [s[3] for s in model.slices].count(pyname(env_script, "h")) == 1


# ---- cut short --------------------------------------------------------------

CUT_PROGRAM = """
    import os, time

    def marker(i):
        return i

    def waiting():
        # Still open when the daemon dies.
        while not os.path.exists("killed"):
            time.sleep(0.01)

    for i in range(50):
        marker(i)
    open("ready", "w").close()
    waiting()
"""


@pytest.mark.parametrize("output", ["cut.json.gz", "cut.pftrace"])
def test_cut_short_trace_still_decodes(tmp_path, output):
    """The daemon SIGKILLed mid-session: a .json.gz holds one gzip member
    without its end, which decompresses (as `zcat` does, before it reports
    the missing end) to complete events up to the last sync flush; a
    .pftrace ends on a packet boundary.  Both hold all 50 marker calls made
    before the test waited for them to reach the file."""
    d = Daemon(short_tmpdir())
    d.start()
    script = write_program(tmp_path, CUT_PROGRAM)
    out = tmp_path / output
    proc = subprocess.Popen(
        [TRACED_BIN, "run", "-o", out, "--", sys.executable, script],
        env=d.env, cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    marker = pyname(script, "marker")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, (
                "the markers never reached %s; daemon log:\n%s" %
                (out, d.log()))
            if (tmp_path / "ready").exists() and out.exists():
                data = out.read_bytes()
                if output.endswith(".gz"):
                    text = tracefile.gunzip_prefix(data).decode()
                    if text.count('"name":"%s"' % marker) == 50:
                        break
                elif data and sum(
                        1 for s in pftrace.decode(data).slices
                        if s["name"] == marker and s["dur"] is not None) == 50:
                    break
            time.sleep(0.05)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait()
    finally:
        (tmp_path / "killed").write_text("")
        try:
            proc.communicate(timeout=60)
        finally:
            if d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
            shutil.rmtree(d.dir, ignore_errors=True)
    data = out.read_bytes()
    if output.endswith(".gz"):
        assert data[:2] == GZIP_MAGIC
        with pytest.raises(EOFError):  # the member has no end ...
            gzip.decompress(data)
        text = tracefile.gunzip_prefix(data).decode()  # ... but decodes
        assert text.startswith('{"traceEvents":[\n')
        lines = text[len('{"traceEvents":[\n'):].split(",\n")
        complete = lines if text.endswith("}") else lines[:-1]
        model = tracefile.parse_json("[" + ",".join(complete) + "]", "json.gz")
        zcat = run(["zcat", out], env=os.environ, cwd=tmp_path)
        assert zcat.returncode != 0  # "unexpected end of file" ...
        assert zcat.stdout.decode() == text  # ... after all of it
    else:
        tr = pftrace.decode(data)  # whole packets only: no DecodeError
        assert tr.errors == []
        model = tracefile.from_pftrace(tr)
        # The calls still open when the daemon died began and never ended:
        # the module, waiting() and perhaps what waiting() was calling.
        still_open = [s["name"] for s in tr.slices if s["dur"] is None]
        assert still_open[:2] == ["<module> (%s:1)" % script,
                                  pyname(script, "waiting")], still_open
        assert len(still_open) <= 3, still_open
    assert [s[3] for s in model.slices].count(marker) == 50

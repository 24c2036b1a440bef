"""A trace's size bound and a disk that fills: the writer stops at a whole
event, the file stays a trace every reader loads, the events after the
cut are counted and marked, and the summary says why (issue 14 item 5,
issue 15 "Disk full").  docs/options.md "--max-size", docs/hostile.md."""

import gzip
import json
import sys

import pftrace
from conftest import TRACED_BIN, run, summary_line, write_program

BUSY = """
def f(i):
    return i + 1
for i in range(200000):
    f(i)
"""

MARK = "traced: trace cut short"


def events_of(path):
    """The trace's events, loaded strictly: json.load of the plain or
    gunzipped file (object form), or the Perfetto decoder with no error."""
    if path.suffix == ".pftrace":
        tr = pftrace.load(path)
        assert not tr.errors, tr.errors[:5]
        return [dict(e, ph="X") for e in tr.slices] + \
            [dict(e, ph="i") for e in tr.instants]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:
        data = json.load(fh)
    assert list(data) == ["traceEvents"], list(data)
    return data["traceEvents"]


def test_max_size_bounds_every_format(daemon, tmp_path):
    prog = write_program(tmp_path, BUSY)
    for name in ("t.json", "t.json.gz", "t.pftrace"):
        out = tmp_path / name
        r = run([TRACED_BIN, "run", "--max-size", "64K", "-o", out,
                 sys.executable, prog], env=daemon.env, cwd=tmp_path)
        assert r.returncode == 0, r.describe()
        size = out.stat().st_size
        assert 48 * 1024 < size <= 64 * 1024, (name, size)
        events = events_of(out)
        calls = [e for e in events if e.get("ph") == "X"]
        marks = [e for e in events if e.get("name", "").startswith(MARK)]
        assert calls and len(marks) == 1, (name, len(calls), marks)
        assert "size limit of 65536 bytes reached" in marks[0]["name"]
        err = r.stderr.decode()
        assert "stopped at --max-size 64K: " in err, r.describe()
        line = summary_line(r.stderr)
        assert line.startswith("traced: 1 processes"), line
        dropped = int(line.split(" dropped")[0].rsplit(" ", 1)[-1])
        assert dropped > 0 and "%d events dropped" % dropped in err, err
        # traced report reads the marker as the writer's note, not as an
        # event of a process 0: one process, the cut's drops counted.
        rep = run([TRACED_BIN, "report", "--json", out], env=daemon.env,
                  cwd=tmp_path)
        assert rep.returncode == 0, rep.describe()
        doc = json.loads(rep.stdout)
        assert doc["processes"] == 1, (name, doc["processes"])
        assert doc["cut"].startswith(MARK), doc.get("cut")
        assert doc["cut_dropped"] == dropped, (doc["cut_dropped"], dropped)
        assert doc["dropped"] == dropped, (doc["dropped"], dropped)
        text = run([TRACED_BIN, "report", out], env=daemon.env, cwd=tmp_path)
        assert b"trace cut short (size limit of 65536 bytes reached)" \
            in text.stdout, text.describe()


def test_max_size_from_the_environment_and_python(daemon, tmp_path):
    prog = write_program(tmp_path, BUSY)
    out = tmp_path / "env.json"
    r = run([TRACED_BIN, "run", "-o", out, sys.executable, prog],
            env=dict(daemon.env, TRACED_MAX_SIZE="32K"), cwd=tmp_path)
    assert "stopped at --max-size 32K" in r.stderr.decode(), r.describe()
    assert out.stat().st_size <= 32 * 1024
    api = write_program(tmp_path, """
        import traced
        def f(i):
            return i + 1
        with traced.session(output=%r, max_size="32K") as s:
            for i in range(200000):
                f(i)
        print(s.summary.cut)
    """ % str(tmp_path / "api.json"), name="api.py")
    r = run([sys.executable, api], env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.stdout.decode().startswith("stopped at --max-size 32K: ")
    assert (tmp_path / "api.json").stat().st_size <= 32 * 1024
    events_of(tmp_path / "api.json")
    r = run([TRACED_BIN, "run", "--max-size", "12Q", "-o", out,
             sys.executable, prog], env=daemon.env, cwd=tmp_path)
    assert r.returncode != 0 and b"--max-size 12Q: not a size" in r.stderr


def test_disk_full_ends_at_a_whole_event(daemon_with, monkeypatch,
                                         tmp_path):
    """A daemon whose writes fail for real part way through a chunk: under
    an RLIMIT_FSIZE (SIGXFSZ is blocked on its I/O thread) write(2) returns
    EFBIG, as it returns ENOSPC on a full disk.  Its log stays far below
    the limit."""
    limit = 300000
    monkeypatch.setenv("TRACED_DAEMON_WRAPPER", "prlimit --fsize=%d" % limit)
    d = daemon_with()
    prog = write_program(tmp_path, BUSY)
    for name in ("full.json", "full.json.gz", "full.pftrace"):
        out = tmp_path / name
        r = run([TRACED_BIN, "run", "-o", out, sys.executable, prog],
                env=d.env, cwd=tmp_path)
        err = r.stderr.decode()
        assert "write failed: File too large: " in err, r.describe()
        assert "the file ends at the last whole event" in err, err
        assert out.stat().st_size <= limit
        events = events_of(out)
        marks = [e for e in events if e.get("name", "").startswith(MARK)]
        assert len(marks) == 1 and "File too large" in marks[0]["name"]
    assert "writing the trace failed: File too large" in d.log()


def test_serve_max_size_caps_every_session(daemon_with, tmp_path):
    """`traced serve --max-size` bounds sessions that ask for none, and a
    client's smaller bound holds."""
    d = daemon_with("--max-size", "48K")
    prog = write_program(tmp_path, BUSY)
    for flags, shown, most in (([], "48K", 48), (["--max-size", "20K"],
                                                 "20K", 20)):
        out = tmp_path / "capped.json"
        r = run([TRACED_BIN, "run", *flags, "-o", out, sys.executable, prog],
                env=d.env, cwd=tmp_path)
        assert "stopped at --max-size %s: " % shown in r.stderr.decode(), \
            r.describe()
        assert out.stat().st_size <= most * 1024
        events_of(out)
    r = run([TRACED_BIN, "serve", "--max-size", "lots", "--socket",
             tmp_path / "x.sock"], env=d.env, cwd=tmp_path)
    assert r.returncode != 0 and b"--max-size: 'lots' is not a size" in \
        r.stderr, r.describe()

"""The native C example (tests/native/example.c), traced through libtraced's
public C API: every event it records appears, on the right thread."""

import re

from conftest import (BOGUS_TOKEN, TRACED_BIN, TRACED_NATIVE_EXAMPLE,
                      clean_env, contains, instants, load_trace, named, run,
                      thread_names)

IDS = re.compile(rb"native_example pid=(\d+) main_tid=(\d+) worker_tid=(\d+)\n")


def counter_value(event):
    """The one value of a counter event's args."""
    args = event["args"]
    assert len(args) == 1, event
    (value,) = args.values()
    assert isinstance(value, (int, float)), event
    return value


def test_native_example_events(daemon, tmp_path):
    out = tmp_path / "trace.json"
    r = run([TRACED_BIN, "run", "-o", out, "--", TRACED_NATIVE_EXAMPLE],
            env=daemon.env, cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    m = IDS.fullmatch(r.stdout)
    assert m, r.describe()
    pid, main_tid, worker_tid = (int(x) for x in m.groups())
    assert main_tid != worker_tid
    # The example warns only when it cannot attach: stderr is the summary.
    assert r.stderr.count(b"\n") == 1, r.describe()
    events = load_trace(out)

    work = named(events, "native_work")
    assert len(work) == 10
    assert {(e["pid"], e["tid"]) for e in work} == {(pid, main_tid)}
    ticks = instants(events, "tick")
    assert len(ticks) == 10
    for span in work:
        inside = [t for t in ticks
                  if t["pid"] == span["pid"] and t["tid"] == span["tid"]
                  and contains(span, dict(t, dur=0))]
        assert len(inside) == 1, span

    counters = sorted((e for e in events
                       if e.get("ph") == "C" and e.get("name") == "queue_depth"),
                      key=lambda e: e["ts"])
    assert len(counters) == 5
    assert [counter_value(e) for e in counters] == [0, 1, 2, 3, 4]
    assert {e["pid"] for e in counters} == {pid}

    spans = named(events, "worker_span")
    assert len(spans) == 7
    assert {(e["pid"], e["tid"]) for e in spans} == {(pid, worker_tid)}

    marked = sorted(instants(events, "marked"), key=lambda e: e["ts"])
    assert [e["args"] for e in marked] == [
        {"kind": 'x"y', "n": -i, "ratio": 0.5 * i, "ok": i % 2 == 0}
        for i in range(3)]
    loaded = named(events, "loaded")
    assert len(loaded) == 1 and loaded[0]["tid"] == main_tid
    assert loaded[0]["args"] == {"file": "data.bin", "bytes": 42}
    mem = sorted((e for e in events
                  if e.get("ph") == "C" and e.get("name") == "mem"),
                 key=lambda e: e["ts"])
    assert [e["args"] for e in mem] == [
        {"rss": 100 + i, "heap": 1.5 * i} for i in range(3)]

    names = thread_names(events)
    assert names.get((pid, main_tid)) == ["native-main"]
    assert names.get((pid, worker_tid)) == ["native-worker"]
    # Spans are complete slices, none cut short.
    for e in work + spans:
        assert not (e.get("args") or {}).get("unfinished"), e


def test_native_example_without_daemon_runs_untraced(tmp_path,
                                                     private_socket):
    r = run([TRACED_NATIVE_EXAMPLE],
            env=clean_env(TRACED_SOCKET=private_socket,
                          TRACED_SESSION=BOGUS_TOKEN),
            cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert IDS.fullmatch(r.stdout), r.describe()
    # Only the example's own warning: the library prints nothing.
    assert r.stderr.count(b"\n") == 1, r.describe()
    assert r.stderr.startswith(b"native_example: running untraced: ")

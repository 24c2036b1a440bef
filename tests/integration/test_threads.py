"""Each Python thread records on its own tid, under its own name."""

import json

import pytest

from conftest import call_forest, pyname, run_traced, thread_names

THREADS = """
    import json
    import os
    import threading


    def work(n):
        total = 0
        for i in range(n):
            total += i
        return total


    def worker(k, barrier, tids):
        tids[threading.current_thread().name] = threading.get_native_id()
        # All four threads are alive at once, so their tids are distinct.
        barrier.wait()
        for _ in range(100 * (k + 1)):
            work(3)


    def main():
        barrier = threading.Barrier(4)
        tids = {}
        threads = [threading.Thread(target=worker, name="worker-%d" % k,
                                    args=(k, barrier, tids))
                   for k in range(4)]
        for t in threads:
            t.start()
        for _ in range(7):
            work(3)
        for t in threads:
            t.join()
        print(json.dumps({"pid": os.getpid(),
                          "main": threading.get_native_id(),
                          "workers": tids}))


    main()
"""


@pytest.mark.parametrize("via", ["cli", "env"])
def test_four_threads_have_own_tid_name_and_count(daemon, tmp_path, via):
    t = run_traced(daemon, THREADS, tmp_path, via=via)
    assert t.returncode == 0, t.result.describe()
    info = json.loads(t.stdout)
    pid, main_tid = info["pid"], info["main"]
    worker_tids = {name: tid for name, tid in info["workers"].items()}
    assert sorted(worker_tids) == ["worker-%d" % k for k in range(4)]
    assert len(set(worker_tids.values()) | {main_tid}) == 5

    call_forest(t.events)  # every thread's slices nest
    work = pyname(t.script, "work")
    per_tid = {}
    for e in t.events:
        if e.get("ph") == "X" and e["name"] == work:
            assert e["pid"] == pid, e
            per_tid[e["tid"]] = per_tid.get(e["tid"], 0) + 1
    expected = {main_tid: 7}
    for k in range(4):
        expected[worker_tids["worker-%d" % k]] = 100 * (k + 1)
    assert per_tid == expected

    # Exactly these five threads recorded, and nothing else did.
    assert {(e["pid"], e["tid"]) for e in t.events if e.get("ph") == "X"} \
        == {(pid, tid) for tid in expected}

    names = thread_names(t.events)
    for k in range(4):
        assert names.get((pid, worker_tids["worker-%d" % k])) == \
            ["worker-%d" % k]
    # Python's own name for the main thread, as VizTracer writes it.
    assert names.get((pid, main_tid)) == ["MainThread"]

"""Every process of a multiprocessing / concurrent.futures / joblib program
is in the one trace `traced run` writes, named as multiprocessing names it,
parented and sorted correctly, and every worker's `work` calls appear
exactly as many times as the program itself counted them."""

import re

import pytest

from conftest import run_traced
from mp_helpers import Procs, func_counts, func_unfinished, program, read_log

METHODS = ["fork", "spawn", "forkserver"]

PREFIX = {"fork": "Fork", "spawn": "Spawn", "forkserver": "ForkServer"}


def expected_parent(procs, method, main):
    """Workers' parent: the main process, or for forkserver the
    forkserver process (itself a child of the main process)."""
    if method != "forkserver":
        return main
    servers = procs.named(r"multiprocessing\.forkserver")
    assert len(servers) == 1, (
        "expected one multiprocessing.forkserver process: %s" %
        procs.describe())
    assert procs.ppid(servers[0]) == main, procs.describe()
    return servers[0]


def check_workers(t, name_re, method, min_workers=1):
    """The common assertions: well-formed metadata, exact per-pid `work`
    counts, workers named/parented as the program saw them."""
    assert t.returncode == 0, t.result.describe()
    log = read_log(t.script)
    main = log.main
    expected = log.counts("work")
    assert len(expected) >= min_workers, (
        "the program used %d worker processes, expected at least %d: %r" %
        (len(expected), min_workers, expected))
    assert main not in expected, "the main process ran work itself"

    events = t.events
    procs = Procs(events)
    procs.check_well_formed(main)
    got = func_counts(events, t.script, "work")
    assert got == expected, (
        "per-pid `work` slices in the trace %r != calls the program "
        "counted %r; processes: %s" % (got, expected, procs.describe()))
    assert func_unfinished(events, t.script, "work") == []

    parent = expected_parent(procs, method, main)
    for pid in expected:
        ppid, mpname = log.procs[pid]
        assert re.fullmatch(name_re, mpname), (
            "program-side: worker %d is named %r, expected /%s/" %
            (pid, mpname, name_re))
        assert ppid == parent, (
            "program-side: worker %d has parent %d, expected %d" %
            (pid, ppid, parent))
        assert procs.name(pid) == mpname, (
            "worker %d is %r in the trace but %r in the program; %s" %
            (pid, procs.name(pid), mpname, procs.describe()))
        assert procs.ppid(pid) == ppid, (
            "worker %d: trace says ppid %d, the program saw %d; %s" %
            (pid, procs.ppid(pid), ppid, procs.describe()))
        assert procs.sort_index(pid) > 1
    return log, procs


MP_PROGRAM = program("""
    def main():
        note("main", os.getpid())
        method, kind = sys.argv[1], sys.argv[2]
        ctx = multiprocessing.get_context(method)
        if kind == "process":
            procs = [ctx.Process(target=task, args=(n,)) for n in (3, 4, 5)]
            for p in procs:
                p.start()
            for p in procs:
                p.join()
            if [p.exitcode for p in procs] != [0, 0, 0]:
                sys.exit(10)
        elif kind == "pool":
            with ctx.Pool(2) as pool:
                pool.map(task, [1, 2, 3, 4, 5, 6], chunksize=1)
        elif kind == "pool_maxtasksperchild_1":
            with ctx.Pool(2, maxtasksperchild=1) as pool:
                pool.map(task, [1, 2, 3, 4], chunksize=1)
        else:
            sys.exit(11)


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind",
                         ["process", "pool", "pool_maxtasksperchild_1"])
def test_mp_multiprocessing(daemon, tmp_path, method, kind):
    t = run_traced(daemon, MP_PROGRAM, tmp_path, args=[method, kind])
    if kind == "process":
        name_re = PREFIX[method] + r"Process-\d+"
        log, procs = check_workers(t, name_re, method, min_workers=3)
        assert sorted(log.counts().values()) == [3, 4, 5]
    elif kind == "pool":
        name_re = PREFIX[method] + r"PoolWorker-\d+"
        log, procs = check_workers(t, name_re, method)
        assert sum(log.counts().values()) == 21
    else:
        name_re = PREFIX[method] + r"PoolWorker-\d+"
        log, procs = check_workers(t, name_re, method, min_workers=4)
        # One task per worker process: four distinct workers.
        assert sorted(log.tasks.values()) == [1, 1, 1, 1], log.tasks
        assert sorted(log.counts().values()) == [1, 2, 3, 4]
        names = [procs.name(p) for p in log.counts()]
        assert len(set(names)) == 4, names


PPE_PROGRAM = program("""
    from concurrent.futures import ProcessPoolExecutor


    def main():
        note("main", os.getpid())
        with ProcessPoolExecutor(max_workers=2) as ex:
            list(ex.map(task, [1, 2, 3, 4, 5, 6]))
            print(ex._mp_context.get_start_method())


    if __name__ == "__main__":
        main()
""")


def test_mp_process_pool_executor(daemon, tmp_path):
    t = run_traced(daemon, PPE_PROGRAM, tmp_path)
    method = t.stdout.decode().strip()
    assert method in METHODS, t.result.describe()
    log, procs = check_workers(t, PREFIX[method] + r"Process-\d+", method)
    assert sum(log.counts().values()) == 21


JOBLIB_PROGRAM = program("""
    from joblib import Parallel, delayed


    def main():
        note("main", os.getpid())
        backend = sys.argv[1]
        kwargs = {} if backend == "loky" else {"backend": backend}
        pids = Parallel(n_jobs=2, **kwargs)(
            delayed(task)(n) for n in [1, 2, 3, 4, 5, 6, 7, 8])
        assert os.getpid() not in pids
        print(multiprocessing.get_start_method())


    if __name__ == "__main__":
        main()
""")


@pytest.mark.parametrize("backend", ["loky", "multiprocessing"])
def test_mp_joblib(daemon, tmp_path, backend):
    t = run_traced(daemon, JOBLIB_PROGRAM, tmp_path, args=[backend])
    if backend == "loky":
        # loky starts its workers itself (fork+exec) from the main process.
        name_re, method = r"LokyProcess-\d+", "spawn"
    else:
        method = t.stdout.decode().strip()
        assert method in METHODS, t.result.describe()
        name_re = PREFIX[method] + r"PoolWorker-\d+"
    log, procs = check_workers(t, name_re, method)
    assert sum(log.counts().values()) == 36

"""wl_mp.py: the daemon benchmark's Python workload, P processes x T threads
of small Python calls all running at once: many producers into one trace.

    python wl_mp.py OUT

multiprocessing.Pool(P) with the 'spawn' start method (so each worker is
a fresh interpreter that attaches through the environment, as loky's and
most pools' workers do) maps P tasks, one per worker: all P workers first
wait on a barrier, so every worker takes exactly one task and the P
processes compute at the same time; each task starts T threads, each
calling the recursive fib(N) REPS times.  Sizes come from the
environment:

  BENCH_MP_PROCS    P (default 4)
  BENCH_MP_THREADS  T (default 4)
  BENCH_MP_N        N (default 18: 8,361 fib() calls per fib(N))
  BENCH_MP_REPS     REPS (default 20)

Writes one JSON object to OUT: the pool's times (work_s: from creating
the pool to joining it; map_s: the tasks alone), and the fib() calls a
complete trace must hold, in all (expected_fib) and per worker pid
(per_pid: from the pids the tasks return)."""
import json
import multiprocessing as mp
import os
import sys
import threading
import time
from collections import Counter

PROCS = int(os.environ.get("BENCH_MP_PROCS") or 4)
THREADS = int(os.environ.get("BENCH_MP_THREADS") or 4)
N = int(os.environ.get("BENCH_MP_N") or 18)
REPS = int(os.environ.get("BENCH_MP_REPS") or 20)


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def ncalls(n):
    """fib() calls made by fib(n): c(0) = c(1) = 1, c(n) = 1 + c(n-1) +
    c(n-2), computed without calling fib."""
    a, b = 1, 1
    for _ in range(n - 1):
        a, b = b, 1 + a + b
    return b


def body(n, reps):
    for _ in range(reps):
        fib(n)


_barrier = None


def init(barrier):
    global _barrier
    _barrier = barrier


def task(args):
    n, reps, nthreads = args
    # Every worker holds one task until all of them hold one: the P
    # processes run their threads at the same time, and none takes two.
    _barrier.wait(300)
    ts = [threading.Thread(target=body, args=(n, reps))
          for _ in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return os.getpid()


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    barrier = ctx.Barrier(PROCS)
    pool = ctx.Pool(PROCS, initializer=init, initargs=(barrier,))
    t1 = time.perf_counter()
    pids = pool.map(task, [(N, REPS, THREADS)] * PROCS, chunksize=1)
    t2 = time.perf_counter()
    pool.close()
    pool.join()
    t3 = time.perf_counter()
    per_task = THREADS * REPS * ncalls(N)
    res = {"workload": "mp",
           "params": {"procs": PROCS, "threads": THREADS, "n": N,
                      "reps": REPS},
           "work_s": t3 - t0, "map_s": t2 - t1,
           "expected_fib": per_task * PROCS,
           "workers_used": len(set(pids)),
           "per_pid": {str(p): c * per_task
                       for p, c in Counter(pids).items()}}
    with open(sys.argv[1], "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()

"""wl_serial.py: one worker at a time, the shape of issue 12's 2-core
loss: a parent starts WORKERS spawn-method processes one after another,
each making CALLS calls of a small Python function, and waits for each
before starting the next.

    python wl_serial.py

Sizes from the environment: BENCH_SERIAL_WORKERS (default 6),
BENCH_SERIAL_CALLS (default 1000000).  Prints one JSON line: the calls a
complete trace holds (expected_calls) and the wall time."""
import json
import multiprocessing as mp
import os
import time

WORKERS = int(os.environ.get("BENCH_SERIAL_WORKERS") or 6)
CALLS = int(os.environ.get("BENCH_SERIAL_CALLS") or 1000000)


def step(i):
    return i + 1


def work(n):
    for i in range(n):
        step(i)


if __name__ == "__main__":
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    for _ in range(WORKERS):
        p = ctx.Process(target=work, args=(CALLS,))
        p.start()
        p.join()
        assert p.exitcode == 0, p.exitcode
    print(json.dumps({"expected_calls": WORKERS * CALLS,
                      "wall_s": time.perf_counter() - t0}))

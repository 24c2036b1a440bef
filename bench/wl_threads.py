"""wl_threads.py: 4 threads, each making small Python and C calls
($BENCH_THREADS_N iterations per thread, default 60000).
Run: python wl_threads.py [--count-calls] [OUT]"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N = int(os.environ.get("BENCH_THREADS_N", "60000"))
THREADS = 4


def leaf(i):
    return i % 7


def middle(i):
    return leaf(i) + leaf(i + 1) + len(str(i))


def worker(out, k):
    s = 0
    for i in range(N):
        s += middle(i)
    out[k] = s


def work():
    out = [0] * THREADS
    ts = [threading.Thread(target=worker, args=(out, k), name=f"worker-{k}")
          for k in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(out)


if __name__ == "__main__":
    benchlib.main("threads", work, {"n": N, "threads": THREADS})

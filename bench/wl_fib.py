"""wl_fib.py: recursive fib(N), pure small Python calls (N = $BENCH_FIB_N,
default 30: 2,692,537 calls).  Run: python wl_fib.py [--count-calls] [OUT]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N = int(os.environ.get("BENCH_FIB_N", "30"))


def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def work():
    fib(N)


if __name__ == "__main__":
    benchlib.main("fib", work, {"n": N})

"""wl_generators.py: generator pipelines: every resumption of a generator
is a recorded call ($BENCH_GEN_N items through the pipeline, default
300000).  Run: python wl_generators.py [--count-calls] [OUT]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

N = int(os.environ.get("BENCH_GEN_N", "300000"))


def numbers(n):
    for i in range(n):
        yield i


def squares(it):
    for x in it:
        yield x * x


def odd(it):
    for x in it:
        if x & 1:
            yield x


def work():
    total = sum(odd(squares(numbers(N))))
    total += sum(x + 1 for x in numbers(N // 2))
    return total


if __name__ == "__main__":
    benchlib.main("generators", work, {"n": N})

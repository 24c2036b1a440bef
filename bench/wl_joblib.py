"""wl_joblib.py: joblib.Parallel(n_jobs=2) over $BENCH_JOBLIB_TASKS small
tasks (default 200), multi-process end to end: the work time includes
starting the loky workers.  Calls made in the workers are not counted by
--count-calls (only the parent's).
Run: python wl_joblib.py [--count-calls] [OUT]"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402

TASKS = int(os.environ.get("BENCH_JOBLIB_TASKS", "200"))


def task(i):
    words = [str(i * k) for k in range(200)]
    return sum(len(w) for w in sorted(words))


def work():
    return sum(Parallel(n_jobs=2)(delayed(task)(i) for i in range(TASKS)))


if __name__ == "__main__":
    benchlib.main("joblib", work, {"tasks": TASKS, "n_jobs": 2})

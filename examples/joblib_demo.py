"""joblib.Parallel under traced: every loky worker's calls land in one file.

    build/bin/traced run -o joblib.json -- .venv/bin/python examples/joblib_demo.py
    .venv/bin/python examples/joblib_demo.py --inline joblib-inline.json
"""
import sys

from joblib import Parallel, delayed


def work(i):
    return sum(k * k for k in range(1000 + i))


def main():
    results = Parallel(n_jobs=4)(delayed(work)(i) for i in range(40))
    print("sum of results:", sum(results))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--inline":
        import traced

        with traced.session(output=sys.argv[2]) as s:
            main()
        print(f"{s.summary.events} events from {s.summary.processes} "
              f"processes in {s.summary.path}")
    else:
        main()

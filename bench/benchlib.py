"""benchlib.py: the harness every bench workload runs its work under.

A workload is a small program that calls ``benchlib.main(name, work,
params)``.  The harness times ``work()`` with ``time.perf_counter`` (the
program's own work time: start-up, imports and teardown are outside it)
and writes one JSON object to the path given as the program's first
argument, or prints it on stdout when there is none:

    {"workload": "fib", "params": {"n": 30}, "work_s": 0.21, ...}

``--count-calls`` (before the path) is the calibration run: the work runs
under ``sys.setprofile`` (and ``threading.setprofile`` for threads it
starts) counting ``call`` and ``c_call`` events, which are exactly the
calls a profile-hook tracer records.  The counts go into the JSON as
``py_calls`` and ``c_calls``; the work time of such a run means nothing.

Keep this module free of work at import time: it is imported by every
run, traced or not.
"""
import itertools
import json
import sys
import threading
import time


def _counting_profiler():
    # itertools.count's __next__ is one C call: safe from any thread
    # without a lock, and not itself profiled (the profiler is off inside
    # the profile function).
    py, c = itertools.count(), itertools.count()

    def profile(frame, event, arg):
        if event == "call":
            next(py)
        elif event == "c_call":
            next(c)

    def totals():
        # The value next() returns is how many times it was called before.
        return next(py), next(c)

    return profile, totals


def main(name, work, params=None):
    """Runs work() once, timed, and reports as the module doc says."""
    args = sys.argv[1:]
    calibrate = False
    if args and args[0] == "--count-calls":
        calibrate = True
        args = args[1:]
    out_path = args[0] if args else None

    result = {"workload": name, "params": params or {}}
    if calibrate:
        profile, totals = _counting_profiler()
        threading.setprofile(profile)
        sys.setprofile(profile)
        t0 = time.perf_counter()
        work()
        t1 = time.perf_counter()
        sys.setprofile(None)
        threading.setprofile(None)
        result["py_calls"], result["c_calls"] = totals()
    else:
        t0 = time.perf_counter()
        work()
        t1 = time.perf_counter()
    result["work_s"] = t1 - t0

    text = json.dumps(result)
    if out_path:
        with open(out_path, "w") as f:
            f.write(text + "\n")
    else:
        print(text)

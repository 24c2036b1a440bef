"""run.py: runs a Python program with the empty C profile hook installed
on its main thread and on every thread it starts (with
BENCH_EMPTYHOOK_MODE=monitoring: the empty sys.monitoring callback;
monitoring-calls: the same on the C-call events too).

    python bench/emptyhook/run.py PROGRAM.py [ARGS...]

_emptyhook is imported from $BENCH_EMPTYHOOK_PATH (the directory `make
bench` builds it into) or from the environment.  The program runs as
__main__ with sys.argv and sys.path[0] as `python PROGRAM.py ARGS` would
set them; like cProfile's and VizTracer's runners, everything it does
from then on goes through the hook."""
import os
import runpy
import sys
import threading

_path = os.environ.get("BENCH_EMPTYHOOK_PATH")
if _path:
    sys.path.insert(0, _path)
import _emptyhook  # noqa: E402


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: run.py PROGRAM.py [ARGS...]")
    program = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(program))
    mode = os.environ.get("BENCH_EMPTYHOOK_MODE")
    if mode in ("monitoring", "monitoring-calls"):
        # Every thread, 3.12+.
        _emptyhook.install_monitoring(mode == "monitoring-calls")
    else:
        threading.setprofile(_emptyhook.bootstrap)
        _emptyhook.install()
    runpy.run_path(program, run_name="__main__")


if __name__ == "__main__":
    main()

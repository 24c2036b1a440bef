"""`traced ...` and `python -m traced ...`: run the daemon/CLI binary that
the wheel carries inside this package (traced/_bin/traced) with the same
arguments.  The binary is told which interpreter this is (TRACED_PYTHON),
so that `traced run script.py` and `traced run -m module` run the script
with the interpreter traced is installed in."""
import os
import sys


def binary():
    """The daemon/CLI binary: the package's own (a wheel), else the one of
    the checkout this package was built from (`make`), else None."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bin",
                        "traced.exe" if sys.platform == "win32" else "traced")
    if os.access(here, os.X_OK):
        return here
    try:
        from ._build import TRACED_BIN
    except ImportError:
        return None
    return TRACED_BIN if os.access(TRACED_BIN, os.X_OK) else None


def main(argv=None):
    args = sys.argv[1:] if argv is None else list(argv)
    path = os.environ.get("TRACED_BIN") or binary()
    if path is None:
        sys.stderr.write("traced: the traced binary is not part of this "
                         "installation (%s); install the wheel, or build it "
                         "with `make`\n" % os.path.dirname(__file__))
        return 127
    os.environ.setdefault("TRACED_PYTHON", sys.executable)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        if sys.platform == "win32":
            # Windows has no exec: its execv starts a new process and ends
            # this one, losing the exit status and the arguments' quoting.
            import subprocess

            return subprocess.call([path] + args)
        os.execv(path, [path] + args)
    except OSError as e:
        sys.stderr.write("traced: cannot run %s: %s\n" % (path, e))
        return 126


if __name__ == "__main__":
    sys.exit(main())

"""pytest plugin (entry point pytest11): `pytest --traced=FILE` traces the
test session -- pytest itself, pytest-xdist's workers and every process
the tests start -- into one file, with one slice per test named by its node
id (setup, call and teardown inside it).  `--traced` alone writes
traced-pytest-YYYYmmdd-HHMMSS.json in the current directory.

The process that runs pytest creates the session; xdist workers and the
tests' children join it by the environment (the .pth hook), like any
process `traced run` starts.  Under `traced run pytest ...` the session
already exists: the plugin only adds the per-test slices."""
import os
import sys
import time

import pytest

_TRACE_EXTENSIONS = (".json", ".json.gz", ".pftrace", ".perfetto-trace")


def pytest_addoption(parser):
    group = parser.getgroup("traced", "tracing with traced")
    group.addoption(
        "--traced", nargs="?", const="", default=None, metavar="FILE",
        dest="traced_output",
        help="trace the session (pytest, xdist workers, the processes tests "
             "start) into FILE (.json, .json.gz or .pftrace; default "
             "traced-pytest-YYYYmmdd-HHMMSS.json), one slice per test")


def _enabled(config):
    return config.getoption("traced_output", None) is not None


def _name_worker(config):
    """An xdist worker (started as `python -c ...`) is named by its id."""
    import traced

    if traced._state.installed:
        traced._traced.process_info(
            "pytest-xdist " + str(config.workerinput.get("workerid", "?")))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    output = config.getoption("traced_output", None)
    config._traced_started = False
    if hasattr(config, "workerinput") and os.environ.get("TRACED_SESSION"):
        _name_worker(config)
    if output is None or hasattr(config, "workerinput"):
        return  # not asked for, or an xdist worker (it joins by env)
    if output and (os.path.isdir(output) or output.endswith(".py")
                   or "::" in output) \
            and not output.lower().endswith(_TRACE_EXTENSIONS):
        raise pytest.UsageError(
            "--traced %s: that is a test path, not a trace file; write "
            "--traced=FILE, or put --traced after the test paths" % output)
    if os.environ.get("TRACED_SESSION"):
        return  # already traced (traced run pytest ...): join, add slices
    import traced

    output = output or time.strftime("traced-pytest-%Y%m%d-%H%M%S.json")
    config._traced_started = traced.start(output=output)


@pytest.hookimpl(tryfirst=True)
def _traced_call_through_protocol(item, nextitem):
    """pytest_runtest_protocol: runs the test's protocol (every other
    implementation of the hook, pytest's own included) inside a span named
    by its node id.  Not a hook wrapper: a span ends when the frame that
    began it returns, and a wrapper's generator returns at its yield.  Its
    name tells the profile hook that what it calls is the user's code
    (traced's own code and its callees are otherwise not recorded)."""
    if not _enabled(item.config):
        return None
    import traced

    rest = item.config.pluginmanager.subset_hook_caller(
        "pytest_runtest_protocol", remove_plugins=[sys.modules[__name__]])
    with traced.span(item.nodeid):
        rest(item=item, nextitem=nextitem)
    return True


pytest_runtest_protocol = _traced_call_through_protocol


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if not getattr(config, "_traced_started", False):
        return
    import traced

    config._traced_started = False
    s = traced.stop()
    if s is not None:
        sys.stderr.write(
            "traced: %d processes, %d threads, %d events, %d dropped, "
            "%d bytes -> %s\n" % (s.processes, s.threads, s.events,
                                  s.dropped, s.bytes, s.path))

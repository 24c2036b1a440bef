"""Fixtures and helpers for the Windows tests: the programs `make windows`
cross-builds into build-win/, run under Wine, and a `traced.exe serve` on a
private named pipe.

`make test-windows` sets WINE (the wine64 loader), WINEPREFIX (a prefix
inside build-win/), WINEDEBUG=-all and WIN_BUILD.  No X display is used:
DISPLAY is removed from every program's environment, so a console program
that needed one would fail here.  `make test-windows` builds every program
first; run by hand before that, a test whose program is missing skips,
saying which.
"""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# tracefile.py (and the pftrace.py it imports) read a trace in any format.
sys.path.insert(0, str(REPO / "tests/integration"))


def _integration_helpers():
    """tests/integration/conftest.py as a plain module (its trace and
    summary helpers), under a name that is not this conftest's."""
    path = REPO / "tests/integration/conftest.py"
    spec = importlib.util.spec_from_file_location("integration_conftest",
                                                  path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_it = _integration_helpers()
load_trace = _it.load_trace
named = _it.named
instants = _it.instants
thread_names = _it.thread_names
contains = _it.contains
parse_summary = _it.parse_summary
summary_line = _it.summary_line

WIN_BUILD = Path(os.environ.get("WIN_BUILD") or REPO / "build-win")
WINE = (os.environ.get("WINE") or shutil.which("wine64") or
        next((p for p in ("/usr/lib/wine/wine64",) if os.path.exists(p)),
             "wine"))
# Outside make test-windows too, Wine's state stays in the build tree.
WINEPREFIX = os.environ.get("WINEPREFIX") or str(WIN_BUILD / "wineprefix")
WIN_UNITS = (os.environ.get("WIN_UNITS") or "frame msg map").split()

TRACED_EXE = WIN_BUILD / "bin/traced.exe"
TRACED_DLL = WIN_BUILD / "lib/traced.dll"
NATIVE_EXAMPLE = WIN_BUILD / "tests/native_example.exe"
STRESS_NATIVE = WIN_BUILD / "tests/stress_native.exe"
SPAWN = WIN_BUILD / "tests/spawn.exe"
PIPE_SD = WIN_BUILD / "tests/pipe_sd.exe"
TERMINATE = WIN_BUILD / "tests/terminate.exe"
PYTHON_EXE = WIN_BUILD / "python/python.exe"
WINPROBE = WIN_BUILD / "tests/pyext/winprobe.pyd"

# Every program gets this bound, so a hang fails one test, not the suite.
TIMEOUT = 300


def needs(*paths):
    """Skips the test while any of `paths` (build-win/ outputs) is not
    built: pytest run by hand before `make windows`.  `make test-windows`
    builds every one of them first, so nothing skips there."""
    missing = [str(p.relative_to(WIN_BUILD)) for p in paths if not p.exists()]
    return pytest.mark.skipif(
        bool(missing),
        reason="build-win/%s not built (make windows)" %
        ", build-win/".join(missing))


def winpath(path):
    """The Windows name of a Unix path: Wine's Z: drive is /."""
    return "Z:" + str(Path(path).resolve()).replace("/", "\\")


def wine_env(**extra):
    """os.environ without TRACED_* or DISPLAY, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRACED_") and k != "DISPLAY"}
    env["WINEDEBUG"] = "-all"
    env["WINEPREFIX"] = WINEPREFIX
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Result(_it.Result):
    """What a finished Windows program did (tests/integration's Result)."""

    def lines(self):
        """stdout's lines; Windows console programs end them with \r\n."""
        return self.stdout.decode(errors="replace").splitlines()


def wine(args, env=None, cwd=None, timeout=TIMEOUT):
    """Runs a Windows program (args[0], a build-win/ path) under Wine and
    returns a Result; fails the test if it outlives `timeout`."""
    cmd = [WINE] + [str(a) for a in args]
    try:
        p = subprocess.run(cmd, env=env or wine_env(), cwd=cwd,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail("%r did not finish within %d s\n%s" % (
            cmd, timeout, Result(cmd, None, e.stdout or b"",
                                 e.stderr or b"").describe()))
    return Result(cmd, p.returncode, p.stdout, p.stderr)


@pytest.fixture(scope="session", autouse=True)
def wineserver():
    """One persistent wineserver for the run (the prefix is created on its
    first start), stopped at the end; started with its output on
    /dev/null, so no test's pipes stay open behind it."""
    server = (os.environ.get("WINESERVER") or shutil.which("wineserver") or
              next((p for p in ("/usr/lib/wine/wineserver64",)
                    if os.path.exists(p)), None))
    if server is None:
        yield
        return
    subprocess.run([server, "-p"], env=wine_env(), stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=TIMEOUT)
    # The prefix's first start (wineboot) before any test's timing.
    subprocess.run([WINE, "cmd", "/c", "exit"], env=wine_env(),
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=TIMEOUT)
    try:
        yield
    finally:
        subprocess.run([server, "-k"], env=wine_env(),
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=TIMEOUT)


class WinDaemon(_it.Daemon):
    """`traced.exe serve` on a private pipe \\\\.\\pipe\\traced-test-<id>
    (tests/integration's Daemon, its log kept the same way)."""

    def __init__(self, directory):
        super().__init__(directory)
        self.pipe = self.socket = ("\\\\.\\pipe\\traced-test-" +
                                   uuid.uuid4().hex[:12])
        self.env = wine_env(TRACED_SOCKET=self.pipe)

    def start(self, *extra):
        cmd = [WINE, str(TRACED_EXE), "serve", "--socket", self.pipe]
        cmd += [str(a) for a in extra]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, cwd=self.dir,
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        # The daemon logs event=listen once the pipe accepts clients.
        deadline = time.monotonic() + 60
        while "event=listen" not in self.log():
            if self.proc.poll() is not None:
                pytest.fail("traced.exe serve exited with status %r before "
                            "listening; its log:\n%s" %
                            (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                self.proc.kill()
                self.proc.wait()
                pytest.fail("traced.exe serve did not listen within 60 s; "
                            "its log:\n%s" % self.log())
            time.sleep(0.05)

    def status(self):
        """`traced.exe status --json` as a dict."""
        r = wine([TRACED_EXE, "status", "--socket", self.pipe, "--json"],
                 env=self.env, cwd=self.dir)
        assert r.returncode == 0, r.describe()
        return json.loads(r.stdout)

    def stop(self):
        """`traced.exe stop`; the daemon must then exit 0."""
        if self.proc.poll() is not None:
            pytest.fail("the daemon died during the test with status %r; "
                        "its log:\n%s" % (self.proc.returncode, self.log()))
        r = wine([TRACED_EXE, "stop", "--socket", self.pipe], env=self.env,
                 cwd=self.dir)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail("the daemon did not exit within 60 s of traced.exe "
                        "stop\n%s\nits log:\n%s" % (r.describe(), self.log()))
        assert r.returncode == 0, r.describe()
        assert rc == 0, ("the daemon exited with status %r; its log:\n%s" %
                         (rc, self.log()))


@pytest.fixture
def win_daemon(tmp_path):
    """A traced.exe daemon on a private pipe; always stopped, and it must
    then exit 0."""
    d = WinDaemon(tmp_path)
    d.start()
    try:
        yield d
    finally:
        d.stop()

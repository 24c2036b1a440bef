"""The installed artefact, not the checkout: each wheel `make wheel` left in
dist/ is installed with `pip install --no-index` into a fresh venv of its
own Python version, and the tool is used from a directory outside the
repository, with nothing of the checkout on PATH or in the environment
(no TRACED_BIN: the package must find the binary inside itself).

Run by `make wheel-test` (after `make wheel`); a missing wheel fails."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import tracefile  # noqa: E402

TIMEOUT = 120
VERSIONS = ("3.11", "3.12", "3.13")
# A fixed workload (no sleeps, no timing): a pool of 2 workers, 10 tasks.
MP_APP = textwrap.dedent("""\
    import multiprocessing as mp
    import sys

    def square(x):
        return x * x

    if __name__ == "__main__":
        mp.set_start_method(sys.argv[1] if len(sys.argv) > 1 else "spawn")
        with mp.Pool(2) as pool:
            print(sum(pool.map(square, range(10))))
    """)


def interpreter(version):
    """A CPython `version` on this machine (PATH, then pyenv), or None."""
    exe = shutil.which("python" + version)
    if exe:
        ok = subprocess.run([exe, "-c", ""], capture_output=True)
        if ok.returncode == 0:
            return exe
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    found = sorted(glob.glob("%s/versions/%s.*/bin/python%s" %
                             (root, version, version)))
    return found[-1] if found else None


def wheel_for(version):
    tag = "cp" + version.replace(".", "")
    found = sorted(glob.glob(str(REPO / "dist" / ("traced-*-%s-%s-*.whl" %
                                                  (tag, tag)))))
    return found[-1] if found else None


def clean_env(tmp, venv):
    """The environment of a user who just made the venv: no TRACED_*
    variables of the test run, the venv's bin first on PATH, nothing of
    the checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TRACED_") and k not in
           ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    path = [p for p in env.get("PATH", "").split(os.pathsep)
            if p and not p.startswith(str(REPO))]
    env["PATH"] = os.pathsep.join([str(venv / "bin")] + path)
    env["TRACED_SOCKET"] = str(tmp / "d.sock")
    env["VIRTUAL_ENV"] = str(venv)
    return env


@pytest.fixture(scope="module", params=VERSIONS)
def installed(request, tmp_path_factory):
    """(venv, env, work dir) with the wheel for one Python installed."""
    version = request.param
    exe = interpreter(version)
    if exe is None and not os.environ.get("CI"):
        pytest.skip("no python%s on this machine" % version)
    assert exe is not None, "no python%s on this machine" % version
    whl = wheel_for(version)
    assert whl is not None, (
        "no wheel for %s in dist/: run `make wheel` first" % version)
    tmp = tmp_path_factory.mktemp("w" + version.replace(".", ""))
    venv = tmp / "venv"
    subprocess.run([exe, "-m", "venv", str(venv)], check=True,
                   timeout=TIMEOUT)
    env = clean_env(tmp, venv)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                    "-q", "--no-index", whl], check=True, env=env,
                   cwd=str(tmp), timeout=TIMEOUT)
    work = tmp / "work"
    work.mkdir()
    (work / "app.py").write_text(MP_APP)
    yield venv, env, work
    subprocess.run([str(venv / "bin" / "traced"), "stop"], env=env,
                   cwd=str(work), capture_output=True, timeout=TIMEOUT)


def run(cmd, env, cwd, **kw):
    return subprocess.run(cmd, env=env, cwd=str(cwd), capture_output=True,
                          text=True, timeout=TIMEOUT, **kw)


def package_dir(venv, env, cwd):
    r = run([str(venv / "bin" / "python"), "-c",
             "import os, traced; print(os.path.dirname(traced.__file__))"],
            env, cwd)
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip())


def test_installed_from_the_venv_not_the_checkout(installed):
    venv, env, work = installed
    pkg = package_dir(venv, env, work)
    assert pkg.is_relative_to(venv), pkg
    assert os.access(pkg / "_bin" / "traced", os.X_OK)
    assert not (pkg / "_build.py").exists()


def test_version_from_the_command_and_python_m(installed):
    venv, env, work = installed
    a = run(["traced", "--version"], env, work)
    b = run([str(venv / "bin" / "python"), "-m", "traced", "--version"],
            env, work)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert re.match(r"traced \d+\.\d+\.\d+ \(protocol \d+\)\n$", a.stdout)
    assert a.stdout == b.stdout


def test_binaries_need_only_libc(installed):
    venv, env, work = installed
    pkg = package_dir(venv, env, work)
    for f in [pkg / "_bin" / "traced"] + list(pkg.glob("_traced*.so")):
        out = run(["ldd", str(f)], env, work).stdout
        assert "libc.so" in out, out
        for lib in ("libuv", "libmsgpack", "libz."):
            assert lib not in out, (f, out)


def processes(path):
    m = tracefile.load(path)
    assert not m.errors, m.errors
    return m, {s[0] for s in m.slices}


FORMS = {
    "dashdash": ["--", "python", "app.py"],
    "plain": ["python", "app.py"],
    # The script and the module run with the venv's interpreter although
    # PATH has none (TRACED_PYTHON, set by the traced command).
    "script": ["app.py"],
    "module": ["-m", "app"],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_traced_run_multiprocessing(installed, form):
    venv, env, work = installed
    out = work / ("mp-%s.json" % form)
    traced = str(venv / "bin" / "traced")
    if form in ("script", "module"):
        env = dict(env, PATH="/usr/bin:/bin")
    r = run([traced, "run", "-o", str(out)] + FORMS[form], env, work)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "285\n"
    m, pids = processes(out)
    # The parent, 2 workers and spawn's resource tracker.
    assert len(pids) == 4, (pids, r.stderr)
    assert any(s[3].startswith("square") for s in m.slices)
    assert re.search(r"traced: 4 processes, .* 0 dropped", r.stderr), r.stderr


def test_inline_api_starts_its_own_daemon(installed):
    venv, env, work = installed
    env = dict(env, TRACED_SOCKET=str(work / "inline.sock"))
    code = textwrap.dedent("""\
        import traced

        def work():
            return sum(range(1000))

        with traced.session(output="inline.json") as s:
            work()
        print(traced.last_summary().processes)
        """)
    r = run([str(venv / "bin" / "python"), "-c", code], env, work)
    try:
        assert r.returncode == 0, r.stderr
        assert r.stdout == "1\n", (r.stdout, r.stderr)
        m, pids = processes(work / "inline.json")
        assert any(s[3].startswith("work") for s in m.slices)
    finally:
        run(["traced", "stop"], env, work)


def test_python_m_traced_report(installed):
    venv, env, work = installed
    out = work / "rep.json"
    r = run(["traced", "run", "-q", "-o", str(out), "python", "app.py"],
            env, work)
    assert r.returncode == 0, r.stderr
    rep = run([str(venv / "bin" / "python"), "-m", "traced", "report",
               "--json", str(out)], env, work)
    assert rep.returncode == 0, rep.stderr
    data = json.loads(rep.stdout)
    assert "square" in json.dumps(data)


def test_pytest_plugin_and_console_script_registered(installed):
    venv, env, work = installed
    r = run([str(venv / "bin" / "python"), "-c",
             "from importlib.metadata import distribution as d; "
             "print(sorted((x.group, x.name, x.value) "
             "for x in d('traced').entry_points))"],
            env, work)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("[('console_scripts', 'traced', "
                        "'traced.__main__:main'), ('pytest11', 'traced', "
                        "'traced.pytest_plugin')]\n"), r.stdout


def test_empty_session_says_why(installed):
    venv, env, work = installed
    r = run(["traced", "run", "-q", "-o", "empty.json", "true"], env, work)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    assert "no process joined the session: true is not a Python" in r.stderr
    # ... and names the interpreter traced is installed in.
    assert str(venv / "bin" / "python") in r.stderr, r.stderr

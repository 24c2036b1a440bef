"""The Windows embeddable CPython (scripts/win-python.sh) under Wine: it
runs multiprocessing with spawn, and imports an extension module built
with mingw-w64 (issue 16, item 4, the steps before the Python shim)."""

import textwrap

from conftest import PYTHON_EXE, WINPROBE, needs, wine, winpath

POOL = textwrap.dedent("""\
    import multiprocessing
    import os
    import sys


    def square(x):
        return x * x, os.getpid()


    if __name__ == "__main__":
        with multiprocessing.Pool(2) as pool:
            results = pool.map(square, range(8))
        print(sys.platform, multiprocessing.get_start_method())
        print(*[r for r, _ in results])
        print(all(pid != os.getpid() for _, pid in results))
    """)


@needs(PYTHON_EXE)
def test_python_pool_map_under_wine(tmp_path):
    script = tmp_path / "pool.py"
    script.write_text(POOL)
    r = wine([PYTHON_EXE, winpath(script)], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.lines() == ["win32 spawn", "0 1 4 9 16 25 36 49", "True"], \
        r.describe()


@needs(PYTHON_EXE)
def test_python_runs_site(tmp_path):
    # python313._pth's `import site` is enabled: .pth hooks can run.
    r = wine([PYTHON_EXE, "-c", "import sys; print('site' in sys.modules)"],
             cwd=tmp_path)
    assert r.returncode == 0 and r.lines() == ["True"], r.describe()


@needs(PYTHON_EXE, WINPROBE)
def test_mingw_extension_imports(tmp_path):
    code = ("import sys; sys.path.insert(0, %r); import winprobe; "
            "print(winprobe.add(2, 40), winprobe.__file__)" %
            winpath(WINPROBE.parent))
    r = wine([PYTHON_EXE, "-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.describe()
    assert r.lines() == ["42 %s" % winpath(WINPROBE)], r.describe()

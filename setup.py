"""Build the pip-installable tool (pyproject.toml holds the metadata): the
`traced` package's extension, the .pth hook, and the daemon/CLI binary,
which goes inside the package as traced/_bin/traced.

Both the extension and the binary link libuv, msgpack-c and zlib statically
when the system has their static archives (Debian: libuv1-dev,
libmsgpack-dev, zlib1g-dev), so that the installed files need nothing but
glibc.  Where an archive is missing the library is linked dynamically and a
warning says which: the result then needs that library at run time (see
docs/packaging.md).  Developers keep using `make`, which builds the same
sources with -Werror into build/ and installs pyshim/ into .venv.
"""
import glob
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

ROOT = os.path.dirname(os.path.abspath(__file__))
os.chdir(ROOT)  # setuptools wants source paths relative to setup.py

CFLAGS = ["-std=c11", "-O2", "-g0", "-Wall", "-Wextra",
          "-Wno-missing-field-initializers", "-fvisibility=hidden"]
MACROS = [("_GNU_SOURCE", "1")]
INCLUDES = [".", "libclient/include"]

# The helpers libclient uses from common/ (the rest is the executable's).
COMMON_CLIENT = ["common/map.c", "common/intern.c"]


def sources(*patterns):
    """The files matching `patterns`, less the Windows side of each seam
    (*_win.c: mk/windows.mk builds those with mingw)."""
    out = []
    for p in patterns:
        out += sorted(f for f in glob.glob(p) if not f.endswith("_win.c"))
    return out


CLIENT_SRC = sources("libclient/src/*.c", "proto/*.c") + COMMON_CLIENT
EXT_SRC = sources("pyshim/src/*.c") + CLIENT_SRC
BIN_SRC = [s for s in sources("common/*.c", "output/*.c", "report/*.c",
                              "daemon/*.c", "cli/*.c")
           if s not in COMMON_CLIENT] + CLIENT_SRC


def compiler_path(name):
    """The C compiler's idea of where lib `name` is, or None."""
    cc = os.environ.get("CC", "cc").split()
    try:
        out = subprocess.run(cc + ["-print-file-name=" + name],
                             capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    path = out.stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


def library(dynamic, *archives):
    """Link arguments for one C library: its static archive when found,
    else -l`dynamic` (with a warning: the result then needs it at run
    time)."""
    for a in archives:
        path = compiler_path(a)
        if path:
            return [path]
    sys.stderr.write("traced setup.py: warning: no static %s found; "
                     "linking -l%s dynamically\n" % (" or ".join(archives),
                                                      dynamic))
    return ["-l" + dynamic]


# msgpack-c renamed its library to msgpack-c in 6.0.
MSGPACK = library("msgpackc", "libmsgpackc.a", "libmsgpack-c.a")
# Debian names libuv's static archive libuv_a.a.
UV = library("uv", "libuv_a.a", "libuv.a")
ZLIB = library("z", "libz.a")
# Static archives' symbols stay inside what links them.
HIDE = ["-Wl,--exclude-libs,ALL"]


def newer(src, obj, headers_mtime):
    try:
        t = os.path.getmtime(obj)
    except OSError:
        return True
    return os.path.getmtime(src) > t or headers_mtime > t


class build_py_with_pth(build_py):
    """Also puts traced-attach.pth at the top of the install
    (site-packages), where the interpreter's site module runs it at
    start-up."""

    def run(self):
        super().run()
        shutil.copy(os.path.join("pyshim", "traced-attach.pth"),
                    os.path.join(self.build_lib, "traced-attach.pth"))


class build_ext_and_bin(build_ext):
    """Builds the extension, then the daemon/CLI binary into the package
    (traced/_bin/traced), where traced/__main__.py and the inline API's
    autostart find it."""

    def run(self):
        super().run()
        self.build_binary()

    def build_binary(self):
        cc = self.compiler
        objdir = os.path.join(self.build_temp, "traced-bin")
        headers = sources("*/*.h", "libclient/include/*.h", "*/src/*.h")
        hmtime = max(os.path.getmtime(h) for h in headers)
        todo = []
        objects = []
        for src in BIN_SRC:
            obj = os.path.join(objdir, os.path.splitext(src)[0] + ".o")
            objects.append(obj)
            if self.force or newer(src, obj, hmtime):
                todo.append((src, obj))

        def one(item):
            src, obj = item
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            cc.spawn(cc.compiler_so + CFLAGS + ["-D%s=%s" % m for m in MACROS]
                     + ["-I" + i for i in INCLUDES] + ["-c", src, "-o", obj])

        jobs = self.parallel if isinstance(self.parallel, int) else 0
        jobs = jobs or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(one, todo))
        out = os.path.join(self.build_lib, "traced", "_bin", "traced")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        linker = [c for c in cc.linker_exe if c]
        cc.spawn(linker + ["-o", out] + objects + UV + MSGPACK + ZLIB
                 + HIDE + ["-lpthread", "-ldl", "-lrt", "-lm", "-s"])
        os.chmod(out, 0o755)


ext = Extension(
    "traced._traced",
    sources=EXT_SRC,
    include_dirs=INCLUDES + ["pyshim/src"],
    define_macros=MACROS,
    extra_compile_args=CFLAGS,
    extra_objects=MSGPACK if MSGPACK[0].startswith("/") else [],
    libraries=[] if MSGPACK[0].startswith("/") else ["msgpackc"],
    extra_link_args=HIDE + ["-lpthread", "-s"],
)

setup(
    ext_modules=[ext],
    cmdclass={"build_py": build_py_with_pth, "build_ext": build_ext_and_bin},
)

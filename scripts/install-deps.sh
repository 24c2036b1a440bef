#!/usr/bin/env bash
# install-deps.sh: install what building and testing traced needs, and only
# what is missing: Debian packages (apt-get) and the Python test packages
# (pip, into the project's .venv).  Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# python3-dev/python3-venv: the install and two-user tests build the Python
# package into a venv of the system's Python (every user may run it);
# util-linux: setpriv; passwd: useradd/userdel; man-db: the man page test;
# zlib1g-dev: the daemon's .json.gz writer; chromium: the headless browser
# tests/integration/test_viewer.py drives vizviewer's Perfetto UI with;
# the Windows build (make windows, docs/windows.md): mingw-w64, its zlib,
# cmake, curl and dpkg-dev (dpkg-source) for libuv and msgpack-c (whose
# CMakeLists' project() enables C++ too, so its configure step needs the
# mingw g++ although only C is compiled), wine64 for make test-windows.
DEBS=(gcc make pkg-config libuv1-dev libmsgpack-dev check zlib1g-dev
      clang clang-format valgrind python3-dev python3-venv util-linux
      passwd man-db chromium gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64
      libz-mingw-w64-dev cmake curl dpkg-dev wine wine64)
# (The Makefile's test-deps also installs viztracer and websocket-client.)
PY_PKGS=(pytest msgpack joblib)

missing=()
for p in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
    missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing Debian packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
      exit 1
    fi
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "install-deps: creating .venv"
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
fi
need=()
for p in "${PY_PKGS[@]}"; do
  .venv/bin/python -c "import $p" 2>/dev/null || need+=("$p")
done
if ((${#need[@]})); then
  echo "install-deps: pip installing into .venv: ${need[*]}"
  .venv/bin/python -m pip install -q "${need[@]}"
fi

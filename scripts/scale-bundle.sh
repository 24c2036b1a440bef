#!/bin/bash
# scale-bundle.sh: lays out the self-contained scale benchmark folder that
# ../shared/scale/README.md describes, so a many-core machine without this
# build's libraries (libuv, msgpack-c) or Python can run it.
#
#   scripts/scale-bundle.sh [DIR]      (default: build/scale-bundle)
#
# Variables: PYVER (the target's Python minor version, default 3.12; the
# wheel of the traced package is built with python$PYVER, which must be
# installed here; PYBIN names the interpreter if it is not on PATH), SCALE (the scale benchmark's folder, default
# ../shared/scale beside the repository).
#
# DIR gets bin/traced, bin/producer, lib/ (the shared libraries ldd names
# that a bare machine lacks), libz/, whl/ (traced built for $PYVER, and
# viztracer, objprint and joblib wheels for it from the package index),
# and scale.sh, wl_mp.py, wl_joblib.py, count.py. scale.sh is copied with
# its ring-full settings translated to TRACED_ON_FULL (docs/options.md):
# its "wait" runs are the lossless default and its drop runs use
# TRACED_ON_FULL=drop with the old 10 ms wait. Then, on the target:
#
#   tar -C build -czf scale-bundle.tgz scale-bundle     (here)
#   OUT=/tmp/scale-out PY=python3 bash scale-bundle/scale.sh   (there)
#
# DIR is rebuilt from scratch; nothing in it is meant to be committed
# (build/ is git-ignored).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/build/scale-bundle}
PYVER=${PYVER:-3.12}
SCALE=${SCALE:-$ROOT/../shared/scale}
PYBIN=${PYBIN:-}

die() {
  echo "scale-bundle: $*" >&2
  exit 1
}

[ -f "$SCALE/scale.sh" ] || die "no scale benchmark at $SCALE (set SCALE)"
if [ -z "$PYBIN" ]; then
  # pyenv's shim for python3.12 fails unless that version is selected:
  # its interpreter itself serves as well.
  for c in "python$PYVER" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$PYVER".*/bin/python"$PYVER"; do
    if "$c" -c 'pass' 2>/dev/null; then
      PYBIN=$c
      break
    fi
  done
fi
[ -n "$PYBIN" ] || die "no python$PYVER found (set PYVER, or PYBIN to the interpreter)"
case $DIR in
  /* | ./* | ../*) ;;
  *) DIR=./$DIR ;;
esac

make -C "$ROOT" -s all build/bench/producer

rm -rf "$DIR"
mkdir -p "$DIR/bin" "$DIR/lib" "$DIR/libz" "$DIR/whl"
cp "$ROOT/build/bin/traced" "$ROOT/build/bench/producer" "$DIR/bin/"

# The libraries a bare machine lacks; libc and the loader are the
# target's own. libz goes apart: scale.sh adds it only if the binary
# does not start without it.
libs=$(ldd "$DIR/bin/traced" "$DIR/bin/producer" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u)
while read -r name path; do
  case $name in
    libuv.so.* | libmsgpackc.so.*) cp -L "$path" "$DIR/lib/$name" ;;
    libz.so.*) cp -L "$path" "$DIR/libz/$name" ;;
  esac
done <<<"$libs"
for need in libuv.so.1 libmsgpackc.so.2 libz.so.1; do
  [ -e "$DIR/lib/$need" ] || [ -e "$DIR/libz/$need" ] ||
    echo "scale-bundle: warning: $need not found by ldd (soname changed?)" >&2
done

# The traced package for the target's Python: pip builds the extension
# with python$PYVER's headers (libtraced's sources are compiled in; it
# links libmsgpackc, which lib/ carries).
"$PYBIN" -m pip wheel -q --no-deps -w "$DIR/whl" "$ROOT/pyshim"
# viztracer (scale.sh's third part compares with it), objprint (its
# dependency) and joblib (that part's workload), built for $PYVER.
"$PYBIN" -m pip download -q --only-binary=:all: --python-version "$PYVER" \
  --platform manylinux2014_x86_64 -d "$DIR/whl" viztracer objprint joblib

for f in wl_mp.py wl_joblib.py count.py README.md; do
  cp "$SCALE/$f" "$DIR/"
done
cp "$SCALE"/baseline-*.txt "$DIR/" 2>/dev/null || true

# scale.sh chose the ring-full policy with TRACED_FULL_WAIT_MS alone (60 s:
# lossless, 10 ms: drops); since the daemon became lossless by default
# the policy is TRACED_ON_FULL. Each edit must match exactly once, or the
# copy would silently measure something else.
edit() { # FROM TO: replace the one line of scale.sh that contains FROM
  local n
  n=$(grep -cF -- "$1" "$DIR/scale.sh" || true)
  [ "$n" = 1 ] || die "scale.sh changed: '$1' found $n times; update scripts/scale-bundle.sh"
  FROM=$1 TO=$2 perl -0pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/' "$DIR/scale.sh"
}
cp "$SCALE/scale.sh" "$DIR/scale.sh"
edit 'env TRACED_FULL_WAIT_MS=60000 "$B/bin/producer" 1' \
  'env TRACED_ON_FULL=wait "$B/bin/producer" 1'
edit 'env TRACED_FULL_WAIT_MS=$w "$B/bin/producer"' \
  'env TRACED_ON_FULL=$mode TRACED_FULL_WAIT_MS=10 "$B/bin/producer"'
edit 'for mode in default wait60s; do' 'for mode in default drop; do'
edit 'if [ $mode = default ]; then w=10; else w=60000; fi' \
  'if [ $mode = default ]; then w=wait; else w=drop; fi'
edit 'env TRACED_FULL_WAIT_MS=$w $PY "$B/wl_mp.py"' \
  'env TRACED_ON_FULL=$w TRACED_FULL_WAIT_MS=10 $PY "$B/wl_mp.py"'
edit '# 1. daemon throughput with native producers (1,4,8,15 procs; ring-full' \
  '# (ring-full policy translated to TRACED_ON_FULL by scripts/scale-bundle.sh)
# 1. daemon throughput with native producers (1,4,8,15 procs; ring-full'
grep -q 'TRACED_FULL_WAIT_MS=60000\|TRACED_FULL_WAIT_MS=\$w' "$DIR/scale.sh" &&
  die "scale.sh still sets the old ring-full wait"
chmod +x "$DIR/scale.sh"

echo "scale-bundle: $DIR ($(du -sh "$DIR" | cut -f1)):"
(cd "$DIR" && find . -type f | sort | sed 's/^\.\//  /')

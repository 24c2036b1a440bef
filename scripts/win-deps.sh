#!/usr/bin/env bash
# win-deps.sh: fetch libuv and msgpack-c as Debian bookworm source packages
# and cross-build them, unchanged, as static libraries for Windows (x86_64)
# with mingw-w64, into build-win/deps/{include,lib} (docs/windows.md).
#
# Idempotent: downloads are cached in build-win/src and checked against the
# SHA-256 sums pinned here (the .dsc's own sums cover the tarballs), and a
# library already built (its stamp file present) is not built again.
#   WIN_DEPS_EXPORT=DIR  also copy the result to DIR/{include,lib}.
set -euo pipefail
cd "$(dirname "$0")/.."

HOST=x86_64-w64-mingw32
TOP=$PWD/build-win
SRC=$TOP/src
PREFIX=$TOP/deps
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Debian's cmake (install-deps.sh) before any other on PATH: a pip-installed
# CMake 4 refuses libuv 1.44's cmake_minimum_required(2.8.12) unless told
# the policy minimum below.
CMAKE=${CMAKE:-$(command -v /usr/bin/cmake || command -v cmake || echo cmake)}

# package version pool-dir dsc-sha256 cmake-options...
LIBUV=(libuv1 1.44.2-1+deb12u1 main/libu/libuv1
       798be0a2bcbcd40bb85302f6ccbf02b240e1958d4ad9cf153b8101c3a82f21b9
       -DLIBUV_BUILD_TESTS=OFF -DLIBUV_BUILD_BENCH=OFF -DBUILD_TESTING=OFF)
MSGPACK=(msgpack-c 4.0.0-3 main/m/msgpack-c
         235befbce21a7a2a4cb7ca5f4435abb7b210b051b1a80f429747ae478b7c0ca2
         -DMSGPACK_BUILD_TESTS=OFF -DMSGPACK_BUILD_EXAMPLES=OFF
         -DMSGPACK_ENABLE_SHARED=OFF -DBUILD_SHARED_LIBS=OFF)

die() { echo "win-deps: $*" >&2; exit 1; }

for tool in "$HOST-gcc" "$HOST-ar" "$CMAKE" dpkg-source curl sha256sum; do
  command -v "$tool" >/dev/null || die "missing $tool (make deps)"
done

fetch() { # url file
  [ -s "$2" ] && return 0
  echo "win-deps: downloading $1" >&2
  curl -fsSL --retry 3 -o "$2.part" "$1"
  mv "$2.part" "$2"
}

# Downloads the source package, checks it, unpacks it (Debian's patches
# applied, as Debian builds it) and echoes the unpacked directory.
unpack() { # package version pool-dir dsc-sha256
  local pkg=$1 ver=$2 pool=$3 sum=$4 dsc f
  dsc=${pkg}_${ver}.dsc
  mkdir -p "$SRC"
  fetch "$MIRROR/pool/$pool/$dsc" "$SRC/$dsc"
  echo "$sum  $SRC/$dsc" | sha256sum -c --quiet - >&2 ||
    die "$dsc: SHA-256 differs from the pinned one"
  # The files the .dsc names; dpkg-source checks each against its sums.
  for f in $(sed -n '/^Checksums-Sha256:/,/^[A-Z]/s/^ [0-9a-f]\{64\} [0-9]* //p' \
               "$SRC/$dsc"); do
    fetch "$MIRROR/pool/$pool/$f" "$SRC/$f"
  done
  local dir=$SRC/$pkg-${ver%-*}
  if [ ! -d "$dir" ]; then
    (cd "$SRC" && dpkg-source --no-copy -x "$dsc" "$dir") >&2
  fi
  echo "$dir"
}

build() { # package version pool-dir dsc-sha256 cmake-options...
  local pkg=$1 dir stamp=$PREFIX/.built-$1-$2
  [ -e "$stamp" ] && return 0
  dir=$(unpack "$1" "$2" "$3" "$4")
  shift 4
  echo "win-deps: building $pkg for $HOST"
  rm -rf "$TOP/obj-$pkg"
  "$CMAKE" -S "$dir" -B "$TOP/obj-$pkg" -G "Unix Makefiles" \
    -DCMAKE_SYSTEM_NAME=Windows -DCMAKE_C_COMPILER="$HOST-gcc" \
    -DCMAKE_CXX_COMPILER="$HOST-g++" -DCMAKE_RC_COMPILER="$HOST-windres" \
    -DCMAKE_AR="$(command -v "$HOST-ar")" \
    -DCMAKE_RANLIB="$(command -v "$HOST-ranlib")" \
    -DCMAKE_FIND_ROOT_PATH="/usr/$HOST" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_INSTALL_PREFIX="$PREFIX" -DCMAKE_INSTALL_LIBDIR=lib \
    -DCMAKE_POLICY_VERSION_MINIMUM=3.5 "$@" \
    >"$TOP/obj-$pkg.log" || { cat "$TOP/obj-$pkg.log"; die "$pkg: cmake"; }
  "$CMAKE" --build "$TOP/obj-$pkg" -j "${WIN_DEPS_JOBS:-2}" >>"$TOP/obj-$pkg.log" 2>&1 ||
    { tail -50 "$TOP/obj-$pkg.log"; die "$pkg: build"; }
  "$CMAKE" --install "$TOP/obj-$pkg" >>"$TOP/obj-$pkg.log" 2>&1
  touch "$stamp"
}

mkdir -p "$PREFIX"
build "${LIBUV[@]}"
build "${MSGPACK[@]}"

# traced links both statically: keep only the static archives, under the
# names -luv and -lmsgpackc find (libuv installs its static one as uv_a).
[ -e "$PREFIX/lib/libuv_a.a" ] && cp "$PREFIX/lib/libuv_a.a" "$PREFIX/lib/libuv.a"
rm -f "$PREFIX"/lib/*.dll.a "$PREFIX"/lib/libuv_a.a
rm -rf "$PREFIX/bin"
for f in include/uv.h include/msgpack.h lib/libuv.a lib/libmsgpackc.a; do
  [ -e "$PREFIX/$f" ] || die "$PREFIX/$f was not built"
done
echo "win-deps: $PREFIX/{include,lib} ready"

if [ -n "${WIN_DEPS_EXPORT:-}" ]; then
  mkdir -p "$WIN_DEPS_EXPORT"
  rm -rf "$WIN_DEPS_EXPORT/include" "$WIN_DEPS_EXPORT/lib"
  cp -r "$PREFIX/include" "$PREFIX/lib" "$WIN_DEPS_EXPORT/"
  echo "win-deps: copied to $WIN_DEPS_EXPORT"
fi

#!/bin/sh
# win-build-e.sh: builds and runs tests/native/win_transport.exe, the
# Windows check of both sides of the transport seam, with mingw against
# /work/win-deps (scripts/win-deps.sh, branch wt-d) and runs it under
# wine64.  A stopgap until `make windows` / `make test-windows` (the
# Makefile's Windows fragment) build libclient and the daemon whole.
# proto/sockpath.c still calls getuid(): until it is ported, the check
# compiles it with getuid() as 0 (the check names its pipe itself).
set -eu
DEPS=${WIN_DEPS:-/work/win-deps}
OUT=${OUT:-build/win-e}
CC=${WIN_CC:-x86_64-w64-mingw32-gcc}
mkdir -p "$OUT"
CFLAGS="-std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -I. -Ilibclient/include -I$DEPS/include"
$CC $CFLAGS -D'getuid()=0u' -c proto/sockpath.c -o "$OUT/sockpath.o"
$CC $CFLAGS -o "$OUT/win_transport.exe" tests/native/win_transport.c \
  libclient/src/transport_win.c daemon/transport_win.c proto/frame.c \
  "$OUT/sockpath.o" -L"$DEPS/lib" -luv -lmsgpackc -lws2_32 -liphlpapi \
  -luserenv -lpsapi -ldbghelp -lole32 -luuid -ladvapi32 -lshell32 -lwinpthread -static
[ "${1:-}" = "--build-only" ] && exit 0
rm -f "$OUT/out.txt"
WINEDEBUG=-all timeout 120 "${WINE:-wine}" "$OUT/win_transport.exe" \
  "\\\\.\\pipe\\traced-e-check-$$" "$OUT/out.txt"
grep -qx traced "$OUT/out.txt" || { echo "FAIL: output file not written"; exit 1; }
echo "ok: output written through the duplicated handle"

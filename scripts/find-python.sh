#!/bin/sh
# find-python.sh 3.N: prints the path of a CPython 3.N interpreter found on
# this machine -- python3.N on PATH, else pyenv's newest 3.N.x (not a
# free-threaded "t" build) -- or exits 1 printing nothing.  Used by `make
# test-pythons` and `make bench BENCH_PYTHON=3.N`.
v="$1"
root="$(pyenv root 2>/dev/null)"
for c in "$(command -v "python$v" 2>/dev/null)" \
         $(ls -d "$root"/versions/"$v".*/bin/python3 2>/dev/null | sort -V -r); do
  case "$c" in *t/bin/python3) continue ;; esac
  if [ -n "$c" ] && "$c" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$v'" \
       2>/dev/null; then
    echo "$c"
    exit 0
  fi
done
exit 1

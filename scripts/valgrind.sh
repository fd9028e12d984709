#!/usr/bin/env bash
# `make valgrind`: the supervisor and reliability tests once with `warren` under valgrind
# memcheck (a build without sanitizers: valgrind and ASan do not mix).
# Every warren process of every case runs as
#   valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
# and a case fails if valgrind found an error (the wrapper's log is printed).
# Usage: scripts/valgrind.sh [BUILDDIR]
set -uo pipefail
build=${1:-build-vg}
src=$(cd "$(dirname "$0")/.." && pwd)
command -v valgrind >/dev/null || { echo "no valgrind: skipped"; exit 77; }
[ -f "$build/build.ninja" ] || meson setup "$build" "$src" --buildtype=debug -Db_sanitize=none >/dev/null
ninja -C "$build" >/dev/null || exit 1
logs=$(mktemp -d)
wrap="$logs/warren"
cat >"$wrap" <<EOS
#!/bin/sh
exec valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
  --log-file="$logs/vg.%p" "$(cd "$build" && pwd)/src/supervisor/warren" "\$@"
EOS
chmod +x "$wrap"
list() { awk "/foreach case : \\['$1'/ {f = 1} f {print} f && /\\]/ {exit}" \
           "$src/tests/meson.build" | grep -o "'[a-z_]*'" | tr -d "'"; }
cases="$(list cli | sed 's/^/supervisor:/') $(list chaos | sed 's/^/reliability:/')"
fail=0
for sc in $cases; do
  script=${sc%%:*} c=${sc#*:}
  out=$(WARREN_TEST_WAIT=180 python3 "$src/tests/test_$script.py" "$wrap" "$build/tests/workers/warren-test-worker" \
        "$c" 2>&1)
  rc=$?
  errs=$(cat "$logs"/vg.* 2>/dev/null | grep -c 'ERROR SUMMARY: [1-9]\|definitely lost: [1-9]')
  if [ $rc -eq 0 ]; then r=ok; elif [ $rc -eq 77 ]; then r=skipped; else r="FAIL ($rc)"; fail=1; fi
  [ "$errs" -eq 0 ] || { r="$r, valgrind errors"; fail=1; cat "$logs"/vg.*; }
  echo "valgrind ${script}_$c: $r"
  [ "$r" = ok ] || [ "$r" = skipped ] || echo "$out" | tail -20
  rm -f "$logs"/vg.*
done
rm -rf "$logs"
exit $fail

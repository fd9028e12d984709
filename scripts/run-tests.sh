#!/usr/bin/env bash
# Run the whole suite and end with one line "N passed, N failed, N skipped"
# (a skipped test exits 77).
#   1. every test of the meson build dir BUILD (ASan+UBSan in `make test`);
#   2. the lib tests under ThreadSanitizer (scripts/tsan.sh, BUILD/tsan);
#   3. the supervisor and reliability tests with `warren` under valgrind
#      memcheck (scripts/valgrind.sh, BUILD/vg).
# Given test names (scripts/run-tests.sh BUILD NAME...), only those of 1 run.
# Usage: scripts/run-tests.sh [BUILD] [meson test options and names]
set -uo pipefail
build=${1:-build-test}; shift || true
src=$(cd "$(dirname "$0")/.." && pwd)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
meson test -C "$build" --print-errorlogs "$@"
rc=$?
logs=("$build/meson-logs/testlog.json")
vglog=/dev/null
if [ $# -eq 0 ]; then
  echo "== the lib tests under ThreadSanitizer"
  ASAN_OPTIONS= UBSAN_OPTIONS= "$src/scripts/tsan.sh" "$build/tsan" || rc=1
  logs+=("$build/tsan/meson-logs/testlog.json")
  echo "== the supervisor tests with warren under valgrind memcheck"
  vglog="$build/valgrind.log"
  ASAN_OPTIONS= UBSAN_OPTIONS= "$src/scripts/valgrind.sh" "$build/vg" 2>&1 | tee "$vglog"
  st=${PIPESTATUS[0]}
  [ "$st" -eq 0 ] || [ "$st" -eq 77 ] || rc=1
fi
python3 - "$vglog" "${logs[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for path in sys.argv[2:]:
    try:
        for line in open(path):
            r = json.loads(line).get("result", "")
            if r in ("OK", "EXPECTEDFAIL"): passed += 1
            elif r == "SKIP": skipped += 1
            else: failed += 1
    except FileNotFoundError:
        print("no test log at " + path)
        failed += 1
for line in open(sys.argv[1]):  # "valgrind CASE: ok" or "... FAIL ..." lines
    if line.startswith("valgrind ") and ": " in line:
        r = line.split(": ", 1)[1].strip()
        if r == "ok": passed += 1
        elif r.startswith("skipped"): skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $rc

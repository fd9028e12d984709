#!/usr/bin/env bash
# The lib tests under ThreadSanitizer (a build of its own: TSan and ASan do
# not mix). Their threads race within a process; their processes share the
# arena, which TSan cannot see, so what it checks is each process's threads.
# Usage: scripts/tsan.sh [BUILDDIR]   (`make tsan`; `make test` runs it too)
set -uo pipefail
build=${1:-build-tsan}
src=$(cd "$(dirname "$0")/.." && pwd)
tests=(arena backend deadlock heap heap_crash map mutex mvar sem chan chan_crash hostile)
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$src" --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false \
    -Dc_args=-Wno-tsan >/dev/null || exit 1
fi
ninja -C "$build" >/dev/null || { ninja -C "$build" | tail -30; exit 1; }
TSAN_OPTIONS="halt_on_error=1 suppressions=$src/tests/tsan.supp" \
  meson test -C "$build" --print-errorlogs "${tests[@]}"

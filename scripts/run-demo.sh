#!/usr/bin/env bash
# The README's first command ends here. Until the supervisor lands, the demo
# is the heap benchmark in its quick form: it exercises the arena, the heap,
# cross-process frees and crash reclaim on real processes.
set -euo pipefail
build=${1:-build}
exec "$build/bench/bench_heap" --quick

#!/usr/bin/env bash
# Every benchmark, each printing its own same-run baselines and ratios.
set -euo pipefail
build=${1:-build}
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done

#!/usr/bin/env bash
# Every benchmark, each printing its own same-run baselines and ratios.
set -euo pipefail
build=${1:-build}
for b in "$build"/bench/bench_*; do
  # meson puts bench_X.p object directories beside the binaries: skip them.
  [ -f "$b" ] && [ -x "$b" ] || continue
  echo "== $(basename "$b")"
  "$b"
done
if [ -x "$build/bindings/python/warren-python" ]; then
  echo "== bench_python.py"
  "$build/bindings/python/warren-python" bench/bench_python.py
fi

#!/usr/bin/env bash
# Build the libFuzzer harnesses (tests/fuzz/) with clang and run each for a
# bounded time. Usage: [FUZZ_SEED=N] scripts/fuzz.sh SECONDS [OUTDIR]
#   Each harness first runs the committed corpus (every crash found so far,
#   kept fixed), then explores for SECONDS (0: replay only). With FUZZ_SEED
#   set (the test "fuzz" in tests/meson.build, so in CI) it tries a fixed
#   number of inputs from that seed instead, the same ones on every run, so
#   that CI cannot fail on a new finding that a local run did not see first;
#   `make fuzz` explores for FUZZ_SECONDS from a random seed. Exit 77
#   (skipped) if clang or its fuzzer runtime is absent.
# Crashes are written to OUTDIR/crash-*; turn each into a corpus entry
# (tests/fuzz/corpus/NAME/) once fixed.
set -uo pipefail
secs=${1:-30}
out=${2:-build-fuzz}
src=$(cd "$(dirname "$0")/.." && pwd)
cc=${CLANG:-clang}
command -v "$cc" >/dev/null || { echo "no clang: skipped"; exit 77; }
mkdir -p "$out"
out=$(cd "$out" && pwd)  # the harnesses run in $out: every path below is absolute
probe='int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }'
if ! echo "$probe" | "$cc" -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
  echo "clang has no libFuzzer runtime (libclang-rt-14-dev): skipped"
  exit 77
fi
rm -f "$out/probe"
flags=(-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined
       -fno-sanitize-recover=undefined -I"$src/lib/include" -I"$src/lib" -I"$src/src/supervisor")
libsrc=()
for f in "$src"/lib/*.c; do libsrc+=("$f"); done
$cc "${flags[@]}" "$src/tests/fuzz/fuzz_config.c" "$src/src/supervisor/config.c" \
  $(pkg-config --cflags --libs libcjson) -lm -o "$out/fuzz_config" || exit 1
# A scribbled lock costs the supervisor WR__LOCK_PATIENCE_NS: 1 ms here.
$cc "${flags[@]}" -DWR__LOCK_PATIENCE_NS=1000000ll "$src/tests/fuzz/fuzz_arena.c" \
  "${libsrc[@]}" -lpthread -o "$out/fuzz_arena" || exit 1
# inputs tried per harness with FUZZ_SEED (tests/meson.build): ~40 s each here
declare -A ci_runs=([config]=400000 [arena]=20000)
rc=0
for h in config arena; do
  corpus="$out/corpus-$h"
  mkdir -p "$corpus"
  seeds=("$src/tests/fuzz/corpus/$h")
  [ "$h" = config ] && seeds+=("$src/tests/configs" "$src/tests/configs/bad")
  dirs=()
  for d in "${seeds[@]}"; do [ -d "$d" ] && dirs+=("$d"); done
  log="$out/fuzz_$h.log"
  # SECONDS 0 replays the committed corpus once (deterministic: what `make
  # test` runs, so that a regression fails CI and a new finding does not
  # make CI flaky); otherwise explore for that long.
  if [ "$secs" = 0 ]; then
    mode=(-runs=0)
  elif [ -n "${FUZZ_SEED:-}" ]; then
    # The same inputs on every run: a fixed seed, a fixed number of inputs
    # from a fresh corpus (SECONDS only caps a slow machine's run).
    rm -rf "$corpus" && mkdir -p "$corpus"
    mode=(-seed="$FUZZ_SEED" -runs="${ci_runs[$h]}" -max_total_time="$secs" "$corpus")
  else
    mode=(-max_total_time="$secs" "$corpus")
  fi
  ( cd "$out" && ./fuzz_"$h" "${mode[@]}" -timeout=10 -rss_limit_mb=1024 \
      -max_len=4096 -print_final_stats=1 -artifact_prefix="$out/$h-" \
      "${dirs[@]}" ) >"$log" 2>&1
  r=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
  echo "fuzz_$h: exit $r, ${execs:-?} execs (at most ${secs}s), corpus $(ls "$corpus" | wc -l) entries," \
       "crashes $(ls "$out" | grep -c "^$h-\(crash\|timeout\|leak\|oom\)-")"
  if [ $r -ne 0 ]; then
    tail -40 "$log"
    rc=1
  fi
done
exit $rc

#!/usr/bin/env bash
# The README's first command (`make run`) ends here: the word-frequency demo
# (configs/demo.json) over the licence texts every Debian machine has. It
# prints the top words and the heap and channel statistics at the end; the
# routine lines (debug, start, ready, clean exits, empty reclaims) are left
# out. The heap benchmark is `make bench`.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
"$build/src/supervisor/warren" run configs/demo.json |
  grep -Ev ' debug | worker\.(start|ready) |worker\.exit .* code=0$| heap\.reclaim .* blocks=0 '

#!/usr/bin/env bash
# The README's first command (`make run`) ends here: the word-frequency demo
# (configs/demo.json) over the licence texts every Debian machine has. It
# prints the top words and the channel and heap statistics at the end; the
# supervisor's debug lines (state changes) are left out. The heap benchmark
# is `make bench`.
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
"$build/src/supervisor/warren" run configs/demo.json | grep -v ' debug '

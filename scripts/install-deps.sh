#!/usr/bin/env bash
# Install, with apt, the Debian packages warren needs that are missing.
# Non-interactive; does nothing (and needs no root) when all are present.
set -euo pipefail
# curl and tmux: the metrics and top tests (they skip without them);
# python3-dev: the Python binding's C extension
pkgs=(meson ninja-build pkg-config gcc libuv1-dev libcjson-dev libcmocka-dev python3 python3-dev
      curl tmux)
# `scripts/install-deps.sh test` (make test): clang with its libFuzzer runtime
# (the fuzz harnesses) and valgrind too.
[ "${1:-}" = test ] && pkgs+=(clang libclang-rt-14-dev valgrind)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing missing packages: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

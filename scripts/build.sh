#!/usr/bin/env bash
# Configures and builds one flavour of diffkd: `release` (default; -O3 -march=native) or
# `sanitize` (ASan + UBSan at -O1, no benchmarks). Output in build/<flavour>.
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release)  flags=(-DCMAKE_BUILD_TYPE=Release) ;;
  sanitize) flags=(-DCMAKE_BUILD_TYPE=Debug -DDIFFKD_SANITIZE=ON -DDIFFKD_BUILD_BENCH=OFF) ;;
  *) echo "build.sh: unknown flavour '$flavour' (expected release or sanitize)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$flavour" -G Ninja "${flags[@]}" > "build-$flavour.log" 2>&1 || { cat "build-$flavour.log"; exit 1; }
rm -f "build-$flavour.log"
cmake --build "build/$flavour" -j 2

#!/usr/bin/env bash
# Configures and builds one flavour of diffkd into build/<folder>:
#   release   -O3 -march=native, with the tests and benchmarks (build/release)
#   main      the same library and `diffkd`, without tests or benchmarks (build/release; what the
#             main job needs: GoogleTest and Google Benchmark need not be installed)
#   sanitize  ASan + UBSan at -O1 with clang, with the tests and the libFuzzer targets
#             (tests/fuzz/), no benchmarks (build/sanitize)
# The test and benchmark switches are passed every time, so a `main` build followed by a
# `release` one builds the tests instead of keeping the cached "off".
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-release}
case "$flavour" in
  release)  folder=release; flags=(-DCMAKE_BUILD_TYPE=Release -DDIFFKD_BUILD_TESTS=ON -DDIFFKD_BUILD_BENCH=ON) ;;
  main)     folder=release; flags=(-DCMAKE_BUILD_TYPE=Release -DDIFFKD_BUILD_TESTS=OFF -DDIFFKD_BUILD_BENCH=OFF) ;;
  sanitize) folder=sanitize; flags=(-DCMAKE_BUILD_TYPE=Debug -DDIFFKD_SANITIZE=ON -DDIFFKD_BUILD_TESTS=ON -DDIFFKD_BUILD_BENCH=OFF
                                   -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14) ;;
  *) echo "build.sh: unknown flavour '$flavour' (expected release, main or sanitize)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$folder" -G Ninja "${flags[@]}" > "build-$flavour.log" 2>&1 || { cat "build-$flavour.log"; exit 1; }
rm -f "build-$flavour.log"
cmake --build "build/$folder" -j "${DIFFKD_BUILD_JOBS:-2}"  # 2: this project's machines

#!/usr/bin/env bash
# Sets up the machine, then builds and runs every test twice: a Release build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --tests  # also GoogleTest, Google Benchmark, PyTorch (goldens, comparisons)
# ctest runs two test processes at once on 2 cores, each with OpenMP threads: blocking instead of
# spinning at barriers keeps the oversubscribed threads from burning each other's time slices.
export OMP_WAIT_POLICY=passive
for flavour in release sanitize; do
  echo "== $flavour build =="
  bash scripts/build.sh "$flavour"
  echo "== $flavour tests =="
  ctest --test-dir "build/$flavour" --output-on-failure -j 2
done

#!/usr/bin/env bash
# Sets up the machine, then builds and runs every test twice: a Release build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
for flavour in release sanitize; do
  echo "== $flavour build =="
  bash scripts/build.sh "$flavour"
  echo "== $flavour tests =="
  ctest --test-dir "build/$flavour" --output-on-failure -j 2
done

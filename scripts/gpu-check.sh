#!/usr/bin/env bash
# The GPU check on a machine that has both a GPU and our build dependencies (scripts/setup.sh):
# builds the Release flavour with the CUDA backend on every core, then runs scripts/gpu-run.sh on
# it (gate, GPU tests one process each, benchmarks against PyTorch, one summary).
#
#   bash scripts/gpu-check.sh [RESULTS]     # default gpu-results/; RESULTS/summary.md
#
# A machine without our dependencies (the lent device machine) takes the bundle instead:
# scripts/gpu-bundle.sh here, then run.sh there (bench/cuda/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DIFFKD_BUILD_JOBS=$(nproc) bash scripts/build.sh release
grep -q '^DIFFKD_CUDA:BOOL=ON' build/release/CMakeCache.txt ||
  { echo "gpu-check: build/release has no CUDA backend (nvcc not found at configure time)" >&2; exit 1; }
exec bash scripts/gpu-run.sh --bin build/release --out "${1:-gpu-results}"

#!/usr/bin/env bash
# Sets up the machine, builds diffkd (Release) and runs the main job on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh          # build and main-job packages only (no PyTorch, no test libraries)
bash scripts/build.sh main
./build/release/diffkd report   # samples and scores models/mnist-teacher.safetensors; writes report/

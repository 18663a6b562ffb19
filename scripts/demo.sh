#!/usr/bin/env bash
# Sets up the machine, builds diffkd (Release) and runs the main job on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh release
./build/release/diffkd report   # samples and scores models/mnist-teacher.safetensors; writes report/

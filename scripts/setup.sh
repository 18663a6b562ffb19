#!/usr/bin/env bash
# Installs every system package diffkd's build, tests and benchmarks use, on Debian 12.
# Idempotent and fast when everything is present: apt is only called for what is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev            # CPU kernels (GEMM fallback, small dense maths)
  libopenblas0-openmp      # optimised GEMM (loaded at run time), OpenMP build: no oversubscription
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev
  python3-torch python3-numpy   # reference goldens and comparison benchmarks only
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

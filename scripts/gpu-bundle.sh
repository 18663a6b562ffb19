#!/usr/bin/env bash
# Builds a folder that runs the GPU check on a machine with an NVIDIA GPU but none of our build
# dependencies (the device machine: driver, CUDA runtime and PyTorch with its cuDNN/cuBLAS wheels):
#
#   bash scripts/gpu-bundle.sh [FOLDER]        # default build/gpu-bundle
#   FOLDER/run.sh --out RESULTS                # there: gate, GPU tests, benchmarks, one summary
#
# The binaries (diffkd, diffkd_tests, diffkd_cuda_bench) are a relocatable Release build
# (-DDIFFKD_RELOCATABLE=ON: no source path compiled in, test inputs found beside them) for
# x86-64-v3 (AVX2 + FMA; -march=native here would emit AVX-512 the GPU host may lack), without MPI.
# Beside them: the test inputs, the PyTorch comparison script and what it reads, and the shared
# libraries that are neither the C/C++ runtime nor the NVIDIA driver nor cuDNN (cuDNN's engines
# are ~1 GB; run.sh finds the host's, from PyTorch's wheel or the toolkit). Checks before it ends:
# no AVX-512 instruction, no source path, and the folder under 45 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bundle=${1:-build/gpu-bundle}
build=build/bundle
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$nvcc" ] || { echo "gpu-bundle: nvcc not found (the bundle needs the CUDA backend)" >&2; exit 1; }

echo "== configure $build (Release, x86-64-v3, relocatable, CUDA, no MPI) =="
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDIFFKD_MARCH=x86-64-v3 -DDIFFKD_RELOCATABLE=ON \
  -DDIFFKD_CUDA=ON -DDIFFKD_MPI=OFF -DDIFFKD_BUILD_TESTS=ON -DDIFFKD_BUILD_BENCH=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" > "$build.log" 2>&1 || { cat "$build.log"; exit 1; }
grep -q "CUDA backend ON" "$build.log" || { cat "$build.log"; echo "gpu-bundle: the CUDA backend is off" >&2; exit 1; }
rm -f "$build.log"
echo "== build =="
cmake --build "$build" -j 2 --target diffkd_cli diffkd_tests diffkd_cuda_bench

echo "== assemble $bundle =="
rm -rf "$bundle"
mkdir -p "$bundle/lib" "$bundle/tests/fuzz" "$bundle/bench/cuda" "$bundle/tests/golden" "$bundle/configs"
for binary in diffkd diffkd_tests diffkd_cuda_bench; do
  strip --strip-unneeded -o "$bundle/$binary" "$build/$binary"
done
cp -r tests/golden/data "$bundle/tests/golden/"
cp -r tests/configs "$bundle/tests/"
cp -r tests/fuzz/corpus tests/fuzz/regressions "$bundle/tests/fuzz/"
cp bench/cuda/compare_train_step_torch.py "$bundle/bench/cuda/"
cp tests/golden/make_unet_goldens.py "$bundle/tests/golden/"
cp configs/*.json "$bundle/configs/"
cp scripts/gpu-run.sh "$bundle/run.sh"

# Shared libraries: everything ldd resolves except the C/C++ runtime (every Linux has it, and an
# older copy would shadow the host's newer one), the driver, and cuDNN.
system='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libstdc\+\+|libgcc_s|libcuda|libcudnn)[.-]'
for binary in diffkd diffkd_tests diffkd_cuda_bench; do
  ldd "$build/$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  if [[ ! $name =~ $system ]]; then
    cp -L "$path" "$bundle/lib/$name"
    echo "  lib/$name (from $path)"
  fi
done

echo "== check =="
for binary in diffkd diffkd_tests diffkd_cuda_bench; do
  # AVX-512 would show as zmm or mask registers in the disassembly.
  if objdump -d --no-show-raw-insn "$bundle/$binary" | grep -q -E '%zmm|%k[1-7]'; then
    echo "gpu-bundle: $binary holds AVX-512 instructions (expected x86-64-v3 only)" >&2; exit 1
  fi
  if grep -q -a -F "$root/" "$bundle/$binary"; then
    echo "gpu-bundle: $binary names the source folder $root (expected a relocatable build)" >&2; exit 1
  fi
done
glibc=$(for f in "$bundle"/diffkd* "$bundle"/lib/*; do objdump -T "$f"; done 2>/dev/null |
        grep -o 'GLIBC_[0-9.]*' | sort -u -V | tail -n 1)
size_mb=$(du -sm "$bundle" | cut -f1)
[ "$size_mb" -lt 45 ] || { echo "gpu-bundle: $bundle is $size_mb MB (expected under 45)" >&2; exit 1; }
echo "gpu-bundle: $bundle is $size_mb MB, needs $glibc or newer; run $bundle/run.sh --out RESULTS on the GPU machine"

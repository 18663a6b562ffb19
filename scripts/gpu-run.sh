#!/usr/bin/env bash
# One GPU check, in stages, into one summary: the bundle's run.sh (scripts/gpu-bundle.sh copies this
# script there) and the last step of scripts/gpu-check.sh.
#
#   run.sh [--bin DIR] [--out DIR] [--no-cpu-tests]
#
#   --bin DIR  the folder holding diffkd, diffkd_tests and diffkd_cuda_bench (default: this
#              script's folder, as in the bundle)
#   --out DIR  where summary.md, the logs and the benchmark JSON go (default: ./gpu-results)
#
# Stages, each under its own time limit so that the whole run fits 8 minutes on one H100:
#   1. gate: the NVIDIA libraries are found and one host-device copy round trip is exact; a
#      failure stops the run at once (the rest would only repeat it);
#   2. the GPU tests, one process each (CUDA_LAUNCH_BLOCKING=1, DIFFKD_REQUIRE_GPU=1: a skip is a
#      failure), four at a time;
#   3. the GPU benchmarks (TF32 off, then on) and the training step against PyTorch;
#   4. the CPU test suite of these binaries (a bundle's are built for x86-64-v3: AVX2 kernels).
# Exits non-zero when the gate or any test failed; the summary says which and why.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$here out=$PWD/gpu-results cpu_tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$(cd "$2" && pwd) || exit 2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-cpu-tests) cpu_tests=0; shift ;;
    *) echo "gpu-run: unknown argument '$1' (expected --bin DIR, --out DIR, --no-cpu-tests)" >&2; exit 2 ;;
  esac
done
for binary in diffkd diffkd_tests diffkd_cuda_bench; do
  [ -x "$bin/$binary" ] || { echo "gpu-run: $bin/$binary not found (expected the bundle or a CUDA build's folder)" >&2; exit 2; }
done
mkdir -p "$out/tests" && out=$(cd "$out" && pwd)
summary=$out/summary.md
started=$(date +%s)
status=0
note() { echo "$*" | tee -a "$summary"; }
elapsed() { echo "$(( $(date +%s) - started )) s"; }

# The NVIDIA libraries: the bundle's own folder (cudart), then PyTorch's wheels (cuDNN, cuBLAS, NCCL
# as nvidia/<name>/lib or nvidia/cu13/lib), then the toolkit's. Only our binaries get this path
# (`ours`): PyTorch's own process keeps the libraries it was built with.
wheel_dirs=$(python3 - 2>/dev/null <<'EOF'
import glob, os
try:
    import nvidia
    roots = list(nvidia.__path__)
except Exception:
    roots = []
print(":".join(sorted(d for r in roots for d in glob.glob(os.path.join(r, "*", "lib")) if os.path.isdir(d))))
EOF
)
library_path=$bin/lib
[ -n "$wheel_dirs" ] && library_path=$library_path:$wheel_dirs
for toolkit in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
  [ -d "$toolkit" ] && library_path=$library_path:$toolkit
done
export DIFFKD_LIBRARY_PATH=$library_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
ours() { LD_LIBRARY_PATH=$DIFFKD_LIBRARY_PATH "$@"; }
export -f ours
export DIFFKD_REQUIRE_GPU=${DIFFKD_REQUIRE_GPU:-1}
# The benchmark as PyTorch's comparison script starts it: through a wrapper that sets the path.
bench_wrapper=$out/diffkd_cuda_bench
printf '#!/usr/bin/env bash\nLD_LIBRARY_PATH="%s" exec "%s" "$@"\n' "$DIFFKD_LIBRARY_PATH" "$bin/diffkd_cuda_bench" > "$bench_wrapper"
chmod +x "$bench_wrapper"

: > "$summary"
note "# diffkd GPU check"
note ""
note "- when: $(date -u '+%Y-%m-%d %H:%M UTC'), host $(hostname), binaries in $bin"
note "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -n 2 | tr '\n' ';')"
note "- diffkd: $(ours "$bin/diffkd" --version 2>&1 | head -n 1)"
for library in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libnccl.so.2; do
  found=missing
  IFS=: read -ra folders <<< "$DIFFKD_LIBRARY_PATH"
  for folder in "${folders[@]}"; do
    [ -e "$folder/$library" ] && { found=$folder/$library; break; }
  done
  note "- $library: $found"
done
note ""

# 1. The gate.
note "## 1. Gate"
gate_log=$out/gate.log
if CUDA_LAUNCH_BLOCKING=1 ours timeout 180 "$bin/diffkd_tests" \
     --gtest_filter='CudaSupport.RunTimeLibrariesLoad:Cuda.CopiesRoundTripExactlyInEveryLayout' > "$gate_log" 2>&1; then
  note "passed: the libraries load and a copy round trip is exact ($(elapsed))"
else
  note "FAILED: the GPU is not usable by these binaries; stopping here. The gate's log ends:"
  note '```'
  tail -n 25 "$gate_log" | tee -a "$summary"
  note '```'
  exit 1
fi
note ""

# 2. The GPU tests, one process each.
note "## 2. GPU tests (one process each, CUDA_LAUNCH_BLOCKING=1, DIFFKD_REQUIRE_GPU=$DIFFKD_REQUIRE_GPU)"
gpu_filter='Cuda*:*.Cuda*:ModuleDevice.*:NcclCommunicator.*:MpiNccl.*'
ours "$bin/diffkd_tests" --gtest_list_tests --gtest_filter="$gpu_filter" |
  awk '/^[^ ]/ {suite = $1} /^  / {print suite $1}' > "$out/tests/list.txt"
run_one() {  # one test in its own process; its outcome as one line "name outcome seconds"
  local name=$1 bin=$2 dir=$3 begin=$(date +%s) outcome
  CUDA_LAUNCH_BLOCKING=1 ours timeout 240 "$bin/diffkd_tests" --gtest_filter="$name" > "$dir/$name.log" 2>&1
  case $? in
    0) grep -q '^\[  SKIPPED \]' "$dir/$name.log" && outcome=skipped || outcome=passed ;;
    124) outcome=timeout ;;
    1) outcome=failed ;;
    *) outcome=crashed ;;
  esac
  echo "$name $outcome $(( $(date +%s) - begin ))"
}
export -f run_one
xargs -P 4 -I{} bash -c 'run_one "$@"' _ {} "$bin" "$out/tests" < "$out/tests/list.txt" > "$out/tests/outcomes.txt"
for outcome in passed failed crashed timeout skipped; do
  note "- $outcome: $(grep -c " $outcome " "$out/tests/outcomes.txt")"
done
note "- of $(wc -l < "$out/tests/list.txt") tests, $(elapsed) into the run"
if grep -q -v " passed " "$out/tests/outcomes.txt"; then
  status=1
  grep -v " passed " "$out/tests/outcomes.txt" | while read -r name outcome seconds; do
    note ""
    note "### $name: $outcome after $seconds s"
    note '```'
    grep -v '^\[\(==========\|----------\|       OK\| RUN\)' "$out/tests/$name.log" | tail -n 15 | tee -a "$summary"
    note '```'
  done
fi
note ""

# 3. The benchmarks.
note "## 3. Benchmarks"
for tf32 in 0 1; do
  filter=.; [ "$tf32" = 1 ] && filter='Gemm|Conv|TrainStep'
  DIFFKD_ALLOW_TF32=$tf32 ours timeout 150 "$bin/diffkd_cuda_bench" --benchmark_filter="$filter" \
    --benchmark_out="$out/bench-tf32-$tf32.json" --benchmark_out_format=json > "$out/bench-tf32-$tf32.log" 2>&1 ||
    note "- diffkd_cuda_bench with TF32 $tf32 stopped early (exit $?; see bench-tf32-$tf32.log)"
done
python3 - "$out" >> "$summary" <<'EOF'
import json, os, sys
out = sys.argv[1]
for tf32 in ("0", "1"):
    path = os.path.join(out, f"bench-tf32-{tf32}.json")
    if not os.path.exists(path):
        continue
    with open(path) as f:
        report = json.load(f)
    context = report.get("context", {})
    print(f"\nTF32 {'on' if tf32 == '1' else 'off'}; {context.get('gpu', '')} {context.get('gpu_peaks', '')}\n")
    print("| case | ms | TFLOP/s | % FP32 peak | GB/s | % bandwidth peak | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for b in report.get("benchmarks", []):
        if b.get("run_type") != "iteration":
            continue
        cell = lambda key, fmt: fmt.format(b[key]) if key in b else ""
        ms = b.get("real_time", 0) * {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}.get(b.get("time_unit", "ns"), 1)
        note = b.get("error_message", b.get("label", ""))
        print(f"| {b['name']} | {ms:.3f} | {cell('TFLOP/s', '{:.1f}')} | {cell('%fp32_peak', '{:.0f}')} | "
              f"{cell('GB/s', '{:.0f}')} | {cell('%bw_peak', '{:.0f}')} | {note} |")
EOF
note ""
note "Training step against PyTorch (medians of 2 rounds):"
note ""
compare=$bin/bench/cuda/compare_train_step_torch.py  # the bundle's copy, else the source tree's
[ -f "$compare" ] || compare=$here/../bench/cuda/compare_train_step_torch.py
timeout 240 python3 "$compare" --bench "$bench_wrapper" --rounds 2 \
  --min-time 2 --markdown 2> "$out/compare.log" | tee -a "$summary" ||
  note "(the comparison stopped: $(tail -n 1 "$out/compare.log"))"
note ""
note "($(elapsed) into the run)"
note ""

# 4. The CPU suite of these binaries, in 8 shards of 2 threads.
if [ "$cpu_tests" = 1 ]; then
  note "## 4. CPU tests of these binaries"
  for shard in 0 1 2 3 4 5 6 7; do
    GTEST_TOTAL_SHARDS=8 GTEST_SHARD_INDEX=$shard OMP_NUM_THREADS=2 DIFFKD_REQUIRE_GPU=0 ours timeout 240 \
      "$bin/diffkd_tests" --gtest_filter="-$gpu_filter" > "$out/cpu-shard-$shard.log" 2>&1 &
  done
  wait
  failed=$(cat "$out"/cpu-shard-*.log | grep -c '^\[  FAILED  \] [A-Za-z]')
  passed=$(cat "$out"/cpu-shard-*.log | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{n += $1} END {print n + 0}')
  unfinished=$(grep -L '^\[==========\] .* ran' "$out"/cpu-shard-*.log | wc -l)
  note "- passed: ${passed:-0}; failed: $failed; shards that did not finish: $unfinished ($(elapsed) into the run)"
  if [ "$failed" -gt 0 ] || [ "$unfinished" -gt 0 ]; then
    status=1
    cat "$out"/cpu-shard-*.log | grep '^\[  FAILED  \] [A-Za-z]' | sort -u | tee -a "$summary"
  fi
fi
note ""
note "done in $(elapsed); $([ $status = 0 ] && echo 'all passed' || echo 'FAILURES above')"
exit $status

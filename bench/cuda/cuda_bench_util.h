#pragma once
// Shared by the GPU microbenchmarks: every case verifies its result against the CPU backend on
// the same inputs before it times anything, times with CUDA events (Google Benchmark's manual
// time), and reports its rate against the GPU's peak (tensor/cuda_support.h). Without a usable
// GPU every case skips with the reason.
//
// Shapes: the ddpm-cifar10 UNet (the papers' 35.7M teacher) at training batch 128: 128 channels at
// 32x32, 256 at 16x16 (attention, 1 head), 8x8 and 4x4.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tensor/creation.h"
#include "tensor/cuda_support.h"

namespace diffkd::bench {

struct UnetLevel {
  int64_t channels, size;
};
inline constexpr UnetLevel kCifarLevels[] = {{128, 32}, {256, 16}, {256, 8}, {256, 4}};
inline constexpr int64_t kCifarBatch = 128;

// False (and the case skipped, saying why) when there is no usable GPU.
inline bool have_gpu(benchmark::State& state) {
  if (cuda_device_count() > 0) return true;
  state.SkipWithError(("no CUDA device: " + cuda_unavailable_reason()).c_str());
  return false;
}

inline Tensor on_gpu(const Tensor& t) { return to_device(t, cuda_device()); }

// Largest |a - b| over max(floor, largest |b|): the GPU result against the CPU's.
inline double relative_error(const Tensor& gpu, const Tensor& cpu_reference, double floor = 1.0) {
  const std::vector<double> a = to_device(gpu, cpu()).to_vector(), b = cpu_reference.to_vector();
  double diff = 0, scale = floor;
  for (size_t i = 0; i < b.size(); ++i) {
    diff = std::max(diff, std::abs(a[i] - b[i]));
    scale = std::max(scale, std::abs(b[i]));
  }
  return a.size() == b.size() ? diff / scale : INFINITY;
}

// fp32 GEMMs and convolutions on tensor cores (DIFFKD_ALLOW_TF32=1) round inputs to 10 mantissa
// bits: their verification tolerance is looser.
inline bool tf32_allowed() {
  const char* v = std::getenv("DIFFKD_ALLOW_TF32");
  return v && std::string(v) == "1";
}
inline double matmul_tolerance() { return tf32_allowed() ? 5e-3 : 1e-4; }

// Skips the case (returns false) when the GPU disagrees with the CPU beyond `tolerance`.
inline bool verified(benchmark::State& state, const std::string& what, double error, double tolerance) {
  if (error <= tolerance) return true;
  state.SkipWithError((what + ": GPU differs from CPU by " + std::to_string(error) + " (tolerance " +
                       std::to_string(tolerance) + "); not timed").c_str());
  return false;
}

// Evicts the L2 cache (50 MB on an H100/H200) by writing a 256 MB buffer, asynchronously: each
// timed run then reads its inputs from memory, as a training step's larger tensors do, and the
// GPU is still busy with this fill while the host launches the timed work, so the host's launch
// overhead does not show up as an idle gap inside the events.
inline void flush_l2() {
  static const Tensor buffer = Tensor::empty({int64_t{64} << 20}, DType::F32, cuda_device());
  backend(cuda_device()).fill(buffer, 0.0);
}

// Times `work` once per iteration with CUDA events after an L2 flush, following `warmup` untimed
// runs (cuDNN's algorithm search and the caching allocator fill on the first).
template <typename Work>
void time_on_gpu(benchmark::State& state, Work&& work, int warmup = 2) {
  for (int i = 0; i < warmup; ++i) cuda_time_ms(work);
  for (auto _ : state) {
    flush_l2();
    state.SetIterationTime(cuda_time_ms(work) * 1e-3);
  }
}

// Achieved TFLOP/s and its share of the GPU's FP32 (CUDA-core) peak, in percent; with TF32 the
// share can pass 100, and the share of the dense TF32 tensor-core peak is reported too where it
// is known. (The device and its peaks head the output: bench/cuda/main.cpp.)
inline void report_flops(benchmark::State& state, double flops_per_iteration) {
  const CudaDeviceInfo& info = cuda_device_info();
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["%fp32_peak"] = benchmark::Counter(100 * flops_per_iteration * 1e-12 / info.fp32_tflops,
                                                     benchmark::Counter::kIsIterationInvariantRate);
  if (tf32_allowed() && info.tf32_tflops > 0)
    state.counters["%tf32_peak"] = benchmark::Counter(100 * flops_per_iteration * 1e-12 / info.tf32_tflops,
                                                       benchmark::Counter::kIsIterationInvariantRate);
}

// Achieved GB/s (the bytes that must move at least once) and its share of the memory's peak.
inline void report_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.counters["GB/s"] = benchmark::Counter(bytes_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["%bw_peak"] = benchmark::Counter(100 * bytes_per_iteration * 1e-9 / cuda_device_info().memory_gbps,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

inline std::string shape_label(int64_t n, int64_t c, int64_t s) {
  char label[64];  // (snprintf: GCC 12 warns falsely on "n" + std::to_string(n) at -O3)
  std::snprintf(label, sizeof label, "n%lld_c%lld_%lldx%lld", static_cast<long long>(n), static_cast<long long>(c),
                static_cast<long long>(s), static_cast<long long>(s));
  return label;
}

}  // namespace diffkd::bench

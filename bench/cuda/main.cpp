// The GPU microbenchmarks' entry point: Google Benchmark's, with the device and its peaks in the
// context header so that every rate below can be read against them.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>

#include "tensor/cuda_support.h"

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (diffkd::cuda_device_count() > 0) {
    const diffkd::CudaDeviceInfo info = diffkd::cuda_device_info();
    char tf32_peak[64] = "not known for this GPU";
    if (info.tf32_tflops > 0) std::snprintf(tf32_peak, sizeof tf32_peak, "%.0f TFLOP/s", info.tf32_tflops);
    char peaks[224];
    std::snprintf(peaks, sizeof peaks,
                  "%d SMs, sm_%d%d; FP32 peak %.1f TFLOP/s, dense TF32 tensor peak %s (both at the reported "
                  "clock), memory %.0f GB/s",
                  info.multiprocessors, info.compute_major, info.compute_minor, info.fp32_tflops, tf32_peak,
                  info.memory_gbps);
    benchmark::AddCustomContext("gpu", info.name);
    benchmark::AddCustomContext("gpu_peaks", peaks);
    const char* tf32 = std::getenv("DIFFKD_ALLOW_TF32");
    benchmark::AddCustomContext("tf32", tf32 && std::string(tf32) == "1" ? "on (DIFFKD_ALLOW_TF32=1)" : "off");
  } else {
    std::fprintf(stderr, "diffkd_cuda_bench: no CUDA device: %s (every case will skip)\n",
                 diffkd::cuda_unavailable_reason().c_str());
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

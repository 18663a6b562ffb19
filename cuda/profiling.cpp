// What the CUDA benchmarks measure with (tensor/cuda_support.h): event timing on the backend's
// stream, and the device's peak FP32 rate and memory bandwidth from its attributes.

#include <cuda_runtime.h>

#include "cuda/runtime.h"
#include "tensor/cuda_support.h"

namespace diffkd {

namespace {

// FP32 FMA units per SM (the CUDA programming guide's arithmetic-throughput table): 64 on
// sm_60, Volta/Turing and A100; 128 on sm_61/62, GA10x, Ada, Hopper and Blackwell.
int fp32_lanes_per_sm(int major, int minor) {
  if (major == 6) return minor == 0 ? 64 : 128;
  if (major == 7 || (major == 8 && minor == 0)) return 64;
  return 128;
}

// Dense TF32 tensor-core FLOPs per SM per clock, from NVIDIA's whitepapers' peak tables divided by
// SMs x boost clock: A100 (sm_80) 1024, GA10x and Ada 256, H100 (sm_90) 2048; 0 where not known.
int tf32_flops_per_sm_clock(int major, int minor) {
  if (major == 8) return minor == 0 ? 1024 : 256;
  if (major == 9) return 2048;
  return 0;
}

int attribute(cudaDeviceAttr what, int device) {
  int value = 0;
  DK_CUDA_CHECK(cudaDeviceGetAttribute(&value, what, device));
  return value;
}

}  // namespace

CudaDeviceInfo cuda_device_info(int device) {
  cuda::require_device("cuda_device_info");
  CudaDeviceInfo info;
  cudaDeviceProp props{};
  DK_CUDA_CHECK(cudaGetDeviceProperties(&props, device));
  info.name = props.name;
  info.compute_major = props.major;
  info.compute_minor = props.minor;
  info.multiprocessors = attribute(cudaDevAttrMultiProcessorCount, device);
  const double clock_hz = 1e3 * attribute(cudaDevAttrClockRate, device);  // the attribute is in kHz
  info.fp32_tflops = 2.0 * fp32_lanes_per_sm(info.compute_major, info.compute_minor) * info.multiprocessors * clock_hz * 1e-12;
  info.tf32_tflops = tf32_flops_per_sm_clock(info.compute_major, info.compute_minor) * info.multiprocessors * clock_hz * 1e-12;
  const double memory_hz = 1e3 * attribute(cudaDevAttrMemoryClockRate, device);
  info.memory_gbps = 2.0 * memory_hz * attribute(cudaDevAttrGlobalMemoryBusWidth, device) / 8 * 1e-9;
  return info;
}

double cuda_time_ms(const std::function<void()>& work) {
  cuda::require_device("cuda_time_ms");
  cudaEvent_t start = nullptr, stop = nullptr;
  DK_CUDA_CHECK(cudaEventCreate(&start));
  DK_CUDA_CHECK(cudaEventCreate(&stop));
  float ms = 0;
  try {
    DK_CUDA_CHECK(cudaEventRecord(start, cuda::stream()));
    work();
    DK_CUDA_CHECK(cudaEventRecord(stop, cuda::stream()));
    DK_CUDA_CHECK(cudaEventSynchronize(stop));
    DK_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  } catch (...) {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
    throw;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

}  // namespace diffkd

#pragma once
// The CUDA runtime as the rest of the backend sees it: whether a GPU is usable, the library
// handles of the current device (created once, on first use), and the stream every kernel runs on.
// Only files in cuda/ include this header.

#include <string>

#include "cuda/check.h"

namespace diffkd::cuda {

// Usable GPUs: 0 when there is no device or no driver (this build machine has the toolkit but no
// libcuda.so: the runtime reports cudaErrorInsufficientDriver, which counts as "no GPU").
int device_count();
// Why there is no GPU, in one line ("cudaGetDeviceCount: cudaErrorNoDevice (no CUDA-capable
// device is detected)"); empty when there is one.
std::string unavailable_reason();

// Throws when no GPU is usable, naming the op that needed one.
void require_device(const char* op);

// Every kernel, copy and library call runs on this stream (the legacy default stream), so work is
// ordered without events; host reads synchronise with it.
inline cudaStream_t stream() { return nullptr; }

// TF32 tensor-core math for fp32 GEMM and convolutions: off (exact fp32, comparable with the CPU)
// unless the environment sets DIFFKD_ALLOW_TF32=1 (for speed, and for benchmarks against
// PyTorch's TF32 defaults).
bool allow_tf32();

cublasHandle_t cublas();
cudnnHandle_t cudnn();

// Grid size for n elements at `threads` per block, capped so that grid-stride loops cover the rest.
inline unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 16 ? (b > 0 ? b : 1) : 65535 * 16);
}

}  // namespace diffkd::cuda

#pragma once
// Status checks for the CUDA runtime, cuBLAS and cuDNN: a failing call becomes a diffkd::Error
// naming the call, the library's status name and its description, e.g.
//   "cudaMalloc(&p, 4096): cudaErrorMemoryAllocation (out of memory)"
// Only files in cuda/ include this header (and with it the CUDA headers).

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "tensor/error.h"

namespace diffkd::cuda {

[[noreturn]] void fail_cuda(const char* call, cudaError_t status);
[[noreturn]] void fail_cublas(const char* call, cublasStatus_t status);
[[noreturn]] void fail_cudnn(const char* call, cudnnStatus_t status);

}  // namespace diffkd::cuda

#define DK_CUDA_CHECK(call)                                                      \
  do {                                                                           \
    const cudaError_t dk_status = (call);                                        \
    if (dk_status != cudaSuccess) ::diffkd::cuda::fail_cuda(#call, dk_status);   \
  } while (0)

#define DK_CUBLAS_CHECK(call)                                                           \
  do {                                                                                  \
    const cublasStatus_t dk_status = (call);                                            \
    if (dk_status != CUBLAS_STATUS_SUCCESS) ::diffkd::cuda::fail_cublas(#call, dk_status); \
  } while (0)

#define DK_CUDNN_CHECK(call)                                                          \
  do {                                                                                \
    const cudnnStatus_t dk_status = (call);                                           \
    if (dk_status != CUDNN_STATUS_SUCCESS) ::diffkd::cuda::fail_cudnn(#call, dk_status); \
  } while (0)

// After a kernel launch: launch-configuration errors surface here, not at the next sync.
#define DK_CUDA_CHECK_LAUNCH() DK_CUDA_CHECK(cudaGetLastError())

// The CUDA runtime: device discovery (no driver counts as no GPU), error strings, and the cuBLAS /
// cuDNN handles. tensor/cuda_support.h's answers for a build with CUDA.

#include "cuda/runtime.h"

#include <cstdlib>
#include <string>

#include "cuda/cublas_loader.h"
#include "cuda/cuda_backend.h"
#include "tensor/cuda_support.h"

namespace diffkd::cuda {

void fail_cuda(const char* call, cudaError_t status) {
  fail(call, ": ", cudaGetErrorName(status), " (", cudaGetErrorString(status), ")");
}

void fail_cublas(const char* call, cublasStatus_t status) {
  fail(call, ": ", cublas_api().status_name(status), " (", cublas_api().status_string(status), ")");
}

void fail_cudnn(const char* call, cudnnStatus_t status) {
  fail(call, ": cuDNN status ", static_cast<int>(status), " (", cudnnGetErrorString(status), ")");
}

namespace {

struct Discovery {
  int count = 0;
  std::string reason;
};

const Discovery& discovery() {
  static const Discovery d = [] {
    Discovery r;
    const cudaError_t status = cudaGetDeviceCount(&r.count);
    if (status != cudaSuccess) {
      // No device, no driver (cudaErrorInsufficientDriver on a machine with only the toolkit) or a
      // broken installation: all mean "no GPU here", never a crash.
      r.count = 0;
      r.reason = std::string("cudaGetDeviceCount: ") + cudaGetErrorName(status) + " (" + cudaGetErrorString(status) + ")";
      cudaGetLastError();  // clear the sticky error
    } else if (r.count == 0) {
      r.reason = "cudaGetDeviceCount: 0 devices";
    }
    return r;
  }();
  return d;
}

}  // namespace

int device_count() { return discovery().count; }
std::string unavailable_reason() { return discovery().reason; }

void require_device(const char* op) {
  DK_CHECK(device_count() > 0, op, ": no usable CUDA device (", unavailable_reason(), ")");
}

bool allow_tf32() {
  static const bool allowed = [] {
    const char* v = std::getenv("DIFFKD_ALLOW_TF32");
    return v != nullptr && std::string(v) == "1";
  }();
  return allowed;
}

cublasHandle_t cublas() {
  static cublasHandle_t handle = [] {
    require_device("cuBLAS");
    const CublasApi& api = cublas_api();
    cublasHandle_t h = nullptr;
    DK_CUBLAS_CHECK(api.create(&h));
    DK_CUBLAS_CHECK(api.set_stream(h, stream()));
    DK_CUBLAS_CHECK(api.set_math_mode(h, allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return h;
  }();
  return handle;
}

cudnnHandle_t cudnn() {
  static cudnnHandle_t handle = [] {
    require_device("cuDNN");
    cudnnHandle_t h = nullptr;
    DK_CUDNN_CHECK(cudnnCreate(&h));
    DK_CUDNN_CHECK(cudnnSetStream(h, stream()));
    return h;
  }();
  return handle;
}

}  // namespace diffkd::cuda

namespace diffkd {

bool cuda_built() { return true; }
int cuda_device_count() { return cuda::device_count(); }
std::string cuda_unavailable_reason() { return cuda::unavailable_reason(); }
void cuda_load_libraries() { cuda::cublas_api(); }
Backend* cuda_backend_or_null() { return &cuda::cuda_backend(); }

}  // namespace diffkd

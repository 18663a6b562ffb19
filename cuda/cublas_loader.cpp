// cuBLAS opened at run time (cuda/cublas_loader.h says why).

#include "cuda/cublas_loader.h"

#include "cuda/library_loader.h"

namespace diffkd::cuda {

const CublasApi& cublas_api() {
  static const CublasApi api = [] {
    const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
    void* handle = open_library(name, DIFFKD_CUDA_LIBRARY_DIR, "cuBLAS");
    CublasApi a{};
    bind_symbol(handle, a.create, "cublasCreate_v2", name);
    bind_symbol(handle, a.set_stream, "cublasSetStream_v2", name);
    bind_symbol(handle, a.set_math_mode, "cublasSetMathMode", name);
    bind_symbol(handle, a.sgemm_strided_batched, "cublasSgemmStridedBatched", name);
    bind_symbol(handle, a.dgemm_strided_batched, "cublasDgemmStridedBatched", name);
    bind_symbol(handle, a.status_name, "cublasGetStatusName", name);
    bind_symbol(handle, a.status_string, "cublasGetStatusString", name);
    return a;
  }();
  return api;
}

}  // namespace diffkd::cuda

// cuBLAS opened at run time (cuda/cublas_loader.h says why).

#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <string>

#include "tensor/error.h"

namespace diffkd::cuda {

namespace {

void* open_cublas() {
  const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  for (const std::string& path : {name, std::string(DIFFKD_CUDA_LIBRARY_DIR) + "/" + name})
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
  fail("cuBLAS: cannot load ", name, " (", dlerror(), "; also looked in ", DIFFKD_CUDA_LIBRARY_DIR, ")");
}

template <typename F>
void bind(void* handle, F& slot, const char* symbol) {
  slot = reinterpret_cast<F>(dlsym(handle, symbol));
  DK_CHECK(slot != nullptr, "cuBLAS: symbol ", symbol, " not found in libcublas.so.", CUBLAS_VER_MAJOR);
}

}  // namespace

const CublasApi& cublas_api() {
  static const CublasApi api = [] {
    void* handle = open_cublas();  // kept open for the life of the process
    CublasApi a{};
    bind(handle, a.create, "cublasCreate_v2");
    bind(handle, a.set_stream, "cublasSetStream_v2");
    bind(handle, a.set_math_mode, "cublasSetMathMode");
    bind(handle, a.sgemm_strided_batched, "cublasSgemmStridedBatched");
    bind(handle, a.dgemm_strided_batched, "cublasDgemmStridedBatched");
    bind(handle, a.status_name, "cublasGetStatusName");
    bind(handle, a.status_string, "cublasGetStatusString");
    return a;
  }();
  return api;
}

}  // namespace diffkd::cuda

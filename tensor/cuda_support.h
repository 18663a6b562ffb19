#pragma once
// What the rest of the library may know about CUDA without including a CUDA header: whether this
// build has the CUDA backend, whether a GPU is usable now, and the backend itself. Defined in
// cuda/ (cuda/runtime.cpp) when diffkd is built with CUDA, else by cuda/no_cuda.cpp.

#include <functional>
#include <string>

namespace diffkd {

class Backend;

bool cuda_built();
// Usable GPUs (0 without CUDA, without a device or without a driver).
int cuda_device_count();
// One line saying why no GPU is usable ("diffkd was built without CUDA", "cudaGetDeviceCount:
// cudaErrorNoDevice (...)"); empty when one is.
std::string cuda_unavailable_reason();
// Opens the libraries the backend loads at run time (cuBLAS) and looks up every symbol it calls;
// throws naming what is missing. Needs no GPU: a build machine checks its installation with it.
void cuda_load_libraries();
// The CUDA backend, or nullptr in a build without CUDA.
Backend* cuda_backend_or_null();

// What a benchmark reports against: the GPU's name and its peaks, from the device's attributes.
struct CudaDeviceInfo {
  std::string name;
  int compute_major = 0, compute_minor = 0, multiprocessors = 0;
  double fp32_tflops = 0;  // FP32 FMA lanes x 2 x SMs x peak clock (CUDA cores, no tensor cores)
  double tf32_tflops = 0;  // dense TF32 tensor-core FLOPs per SM per clock x SMs x clock; 0: not known
  double memory_gbps = 0;  // 2 (double data rate) x memory clock x bus width
};
CudaDeviceInfo cuda_device_info(int device = 0);
// GPU milliseconds of `work`: CUDA events recorded around it on the backend's stream (the host
// waits for the second one). `work` launches kernels; it need not synchronise.
double cuda_time_ms(const std::function<void()>& work);

}  // namespace diffkd

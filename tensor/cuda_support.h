#pragma once
// What the rest of the library may know about CUDA without including a CUDA header: whether this
// build has the CUDA backend, whether a GPU is usable now, and the backend itself. Defined in
// cuda/ (cuda/runtime.cpp) when diffkd is built with CUDA, else by cuda/no_cuda.cpp.

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

}  // namespace diffkd

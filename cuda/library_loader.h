#pragma once
// What the run-time loaded NVIDIA libraries share (cuda/cublas_loader.h, cuda/nccl_loader.h): open
// one by its versioned name, first on the loader's search path, then in the folder the build found
// it in (beside the executable in a relocatable build, where that folder is ""); look its symbols
// up one by one. Both throw naming the library and what is missing.

#include <dlfcn.h>

#include <string>

#include "tensor/error.h"
#include "tensor/executable_dir.h"

namespace diffkd::cuda {

// `what` names the library in errors ("cuBLAS"); the handle stays open for the life of the process.
inline void* open_library(const std::string& name, const std::string& build_dir, const char* what) {
  const std::string folder = build_dir.empty() ? executable_dir() : build_dir;
  for (const std::string& path : {name, folder + "/" + name})
    if (void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) return handle;
  fail(what, ": cannot load ", name, " (", dlerror(), "; also looked in ", folder, ")");
}

template <typename F>
void bind_symbol(void* handle, F& slot, const char* symbol, const std::string& library) {
  slot = reinterpret_cast<F>(dlsym(handle, symbol));
  DK_CHECK(slot != nullptr, "symbol ", symbol, " not found in ", library);
}

}  // namespace diffkd::cuda

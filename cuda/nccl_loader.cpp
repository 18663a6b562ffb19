// NCCL opened at run time (cuda/nccl_loader.h says why).

#ifdef DIFFKD_HAVE_NCCL

#include "cuda/nccl_loader.h"

#include "cuda/library_loader.h"

namespace diffkd::cuda {

const NcclApi& nccl_api() {
  static const NcclApi api = [] {
    const std::string name = "libnccl.so." + std::to_string(NCCL_MAJOR);
    void* handle = open_library(name, DIFFKD_NCCL_LIBRARY_DIR, "NCCL");
    NcclApi a{};
    bind_symbol(handle, a.get_unique_id, "ncclGetUniqueId", name);
    bind_symbol(handle, a.comm_init_rank, "ncclCommInitRank", name);
    bind_symbol(handle, a.all_reduce, "ncclAllReduce", name);
    bind_symbol(handle, a.comm_destroy, "ncclCommDestroy", name);
    bind_symbol(handle, a.error_string, "ncclGetErrorString", name);
    return a;
  }();
  return api;
}

}  // namespace diffkd::cuda

#endif  // DIFFKD_HAVE_NCCL

#pragma once
// NCCL, opened with dlopen on first use instead of linked (as cuBLAS, cuda/cublas_loader.h): only
// a data-parallel run on GPUs needs it, and a GPU host may carry it beside PyTorch's wheel rather
// than in the loader's path. Only the calls we make are looked up.

#include <nccl.h>

namespace diffkd::cuda {

struct NcclApi {
  decltype(&ncclGetUniqueId) get_unique_id;
  decltype(&ncclCommInitRank) comm_init_rank;
  decltype(&ncclAllReduce) all_reduce;
  decltype(&ncclCommDestroy) comm_destroy;
  decltype(&ncclGetErrorString) error_string;
};

// Loads libnccl.so.<major> (the loader's search path, then the folder this build found it in); throws naming the library or the missing symbol.
const NcclApi& nccl_api();

}  // namespace diffkd::cuda

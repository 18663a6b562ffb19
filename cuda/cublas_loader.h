#pragma once
// cuBLAS, opened with dlopen on first use instead of linked: libcublasLt's static initialisers
// cost about 0.5 s in every process that links it, GPU or not, which every `diffkd` command and
// each of the test suite's processes would pay. Only the calls we make are looked up.

#include <cublas_v2.h>

namespace diffkd::cuda {

struct CublasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetMathMode) set_math_mode;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched;
  decltype(&cublasDgemmStridedBatched) dgemm_strided_batched;
  decltype(&cublasGetStatusName) status_name;
  decltype(&cublasGetStatusString) status_string;
};

// Loads libcublas.so.<major> (the loader's search path, then the toolkit's library folder this
// build found); throws naming the library or the missing symbol.
const CublasApi& cublas_api();

}  // namespace diffkd::cuda

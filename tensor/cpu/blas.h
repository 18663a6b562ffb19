#pragma once
// Row-major GEMM on raw pointers, shared by the CPU kernels that lower to matrix products
// (gemm, conv2d). C = alpha * op(A) @ op(B) + beta * C, with leading dims lda, ldb, ldc.
// Inside an OpenMP parallel region it runs on the calling thread only.

#include <cstdint>
#include <string>

namespace diffkd::cpu_impl {

template <typename T>
void gemm_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// The same product through OpenBLAS if it was loaded; false if it was not (then Eigen runs).
bool gemm_openblas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                   const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc);
bool gemm_openblas(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                   const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                   double* c, int64_t ldc);

// Loads OpenBLAS (once); returns a description such as "openblas 0.3.21 (core SkylakeX)" or
// "eigen" when GEMM runs through Eigen.
std::string gemm_library();

}  // namespace diffkd::cpu_impl

#pragma once
// Single row-major GEMM on raw pointers, shared by the CPU kernels that lower to matrix products
// (gemm, conv2d). C = alpha * op(A) @ op(B) + beta * C, with leading dims lda, ldb, ldc.
// Inside an OpenMP parallel region it runs on the calling thread only.

#include <cstdint>

namespace diffkd::cpu_impl {

template <typename T>
void gemm_rowmajor(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
                   const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

}  // namespace diffkd::cpu_impl

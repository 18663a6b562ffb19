// Batched GEMM on the CPU: c[b] = alpha * op(a[b]) @ op(b[b]) + beta * c[b].
// f32 runs on our packed AVX-512 micro-kernel where it is built (packed_gemm.h, measured fastest
// here, see bench/RESULTS.md); f64 and CPUs without AVX-512 go through Eigen; OpenBLAS is used
// instead of both when asked for with DIFFKD_GEMM=openblas (blas.cpp). All use OpenMP threads;
// OpenBLAS's OpenMP build runs single-threaded inside our parallel regions, so nothing
// oversubscribes the cores.
// Operands may be strided; a matrix already in a BLAS layout (unit stride in one dim, rows or
// columns not overlapping) is passed without a copy, any other view is copied first.

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/cpu/blas.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/packed_gemm.h"

namespace diffkd {

namespace {

// A 2-D operand as BLAS wants it: row-major with leading dim ld, maybe transposed.
struct MatrixArg {
  Tensor storage;  // keeps a contiguous copy alive when one was needed
  bool trans;
  int64_t ld;
  int64_t batch_stride;
};

MatrixArg as_matrix(const Tensor& t, bool trans) {
  const int64_t rows = t.size(1), cols = t.size(2);
  // A view is passed without a copy only when it is a valid BLAS layout: unit stride along one
  // dim and a leading dimension that does not make rows (or columns) overlap. Expanded (stride-0)
  // or overlapping views would otherwise be read with a wrong leading dimension.
  const bool row_major = (t.stride(2) == 1 || cols == 1) && (rows == 1 || t.stride(1) >= cols);
  if (row_major) return {t, trans, rows == 1 ? std::max<int64_t>(cols, 1) : t.stride(1), t.stride(0)};
  const bool col_major = (t.stride(1) == 1 || rows == 1) && (cols == 1 || t.stride(2) >= rows);
  if (col_major)  // column-major storage = the transpose, row-major
    return {t, !trans, cols == 1 ? std::max<int64_t>(rows, 1) : t.stride(2), t.stride(0)};
  Tensor c = t.clone_data();
  return {c, trans, cols, c.stride(0)};
}

}  // namespace

namespace cpu_impl {

namespace {

// f32 through the packed AVX-512 micro-kernel (packed_gemm.h): both operands packed, then
// 12 x 32 register tiles, in parallel when the product is large and we are not already inside a
// parallel region. Each C entry is one tile's full-k sum, so results do not depend on threads.
bool gemm_packed(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                 int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  // Packing costs O(mk + kn) on one thread: worth it only for large products (measured: slower
  // than Eigen at the UNet's conv-sized and attention-sized products, faster at 512^3).
  if (!packed::available() || std::min({m, n, k}) < 128 || omp_in_parallel()) return false;
  thread_local std::vector<float> a_store, b_store;
  auto aligned = [](std::vector<float>& v, int64_t size) {
    v.resize(size + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  };
  float* pa = aligned(a_store, packed::packed_a_size(m, k));
  float* pb = aligned(b_store, packed::packed_b_size(k, n));
  const int64_t blocks = packed::blocks(m), panels = packed::panels(n), tiles = panels * blocks;
#pragma omp parallel
  {
    // Both operands are packed by the team, a row block or a column panel at a time (packed by
    // the calling thread alone, the other thread waited through a third of the batch-1
    // attention's GEMMs).
#pragma omp for schedule(static) nowait
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t r0 = blk * packed::kMR;
      packed::pack_a(ta ? a + r0 : a + r0 * lda, lda, ta, std::min(packed::kMR, m - r0), k,
                     pa + r0 * k);
    }
#pragma omp for schedule(static)
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t c0 = p * packed::kNR, cols = std::min(packed::kNR, n - c0);
      if (tb) packed::pack_b_transposed(b + c0 * ldb, ldb, k, cols, pb + c0 * k);
      else packed::pack_b(b + c0, ldb, k, cols, pb + c0 * k);
    }
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tiles; ++t) {
      const int64_t p = t / blocks, blk = t % blocks;
      alignas(64) float tile[packed::kMR * packed::kNR];
      packed::micro_kernel(k, pa + blk * packed::kMR * k, pb + p * packed::kNR * k, tile);
      const int64_t r0 = blk * packed::kMR, c0 = p * packed::kNR;
      const int64_t rows = std::min(packed::kMR, m - r0), cols = std::min(packed::kNR, n - c0);
      for (int64_t r = 0; r < rows; ++r) {
        float* out = c + (r0 + r) * ldc + c0;
        const float* src = tile + r * packed::kNR;
        if (beta == 0.0f) {  // C may be uninitialised: never read it
          for (int64_t j = 0; j < cols; ++j) out[j] = alpha * src[j];
        } else {
          for (int64_t j = 0; j < cols; ++j) out[j] = alpha * src[j] + beta * out[j];
        }
      }
    }
  }
  return true;
}

template <typename T>
bool gemm_fast(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
               int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (gemm_openblas(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return true;
  if constexpr (std::is_same_v<T, float>)
    return gemm_packed(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return false;
}

}  // namespace

template <typename T>
void gemm_rowmajor(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a,
                   int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (gemm_fast(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) return;
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  Eigen::Map<Mat, 0, Eigen::OuterStride<>> C(c, m, n, Eigen::OuterStride<>(ldc));
  CMap A(a, ta ? k : m, ta ? m : k, Eigen::OuterStride<>(lda));
  CMap B(b, tb ? n : k, tb ? k : n, Eigen::OuterStride<>(ldb));
  if (beta == T(0)) C.setZero(); else if (beta != T(1)) C *= beta;
  if (!ta && !tb) C.noalias() += alpha * A * B;
  else if (ta && !tb) C.noalias() += alpha * A.transpose() * B;
  else if (!ta && tb) C.noalias() += alpha * A * B.transpose();
  else C.noalias() += alpha * A.transpose() * B.transpose();
}
template void gemm_rowmajor<float>(bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                   int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_rowmajor<double>(bool, bool, int64_t, int64_t, int64_t, double, const double*,
                                    int64_t, const double*, int64_t, double, double*, int64_t);
}  // namespace cpu_impl

void CpuBackend::gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
                      double beta, const Tensor& c) {
  DK_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "gemm: expected 3-D operands, got ",
           shape_str(a.shape()), ", ", shape_str(b.shape()), ", ", shape_str(c.shape()));
  DK_CHECK(c.is_contiguous(), "gemm: output must be contiguous");
  const int64_t batch = c.size(0), m = c.size(1), n = c.size(2);
  const int64_t k = trans_a ? a.size(1) : a.size(2);
  DK_CHECK(a.size(0) == batch && b.size(0) == batch && (trans_a ? a.size(2) : a.size(1)) == m &&
               (trans_b ? b.size(1) : b.size(2)) == n && (trans_b ? b.size(2) : b.size(1)) == k,
           "gemm: shapes ", shape_str(a.shape()), (trans_a ? "^T" : ""), " @ ",
           shape_str(b.shape()), (trans_b ? "^T" : ""), " -> ", shape_str(c.shape()),
           " do not agree");
  if (batch == 0 || m == 0 || n == 0) return;
  const MatrixArg A = as_matrix(a, trans_a), B = as_matrix(b, trans_b);
  dispatch_float(c.dtype(), "gemm", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* ap = A.storage.data<T>();
    const T* bp = B.storage.data<T>();
    T* cp = c.data<T>();
    auto one = [&](int64_t i) {
      cpu_impl::gemm_rowmajor<T>(A.trans, B.trans, m, n, k, static_cast<T>(alpha), ap + i * A.batch_stride,
                  A.ld, bp + i * B.batch_stride, B.ld, static_cast<T>(beta), cp + i * m * n, n);
    };
    // Many small products (attention heads): one product per thread. Otherwise the GEMM itself
    // is threaded.
    if (batch >= 2 && m * n * k < (1 << 21)) {
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < batch; ++i) one(i);
    } else {
      for (int64_t i = 0; i < batch; ++i) one(i);
    }
  });
}

}  // namespace diffkd

#pragma once
// A small f32 GEMM on pre-packed operands with a register-blocked micro-kernel, for the
// convolution kernels, which pack their own operands (im2col writes straight into B panels).
//
//   C[m, n] = sum_k A[m, k] B[k, n]
//   A packed in row blocks of kMR rows:     block i holds A[i*kMR + r, k] at [k * kMR + r]
//   B packed in column panels of kNR cols:  panel j holds B[k, j*kNR + c] at [k * kNR + c]
//   (rows/columns past m/n are zero padding)
// Each (row block, column panel) tile is computed in registers over the whole k and handed to a
// callback that stores it (the conv kernels add a bias and scatter into NCHW).
// Built where the compiler targets AVX-512 (one 12 x 32 tile in registers) or AVX2 + FMA (four
// 6 x 16 sub-tiles), with -march=native; available() says whether it was.

#include <cstdint>
#include <algorithm>

namespace diffkd::cpu_impl::packed {

constexpr int64_t kMR = 12;  // rows of a register tile (broadcast operands)
constexpr int64_t kNR = 32;  // columns of a register tile (two 16-float vectors)

bool available();

inline int64_t blocks(int64_t m) { return (m + kMR - 1) / kMR; }
inline int64_t panels(int64_t n) { return (n + kNR - 1) / kNR; }
inline int64_t packed_a_size(int64_t m, int64_t k) { return blocks(m) * kMR * k; }
inline int64_t packed_b_size(int64_t k, int64_t n) { return panels(n) * kNR * k; }

// Packs a row-major A (m x k, leading dim lda), or its transpose when trans (A stored k x m).
void pack_a(const float* a, int64_t lda, bool trans, int64_t m, int64_t k, float* packed);
// Packs a row-major B (k x n, leading dim ldb).
void pack_b(const float* b, int64_t ldb, int64_t k, int64_t n, float* packed);
// Packs B = Bt^T from a row-major Bt (n x k, leading dim ldbt).
void pack_b_transposed(const float* bt, int64_t ldbt, int64_t k, int64_t n, float* packed);

// One register tile: tile[r * kNR + c] = sum_kk a[kk * kMR + r] * b[kk * kNR + c].
void micro_kernel(int64_t k, const float* a, const float* b, float* tile);
// The same with B rows read in place: row kk is the kNR floats at b + offsets[kk] (unaligned).
void micro_kernel_shifted(int64_t k, const float* a, const float* b, const int64_t* offsets,
                          float* tile);

// Computes every tile of C on the calling thread and hands each to
// store(row0, col0, rows, cols, tile), tile[r * kNR + c] = C[row0 + r, col0 + c].
template <typename Store>
void gemm(int64_t m, int64_t n, int64_t k, const float* packed_a, const float* packed_b,
          Store&& store) {
  alignas(64) float tile[kMR * kNR];
  for (int64_t p = 0; p < panels(n); ++p)
    for (int64_t blk = 0; blk < blocks(m); ++blk) {
      micro_kernel(k, packed_a + blk * kMR * k, packed_b + p * kNR * k, tile);
      store(blk * kMR, p * kNR, std::min(kMR, m - blk * kMR), std::min(kNR, n - p * kNR), tile);
    }
}

// The same product with B read in place instead of packed: row kk of column panel p is the kNR
// floats at b + row_offsets[kk] + p * kNR (all readable). Stride-1 convolutions use it on a
// zero-padded input, where every kernel tap is a constant shift (conv.cpp).
template <typename Store>
void gemm_shifted(int64_t m, int64_t panel_count, int64_t k, const float* packed_a,
                  const float* b, const int64_t* row_offsets, Store&& store) {
  alignas(64) float tile[kMR * kNR];
  for (int64_t p = 0; p < panel_count; ++p)
    for (int64_t blk = 0; blk < blocks(m); ++blk) {
      micro_kernel_shifted(k, packed_a + blk * kMR * k, b + p * kNR, row_offsets, tile);
      store(blk * kMR, p * kNR, std::min(kMR, m - blk * kMR), kNR, tile);
    }
}

}  // namespace diffkd::cpu_impl::packed

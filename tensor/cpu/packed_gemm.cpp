#include "tensor/cpu/packed_gemm.h"

#include <algorithm>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace diffkd::cpu_impl::packed {

void pack_a(const float* a, int64_t lda, bool trans, int64_t m, int64_t k, float* packed) {
  for (int64_t blk = 0; blk < blocks(m); ++blk) {
    float* dst = packed + blk * kMR * k;
    for (int64_t r = 0; r < kMR; ++r) {
      const int64_t row = blk * kMR + r;
      for (int64_t kk = 0; kk < k; ++kk)
        dst[kk * kMR + r] = row < m ? (trans ? a[kk * lda + row] : a[row * lda + kk]) : 0.0f;
    }
  }
}

void pack_b(const float* b, int64_t ldb, int64_t k, int64_t n, float* packed) {
  for (int64_t p = 0; p < panels(n); ++p) {
    float* dst = packed + p * kNR * k;
    const int64_t col0 = p * kNR, cols = std::min(kNR, n - col0);
    for (int64_t kk = 0; kk < k; ++kk) {
      std::memcpy(dst + kk * kNR, b + kk * ldb + col0, sizeof(float) * cols);
      std::fill(dst + kk * kNR + cols, dst + (kk + 1) * kNR, 0.0f);
    }
  }
}

void pack_b_transposed(const float* bt, int64_t ldbt, int64_t k, int64_t n, float* packed) {
  for (int64_t p = 0; p < panels(n); ++p) {
    float* dst = packed + p * kNR * k;
    const int64_t col0 = p * kNR, cols = std::min(kNR, n - col0);
    for (int64_t c = 0; c < kNR; ++c) {
      if (c >= cols) {
        for (int64_t kk = 0; kk < k; ++kk) dst[kk * kNR + c] = 0.0f;
        continue;
      }
      const float* src = bt + (col0 + c) * ldbt;
      for (int64_t kk = 0; kk < k; ++kk) dst[kk * kNR + c] = src[kk];
    }
  }
}

#if defined(__AVX512F__)

bool available() { return true; }

namespace {
// The 12 x 32 register tile: 24 accumulators, two B vectors and one broadcast per step.
// row(kk) gives the 32 floats of B's row kk (packed, or in place for the shifted variant).
template <typename Row>
void tile_kernel(int64_t k, const float* a, Row row, float* tile) {
  __m512 c[kMR][2];
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) c[r][0] = c[r][1] = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* b = row(kk);
    const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < kMR; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
    }
    a += kMR;
  }
#pragma GCC unroll 12
  for (int r = 0; r < kMR; ++r) {
    _mm512_store_ps(tile + r * kNR, c[r][0]);
    _mm512_store_ps(tile + r * kNR + 16, c[r][1]);
  }
}
}  // namespace

void micro_kernel(int64_t k, const float* a, const float* b, float* tile) {
  tile_kernel(k, a, [b](int64_t kk) { return b + kk * kNR; }, tile);
}

void micro_kernel_shifted(int64_t k, const float* a, const float* b, const int64_t* offsets,
                          float* tile) {
  tile_kernel(k, a, [b, offsets](int64_t kk) { return b + offsets[kk]; }, tile);
}

#else

bool available() { return false; }

void micro_kernel(int64_t k, const float* a, const float* b, float* tile) {
  std::fill(tile, tile + kMR * kNR, 0.0f);
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t r = 0; r < kMR; ++r)
      for (int64_t c = 0; c < kNR; ++c) tile[r * kNR + c] += a[kk * kMR + r] * b[kk * kNR + c];
}

void micro_kernel_shifted(int64_t k, const float* a, const float* b, const int64_t* offsets,
                          float* tile) {
  std::fill(tile, tile + kMR * kNR, 0.0f);
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t r = 0; r < kMR; ++r)
      for (int64_t c = 0; c < kNR; ++c)
        tile[r * kNR + c] += a[kk * kMR + r] * b[offsets[kk] + c];
}

#endif

}  // namespace diffkd::cpu_impl::packed

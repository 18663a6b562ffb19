#include "tensor/cpu/packed_gemm.h"

#include <algorithm>
#include <cstring>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
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

#elif defined(__AVX2__) && defined(__FMA__)

bool available() { return true; }

namespace {
// AVX2 has 16 registers, too few for the 12 x 32 tile at once: it is computed as four 6 x 16
// sub-tiles (12 accumulators, two B vectors and one broadcast), each over the whole k, reading
// its rows and columns out of the same 12 x 32 packing. The sub-tiles' operands (6k and 16k
// floats) stay in L1/L2 between the four passes.
template <typename Row>
void sub_tile(int64_t k, const float* a, Row row, int64_t r0, int64_t c0, float* tile) {
  constexpr int kRows = 6;
  __m256 c[kRows][2];
#pragma GCC unroll 6
  for (int r = 0; r < kRows; ++r) c[r][0] = c[r][1] = _mm256_setzero_ps();
  a += r0;
  for (int64_t kk = 0; kk < k; ++kk) {
    const float* b = row(kk) + c0;
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
#pragma GCC unroll 6
    for (int r = 0; r < kRows; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r);
      c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
    }
    a += kMR;
  }
#pragma GCC unroll 6
  for (int r = 0; r < kRows; ++r) {
    _mm256_store_ps(tile + (r0 + r) * kNR + c0, c[r][0]);
    _mm256_store_ps(tile + (r0 + r) * kNR + c0 + 8, c[r][1]);
  }
}

template <typename Row>
void tile_kernel(int64_t k, const float* a, Row row, float* tile) {
  static_assert(kMR == 12 && kNR == 32, "the sub-tiling assumes the 12 x 32 packing");
  for (int64_t c0 = 0; c0 < kNR; c0 += 16)
    for (int64_t r0 = 0; r0 < kMR; r0 += 6) sub_tile(k, a, row, r0, c0, tile);
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

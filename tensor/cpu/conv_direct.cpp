// f32 convolution as a direct convolution with output channels in the vector lanes (AVX-512):
// forward, input gradient and weight gradient of every stride-1 conv of the UNet, and forward and
// weight gradient of its stride-2 downsampling convs (stride s reads every s-th padded pixel:
// xpad[c, s oh_q + i, s ow_q + j] below; the tile is the same).
//
// Register tile of the forward (and of the input gradient, which is a forward convolution of gy
// with the weight transposed in its channel dims and flipped in space):
//
//   acc[q][v] (q < R*P output pixels: R rows x P columns, v < 2 vectors = 32 output channels)
//   acc[q][v] = bias[o] + sum_{c, i, j} xpad[c, oh_q + i, ow_q + j] * wpack[c, i, j][o]
//
// Each step (c, i, j) loads two weight vectors and broadcasts R*P input pixels (R*P + 2 loads for
// 2 R P fused multiply-adds), so the core's two FMA pipes stay busy for any P >= 2; the tile covers
// real output pixels only (P and R fit the map: 14 at 28x28, 7 x 2 rows at 7x7, 4 x 2 at 4x4), so
// nothing is computed and dropped, unlike a GEMM over the padded grid. Output channels are padded
// to 32 with zero weights; at the UNet's widths (multiples of 32) there is no padding at all.
//
// Weight gradient, a GEMM-shaped reduction over every output pixel k = (n, oh, ow):
//
//   gW^T[c, i, j][o] = sum_k xpad[n, c, oh + i, ow + j] * gyT[k][o]
//
// with gy transposed once to pixel-major gyT [k][O]. Its register tile is the kh x kw taps of one
// input channel x 32 output channels (18 accumulators for 3x3): per pixel 2 vector loads and 9
// broadcasts for 18 FMAs. Threads split the pixels; each sums into its own partial gW^T, and the
// partials are added in thread order, so the result is deterministic at a given thread count.

#include "tensor/cpu/conv_direct.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <utility>
#include <vector>

#include "tensor/cpu/strided_loop.h"  // kParallelGrain

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace diffkd::cpu_impl::conv {

namespace {

constexpr int64_t kBlock = kDirectBlock;  // output channels per tile (two 16-float vectors)

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The forward's geometry in the padded input's terms.
struct PaddedShape {
  int64_t hp, wp;  // padded rows and columns
  int64_t channel() const { return hp * wp; }
};

}  // namespace

void pad_images(const float* x, int64_t nc, int64_t h, int64_t w, int64_t ph, int64_t pw,
                float* xpad) {
  const int64_t wp = w + 2 * pw, channel = (h + 2 * ph) * wp;
  // A copy: worth the second thread from the elementwise ops' grain, well below the conv's.
#pragma omp parallel for schedule(static) if (nc * channel > kParallelGrain)
  for (int64_t i = 0; i < nc; ++i) {
    float* dst = xpad + i * channel;
    const float* src = x + i * h * w;
    std::fill(dst, dst + ph * wp, 0.0f);
    for (int64_t r = 0; r < h; ++r) {
      float* row = dst + (ph + r) * wp;
      std::fill(row, row + pw, 0.0f);
      std::copy(src + r * w, src + (r + 1) * w, row + pw);
      std::fill(row + pw + w, row + wp, 0.0f);
    }
    std::fill(dst + (ph + h) * wp, dst + channel, 0.0f);
  }
}

#if defined(__AVX512F__)

namespace {

// What one forward tile reads and writes.
struct TileArgs {
  const float* x;       // padded input at (c = 0, first row, first column of the tile)
  int64_t wp, channel;  // padded row length and channel size
  int64_t c_count, kh, kw;
  const float* weight;  // packed block [C][kh][kw][32]
  const float* bias;    // 32 floats (zeros when the conv has none)
  float* out;           // y at (n, first channel of the block, first row, first column)
  int64_t plane, ow;    // output channel size and row length
  int64_t channels;     // output channels of the block that exist (<= 32)
};

// In-register transpose of a 16 x 16 block: r[i] lane j -> r[j] lane i (unpack 32- and 64-bit
// pairs, then exchange 128-bit lanes twice).
inline void transpose16(__m512 (&r)[16]) {
  __m512 t[16], u[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {
    const __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
    const __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
    u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
    u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
    u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
    u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
  }
  // u[4 g + k] holds rows 4 g .. 4 g + 3 at columns k, k + 4, k + 8, k + 12 (one per 128-bit lane).
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    t[k] = _mm512_shuffle_f32x4(u[k], u[4 + k], 0x88);           // rows 0-7, columns k, k + 8
    t[4 + k] = _mm512_shuffle_f32x4(u[k], u[4 + k], 0xdd);       // rows 0-7, columns k + 4, k + 12
    t[8 + k] = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0x88);  // rows 8-15
    t[12 + k] = _mm512_shuffle_f32x4(u[8 + k], u[12 + k], 0xdd);
  }
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_f32x4(t[k], t[8 + k], 0xdd);
  }
}

// Each input pixel is broadcast from memory. GCC's predictive commoning would instead carry the
// pixels a tap shares with the previous tap in registers, which the 28 accumulators leave no
// room for, and spill them to the stack (measured: 79% of peak in the loop with it, 90% without).
template <int P, int R, int S>
__attribute__((optimize("no-predictive-commoning"))) void forward_tile(const TileArgs& a) {
  __m512 acc[R * P][2];
  const __m512 b0 = _mm512_loadu_ps(a.bias), b1 = _mm512_loadu_ps(a.bias + 16);
#pragma GCC unroll 28
  for (int q = 0; q < R * P; ++q) acc[q][0] = b0, acc[q][1] = b1;
  const float* wv = a.weight;
  for (int64_t c = 0; c < a.c_count; ++c) {
    const float* xc = a.x + c * a.channel;
    for (int64_t i = 0; i < a.kh; ++i)
      for (int64_t j = 0; j < a.kw; ++j) {
        const float* row = xc + i * a.wp + j;
        const __m512 w0 = _mm512_loadu_ps(wv), w1 = _mm512_loadu_ps(wv + 16);
        wv += kBlock;
#pragma GCC unroll 2
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 14
          for (int p = 0; p < P; ++p) {
            const __m512 xv = _mm512_set1_ps(row[(r * a.wp + p) * S]);
            acc[r * P + p][0] = _mm512_fmadd_ps(xv, w0, acc[r * P + p][0]);
            acc[r * P + p][1] = _mm512_fmadd_ps(xv, w1, acc[r * P + p][1]);
          }
      }
  }
  // acc[q][v] holds pixel q of channels 16 v .. 16 v + 15; transposed, vector k holds channel
  // 16 v + k at pixels 0 .. R P - 1, written with one masked store per row.
#pragma GCC unroll 2
  for (int v = 0; v < 2; ++v) {
    __m512 block[16];
#pragma GCC unroll 16
    for (int q = 0; q < 16; ++q) block[q] = q < R * P ? acc[q][v] : _mm512_setzero_ps();
    transpose16(block);
    const int64_t channels = std::min<int64_t>(16, a.channels - 16 * v);
    for (int64_t k = 0; k < channels; ++k) {
      float* dst = a.out + (16 * v + k) * a.plane;
      // Lanes r P .. r P + P - 1 belong to row r: lane l lands at dst + r ow + (l - r P).
#pragma GCC unroll 2
      for (int r = 0; r < R; ++r)
        _mm512_mask_storeu_ps(dst + r * (a.ow - P),
                              static_cast<__mmask16>(((1u << P) - 1) << (r * P)), block[k]);
    }
  }
}

// Loads `rows` rows of `cols` floats (both <= 16; zeros elsewhere), row k at src + k * stride,
// and transposes them: out[j] lane k = src[k * stride + j].
inline void load_transposed(const float* src, int64_t stride, int64_t rows, int64_t cols,
                            __m512 (&out)[16]) {
  const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1);
#pragma GCC unroll 16
  for (int k = 0; k < 16; ++k)
    out[k] = k < rows ? _mm512_maskz_loadu_ps(mask, src + k * stride) : _mm512_setzero_ps();
  transpose16(out);
}

using TileFn = void (*)(const TileArgs&);
constexpr int kMaxPixels = 14;  // R * P <= 14: 28 accumulators of the 32 registers

template <int R, int S, int... P>
constexpr std::array<TileFn, sizeof...(P)> tile_table(std::integer_sequence<int, P...>) {
  return {&forward_tile<P + 1, R, S>...};
}
// [stride - 1][columns - 1]
constexpr std::array<std::array<TileFn, kMaxPixels>, 2> kOneRow = {
    tile_table<1, 1>(std::make_integer_sequence<int, kMaxPixels>{}),
    tile_table<1, 2>(std::make_integer_sequence<int, kMaxPixels>{})};
constexpr std::array<std::array<TileFn, kMaxPixels / 2>, 2> kTwoRows = {
    tile_table<2, 1>(std::make_integer_sequence<int, kMaxPixels / 2>{}),
    tile_table<2, 2>(std::make_integer_sequence<int, kMaxPixels / 2>{})};

// How the output map is cut into tiles: strips of at most 14 columns, and two rows per tile
// where a strip is at most 7 columns wide.
struct Tiling {
  int64_t strips, columns;  // strips per row; columns per strip (the last may have fewer)
  int64_t rows;             // rows per tile, 1 or 2
};
Tiling tiling(int64_t oh, int64_t ow) {
  const int64_t strips = (ow + kMaxPixels - 1) / kMaxPixels;
  const int64_t columns = (ow + strips - 1) / strips;
  return {strips, columns, (columns * 2 <= kMaxPixels && oh >= 2) ? 2 : 1};
}

}  // namespace

void pack_weight_direct(const float* w, int64_t o_count, int64_t c_count, int64_t kh, int64_t kw,
                        bool flip_transpose, float* packed) {
  // packed[ob][c][t][lane] = w[ob * 32 + lane][c][t] for the taps t = (i, j); flip_transpose
  // reads w as [C', O', kh, kw] and takes w[c][o][taps - 1 - t] (kh - 1 - i, kw - 1 - j). Each
  // 16 output channels x taps block is one transposed load (taps <= 16: kernels up to 4x4).
  const int64_t blocks = round_up(o_count, kBlock) / kBlock, taps = kh * kw;
  DK_CHECK(taps <= 16, "pack_weight_direct: ", kh, "x", kw, " kernel (at most 16 taps)");
#pragma omp parallel for schedule(static) if (o_count * c_count * taps > kDirectParallelGrain)
  for (int64_t ob = 0; ob < blocks; ++ob)
    for (int64_t c = 0; c < c_count; ++c)
      for (int64_t half = 0; half < 2; ++half) {
        const int64_t o0 = ob * kBlock + half * 16;
        const int64_t rows = std::clamp<int64_t>(o_count - o0, 0, 16);
        __m512 block[16];
        // Row k of the block: output channel o0 + k's taps of input channel c.
        if (flip_transpose) load_transposed(w + (c * o_count + o0) * taps, taps, rows, taps, block);
        else load_transposed(w + (o0 * c_count + c) * taps, c_count * taps, rows, taps, block);
        float* dst = packed + (ob * c_count + c) * taps * kBlock + half * 16;
        for (int64_t t = 0; t < taps; ++t)
          _mm512_storeu_ps(dst + t * kBlock, block[flip_transpose ? taps - 1 - t : t]);
      }
}

void conv2d_direct(const float* x, const float* packed_weight, const float* bias, float* y,
                   const DirectShape& s) {
  DK_CHECK(s.stride == 1 || s.stride == 2, "conv2d_direct: stride ", s.stride, " (1 or 2 only)");
  const PaddedShape pad{s.h + 2 * s.ph, s.w + 2 * s.pw};
  const int64_t oh = (pad.hp - s.kh) / s.stride + 1, ow = (pad.wp - s.kw) / s.stride + 1;
  const int64_t plane = oh * ow;
  // One zero-padded copy of the input (measured: cheaper than a padded window per tile, whose
  // rows overlap between neighbouring tiles).
  const CallScratch input_scratch(s.n * s.c * pad.channel());
  float* xpad = input_scratch.data();
  pad_images(x, s.n * s.c, s.h, s.w, s.ph, s.pw, xpad);
  const int64_t blocks = round_up(s.o, kBlock) / kBlock;
  thread_local Scratch bias_scratch;
  float* bias_padded = bias_scratch.get(blocks * kBlock);
  for (int64_t o = 0; o < blocks * kBlock; ++o) bias_padded[o] = bias && o < s.o ? bias[o] : 0.0f;

  const Tiling t = tiling(oh, ow);
  const int64_t row_groups = (oh + t.rows - 1) / t.rows;
  const int64_t items = s.n * row_groups * t.strips * blocks;
  const int64_t taps = s.kh * s.kw;
  // Items are (image, row group, strip, channel block), the block fastest, so consecutive items
  // of a thread reuse the same input rows. Each item writes its own outputs, so the result does
  // not depend on the thread count. (A dynamic schedule measured 30% slower at 28x28 and 14x14:
  // neighbouring rows then go to different cores, which share the output's cache lines.)
#pragma omp parallel for schedule(static) if (items > 1 && s.n * s.o * plane * s.c * taps > kDirectParallelGrain)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t ob = item % blocks;
    const int64_t strip = (item / blocks) % t.strips;
    const int64_t rg = (item / blocks / t.strips) % row_groups;
    const int64_t n = item / blocks / t.strips / row_groups;
    const int64_t row0 = rg * t.rows, rows = std::min(t.rows, oh - row0);
    const int64_t col0 = strip * t.columns, cols = std::min(t.columns, ow - col0);
    const TileFn tile_fn =
        rows == 2 ? kTwoRows[s.stride - 1][cols - 1] : kOneRow[s.stride - 1][cols - 1];
    const float* tile_x = xpad + n * s.c * pad.channel() + (row0 * pad.wp + col0) * s.stride;
    tile_fn({tile_x, pad.wp, pad.channel(), s.c, s.kh, s.kw,
             packed_weight + ob * s.c * taps * kBlock, bias_padded + ob * kBlock,
             y + (n * s.o + ob * kBlock) * plane + row0 * ow + col0, plane, ow,
             std::min(kBlock, s.o - ob * kBlock)});
  }
}

namespace {

// The weight gradient's register tile: KH x KW taps of one input channel x 32 output channels,
// summed over the output pixels of rows [row0, row1) of the batch (rows counted over n * OH).
template <int KH, int KW, int S>
void weight_tile(const float* xpad_c, int64_t image, int64_t wp, int64_t oh, int64_t ow,
                 const float* gyt, int64_t o_pad, int64_t row0, int64_t row1, float* acc_out,
                 bool accumulate) {
  __m512 acc[KH * KW][2];
#pragma GCC unroll 9
  for (int t = 0; t < KH * KW; ++t) {
    acc[t][0] = accumulate ? _mm512_loadu_ps(acc_out + t * kBlock) : _mm512_setzero_ps();
    acc[t][1] = accumulate ? _mm512_loadu_ps(acc_out + t * kBlock + 16) : _mm512_setzero_ps();
  }
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t n = row / oh, r = row % oh;
    const float* x = xpad_c + n * image + r * S * wp;
    const float* g = gyt + row * ow * o_pad;
    for (int64_t col = 0; col < ow; ++col) {
      const __m512 g0 = _mm512_loadu_ps(g + col * o_pad), g1 = _mm512_loadu_ps(g + col * o_pad + 16);
#pragma GCC unroll 3
      for (int i = 0; i < KH; ++i)
#pragma GCC unroll 3
        for (int j = 0; j < KW; ++j) {
          const __m512 xv = _mm512_set1_ps(x[i * wp + col * S + j]);
          acc[i * KW + j][0] = _mm512_fmadd_ps(xv, g0, acc[i * KW + j][0]);
          acc[i * KW + j][1] = _mm512_fmadd_ps(xv, g1, acc[i * KW + j][1]);
        }
    }
  }
#pragma GCC unroll 9
  for (int t = 0; t < KH * KW; ++t) {
    _mm512_storeu_ps(acc_out + t * kBlock, acc[t][0]);
    _mm512_storeu_ps(acc_out + t * kBlock + 16, acc[t][1]);
  }
}

}  // namespace

bool conv2d_weight_direct_supports(int64_t kh, int64_t kw) {
  return (kh == 3 && kw == 3) || (kh == 1 && kw == 1);
}

void conv2d_weight_direct(const float* x, const float* gy, float* gw, const DirectShape& s) {
  DK_CHECK(conv2d_weight_direct_supports(s.kh, s.kw), "conv2d_weight_direct: kernel ", s.kh, "x",
           s.kw, " (3x3 and 1x1 only)");
  DK_CHECK(s.stride == 1 || s.stride == 2, "conv2d_weight_direct: stride ", s.stride,
           " (1 or 2 only)");
  const PaddedShape pad{s.h + 2 * s.ph, s.w + 2 * s.pw};
  const int64_t oh = (pad.hp - s.kh) / s.stride + 1, ow = (pad.wp - s.kw) / s.stride + 1;
  const int64_t plane = oh * ow;
  const int64_t taps = s.kh * s.kw, o_pad = round_up(s.o, kBlock), blocks = o_pad / kBlock;
  const int64_t image = s.c * pad.channel();
  const bool parallel = s.n * plane * s.c * taps * s.o > kDirectParallelGrain;
  const CallScratch input_scratch(s.n * image);
  thread_local Scratch partial_scratch;
  float* xpad = input_scratch.data();
  pad_images(x, s.n * s.c, s.h, s.w, s.ph, s.pw, xpad);
  // gyT [n * OH * OW][o_pad]: gy's pixels as rows, output channels contiguous (zero past O),
  // transposed in 16 x 16 blocks.
  const CallScratch gyt_scratch(s.n * plane * o_pad);
  float* gyt = gyt_scratch.data();
  const int64_t pixel_blocks = (plane + 15) / 16, channel_blocks = o_pad / 16;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t nb = 0; nb < s.n * pixel_blocks; ++nb) {
    const int64_t n = nb / pixel_blocks, p0 = (nb % pixel_blocks) * 16;
    const int64_t pixels = std::min<int64_t>(16, plane - p0);
    for (int64_t cb = 0; cb < channel_blocks; ++cb) {
      const int64_t o0 = cb * 16;
      __m512 block[16];
      load_transposed(gy + (n * s.o + o0) * plane + p0, plane,
                      std::clamp<int64_t>(s.o - o0, 0, 16), pixels, block);
      for (int64_t j = 0; j < pixels; ++j)
        _mm512_storeu_ps(gyt + (n * plane + p0 + j) * o_pad + o0, block[j]);
    }
  }
  // Partial sums of gW^T, [C][blocks][taps][32] per thread: each thread takes an equal share of
  // the output pixels (rows of the batch), in chunks whose gyT rows (re-read once per input
  // channel) stay in L2; the partials are added in thread order, so the result is the same at a
  // given thread count. (Handing out tiles dynamically instead, each summed over all pixels by
  // one thread, measured 15-25% slower: both cores then stream every chunk.)
  const int64_t tile_size = taps * kBlock, tiles = s.c * blocks;
  const int threads = omp_get_max_threads();
  const size_t stride = static_cast<size_t>(tiles) * tile_size;  // one thread's partials
  float* partial = partial_scratch.get(threads * stride);
  const int64_t total_rows = s.n * oh;
  const int64_t chunk_rows = std::max<int64_t>(1, (256 << 10) / (ow * o_pad * 4));
  const auto tile_fn = s.kh == 3 ? (s.stride == 1 ? &weight_tile<3, 3, 1> : &weight_tile<3, 3, 2>)
                                 : (s.stride == 1 ? &weight_tile<1, 1, 1> : &weight_tile<1, 1, 2>);
  int team = 1;  // the team OpenMP actually gives (smaller inside a parallel region, say)
#pragma omp parallel num_threads(threads) if (parallel)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (t == 0) team = nt;
    const int64_t first = total_rows * t / nt, last = total_rows * (t + 1) / nt;
    float* mine = partial + t * stride;
    if (first == last) std::fill(mine, mine + stride, 0.0f);
    for (int64_t r0 = first; r0 < last; r0 += chunk_rows) {
      const int64_t r1 = std::min(last, r0 + chunk_rows);
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t c = tile / blocks, ob = tile % blocks;
        tile_fn(xpad + c * pad.channel(), image, pad.wp, oh, ow, gyt + ob * kBlock, o_pad, r0, r1,
                mine + tile * tile_size, r0 != first);
      }
    }
  }
  // gW[o][c][t]: the threads' partials added in order, then per (c, 16 channels) one transposed
  // load of taps x 16.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t c = tile / blocks, ob = tile % blocks;
    for (int64_t half = 0; half < 2; ++half) {
      float* sum = partial + tile * tile_size + half * 16;
      for (int64_t tap = 0; tap < taps; ++tap) {
        __m512 v = _mm512_loadu_ps(sum + tap * kBlock);
        for (int th = 1; th < team; ++th) v = _mm512_add_ps(v, _mm512_loadu_ps(sum + th * stride + tap * kBlock));
        _mm512_storeu_ps(sum + tap * kBlock, v);
      }
      const int64_t o0 = ob * kBlock + half * 16;
      const int64_t channels = std::clamp<int64_t>(s.o - o0, 0, 16);
      __m512 block[16];
      load_transposed(sum, kBlock, taps, 16, block);
      const __mmask16 mask = static_cast<__mmask16>((1u << taps) - 1);
      for (int64_t k = 0; k < channels; ++k)
        _mm512_mask_storeu_ps(gw + ((o0 + k) * s.c + c) * taps, mask, block[k]);
    }
  }
}

#endif  // __AVX512F__

}  // namespace diffkd::cpu_impl::conv

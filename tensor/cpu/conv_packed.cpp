// f32 convolution kernels on the AVX-512 packed GEMM (packed_gemm.h).
//
// Stride 1 (every conv of the UNet but its downsamplers, and every stride-1 input gradient):
// forward and weight gradient on a zero-padded copy of the input, where each kernel tap is a
// constant shift, so no im2col is built at all. Other strides: im2col per 32-column panel,
// written in cache right before the micro-kernel consumes it.

#include <algorithm>
#include <cstring>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "tensor/cpu/conv_common.h"
#include "tensor/cpu/conv_direct.h"
#include "tensor/cpu/packed_gemm.h"

namespace diffkd::cpu_impl::conv {

namespace {

namespace packed = cpu_impl::packed;
// im2col of one column panel (kNR output pixels of the batch, starting at column col0) straight
// into the packed B layout, where row r = (c, i, j) is kNR floats. For each kernel tap the
// panel's kNR source offsets (image, ih, iw; -1 in the zero padding) are computed once; every
// channel then reads them with two masked 16-lane gathers.
void im2col_panel(const float* x, const ConvGeometry& g, int64_t col0, int64_t used,
                  float* panel) {
  constexpr int64_t kNR = packed::kNR;
  const int64_t plane = g.plane(), hw = g.h * g.w, taps = g.kh * g.kw;
  alignas(64) int32_t offsets[9 * kNR];
  std::vector<int32_t> large;
  int32_t* off = taps <= 9 ? offsets : (large.resize(taps * kNR), large.data());
  for (int64_t i = 0; i < g.kh; ++i)
    for (int64_t j = 0; j < g.kw; ++j)
      for (int64_t lane = 0; lane < kNR; ++lane) {
        int32_t o = -1;
        if (lane < used) {
          const int64_t jcol = col0 + lane, img = jcol / plane;
          const int64_t oh = (jcol % plane) / g.ow, ow = jcol % g.ow;
          const int64_t ih = oh * g.p.stride_h - g.p.pad_h + i;
          const int64_t iw = ow * g.p.stride_w - g.p.pad_w + j;
          if (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w)
            o = static_cast<int32_t>(img * g.c * hw + ih * g.w + iw);
        }
        off[(i * g.kw + j) * kNR + lane] = o;
      }
#if defined(__AVX512F__)
  const __m512i zero = _mm512_setzero_si512();
  for (int64_t c = 0; c < g.c; ++c) {
    const float* base = x + c * hw;
    for (int64_t t = 0; t < taps; ++t) {
      float* dst = panel + (c * taps + t) * kNR;
      for (int64_t half = 0; half < kNR; half += 16) {
        const __m512i idx = _mm512_loadu_si512(off + t * kNR + half);
        const __mmask16 valid = _mm512_cmpge_epi32_mask(idx, zero);
        _mm512_store_ps(dst + half, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, idx, base, 4));
      }
    }
  }
#else
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t lane = 0; lane < kNR; ++lane) {
        const int32_t o = off[t * kNR + lane];
        panel[(c * taps + t) * kNR + lane] = o >= 0 ? x[c * hw + o] : 0.0f;
      }
#endif
}

// x [N, C, H, W] zero-padded into [N, C, H + 2 ph, W + 2 pw], followed by `slack` zeros.
void pad_input(const float* xp, const ConvGeometry& g, float* xpad, int64_t slack) {
  pad_images(xp, g.n * g.c, g.h, g.w, g.p.pad_h, g.p.pad_w, xpad);
  const int64_t size = g.n * g.c * (g.h + 2 * g.p.pad_h) * (g.w + 2 * g.p.pad_w);
  std::fill(xpad + size, xpad + size + slack, 0.0f);
}

}  // namespace

// Stride-1 forward with no im2col at all. On the zero-padded input (Hp = H + 2 ph rows of
// Wp = W + 2 pw), output pixel (oh, ow) at grid column q = oh * Wp + ow reads tap (i, j) of
// channel c at  xpad[c, q + i * Wp + j]:  each tap is a constant shift of the grid, so the B
// rows of a 32-column panel are read in place (gemm_shifted). Columns with ow >= OW are computed
// and dropped (Wp / OW - 1 extra work: 7% at 28x28, 14% at 14x14, 29% at 7x7).
void conv2d_forward_shifted(const Tensor& x, const Tensor& w, const Tensor& bias,
                            const Tensor& y, const ConvGeometry& g) {
  constexpr int64_t kNR = packed::kNR;
  const int64_t rows = g.col_rows(), taps = g.kh * g.kw;
  const int64_t hp = g.h + 2 * g.p.pad_h, wp = g.w + 2 * g.p.pad_w;
  const int64_t grid = g.oh * wp, panel_count = packed::panels(grid);
  // Every panel may read up to kNR - 1 columns past the grid, plus the largest shift.
  const int64_t channel_size = hp * wp;
  const int64_t image_size = g.c * channel_size;
  const int64_t slack = panel_count * kNR - grid + kNR;
  thread_local Scratch weight_scratch, input_scratch;
  float* packed_w = weight_scratch.get(packed::packed_a_size(g.o, rows));
  packed::pack_a(w.data<float>(), rows, false, g.o, rows, packed_w);
  float* xpad = input_scratch.get(g.n * image_size + slack);
  pad_input(x.data<float>(), g, xpad, slack);
  std::vector<int64_t> offsets(rows);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = r / taps, i = (r % taps) / g.kw, j = r % g.kw;
    offsets[r] = c * channel_size + i * wp + j;
  }
  const float* bp = bias.defined() ? bias.data<float>() : nullptr;
  float* yp = y.data<float>();
  const int64_t plane = g.plane();
  // Work items are (image, panel) pairs, not images, so that a batch of one still uses every
  // thread; a static split keeps each thread on consecutive panels of the same images.
#pragma omp parallel for schedule(static)
  for (int64_t item = 0; item < g.n * panel_count; ++item) {
    const int64_t n = item / panel_count, panel = item % panel_count;
    packed::gemm_shifted(
        g.o, 1, rows, packed_w, xpad + n * image_size + panel * kNR, offsets.data(),
        [&](int64_t o0, int64_t panel_q0, int64_t nr, int64_t, const float* tile) {
          const int64_t q0 = panel * kNR + panel_q0;
          for (int64_t r = 0; r < nr; ++r) {
            const float b = bp ? bp[o0 + r] : 0.0f;
            float* out = yp + (n * g.o + o0 + r) * plane;
            const float* src = tile + r * kNR;
            // Grid columns q0 .. q0 + 31 -> (oh, ow) = (q / wp, q % wp), kept when ow < OW.
            for (int64_t q = q0; q < std::min(q0 + kNR, grid);) {
              const int64_t oh = q / wp, ow = q % wp;
              const int64_t n_cols = std::min(q0 + kNR, (oh + 1) * wp) - q;
              const int64_t keep = std::clamp<int64_t>(g.ow - ow, 0, n_cols);
              for (int64_t t = 0; t < keep; ++t) out[oh * g.ow + ow + t] = src[q - q0 + t] + b;
              q += n_cols;
            }
          }
        });
  }
}

// Forward as an implicit GEMM over column panels of the whole batch: each panel's im2col is
// built in cache right before the micro-kernel consumes it; panels are split across threads.
void conv2d_forward_packed(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& y,
                           const ConvGeometry& g) {
  const int64_t rows = g.col_rows(), plane = g.plane(), total = g.n * plane;
  constexpr int64_t kNR = packed::kNR;
  thread_local Scratch weight_scratch;
  float* packed_w = weight_scratch.get(packed::packed_a_size(g.o, rows));
  packed::pack_a(w.data<float>(), rows, false, g.o, rows, packed_w);
  const float* xp = x.data<float>();
  const float* bp = bias.defined() ? bias.data<float>() : nullptr;
  float* yp = y.data<float>();
  const int64_t panel_count = packed::panels(total);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < panel_count; ++p) {
    const int64_t col0 = p * kNR, used = std::min(kNR, total - col0);
    thread_local Scratch panel_scratch;
    float* panel = panel_scratch.get(rows * kNR);
    im2col_panel(xp, g, col0, used, panel);
    // Tile rows o0.., panel columns -> y[img, o, pixel], in runs that stay within one image.
    packed::gemm(g.o, used, rows, packed_w, panel,
                 [&](int64_t o0, int64_t, int64_t nr, int64_t, const float* tile) {
                   for (int64_t r = 0; r < nr; ++r) {
                     const float b = bp ? bp[o0 + r] : 0.0f;
                     for (int64_t lane = 0; lane < used;) {
                       const int64_t jcol = col0 + lane, img = jcol / plane, pix = jcol % plane;
                       const int64_t n = std::min(used - lane, plane - pix);
                       float* dst = yp + (img * g.o + o0 + r) * plane + pix;
                       const float* src = tile + r * kNR + lane;
                       for (int64_t t = 0; t < n; ++t) dst[t] = src[t] + b;
                       lane += n;
                     }
                   }
                 });
  }
}

#if defined(__AVX512F__)
// Stride-1 weight gradient on the same padded grid as conv2d_forward_shifted, with no im2col:
//   gW[o, (c, i, j)] = sum_n sum_q gy_grid[n, o, q] * xpad[n, c, q + i * Wp + j]
// where gy_grid is gy laid out on the grid (OH rows of Wp, zero in the columns ow >= OW).
// Each entry is a dot product along q of two contiguous rows. A register block of 4 output
// channels x 5 taps keeps 20 vector accumulators (5 input vectors and one gy vector besides: 26
// of the 32 registers); images are taken in chunks that fit in cache,
// with the block's 16-lane partial sums parked in memory between chunks and reduced at the end.
// Images are split across threads; the per-thread sums are added in thread order.
void conv2d_backward_weight_shifted(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                    const ConvGeometry& g) {
  constexpr int64_t kO = 4, kR = 5, kLanes = 16;
  const int64_t rows = g.col_rows(), taps = g.kh * g.kw;
  const int64_t hp = g.h + 2 * g.p.pad_h, wp = g.w + 2 * g.p.pad_w;
  const int64_t channel_size = hp * wp, image_size = g.c * channel_size;
  const int64_t grid = g.oh * wp, grid_pad = (grid + kLanes - 1) / kLanes * kLanes;
  const int64_t o_pad = (g.o + kO - 1) / kO * kO, r_pad = (rows + kR - 1) / kR * kR;
  const int64_t slack = grid_pad + channel_size;  // reads run past the last image's grid
  thread_local Scratch input_scratch, gy_scratch, lane_scratch;
  float* xpad = input_scratch.get(g.n * image_size + slack);
  pad_input(x.data<float>(), g, xpad, slack);
  // gy on the grid: [N, o_pad, grid_pad], zeros outside the OH x OW pixels.
  float* gyg = gy_scratch.get(g.n * o_pad * grid_pad);
  const float* gyp = gy.data<float>();
#pragma omp parallel for schedule(static)
  for (int64_t no = 0; no < g.n * o_pad; ++no) {
    float* dst = gyg + no * grid_pad;
    std::fill(dst, dst + grid_pad, 0.0f);
    const int64_t n = no / o_pad, o = no % o_pad;
    if (o >= g.o) continue;
    const float* src = gyp + (n * g.o + o) * g.plane();
    for (int64_t oh = 0; oh < g.oh; ++oh) std::copy(src + oh * g.ow, src + (oh + 1) * g.ow, dst + oh * wp);
  }
  std::vector<int64_t> offsets(r_pad, 0);  // padded taps read row 0 and are dropped
  for (int64_t r = 0; r < rows; ++r)
    offsets[r] = (r / taps) * channel_size + ((r % taps) / g.kw) * wp + r % g.kw;

  const int threads = omp_get_max_threads();
  const int64_t blocks_o = o_pad / kO, blocks_r = r_pad / kR;
  // Per-thread 16-lane partial sums, [o_pad][r_pad][16] (each thread starts from zero in
  // registers, so the buffer needs no clearing; a thread without images clears its share).
  float* lanes = lane_scratch.get(static_cast<size_t>(threads) * o_pad * r_pad * kLanes);
  // Images per cache chunk: their padded input and gy rows in about 512 KiB.
  const int64_t per_image = (image_size + o_pad * grid_pad) * 4;
  const int64_t chunk = std::max<int64_t>(1, (512 << 10) / per_image);
  int team = 1;  // the team OpenMP actually gives (smaller inside a parallel region, say)
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    if (t == 0) team = nt;
    const int64_t first = g.n * t / nt, last = g.n * (t + 1) / nt;
    float* acc = lanes + static_cast<size_t>(t) * o_pad * r_pad * kLanes;
    if (first == last) std::fill(acc, acc + o_pad * r_pad * kLanes, 0.0f);
    for (int64_t c0 = first; c0 < last; c0 += chunk) {
      const int64_t c1 = std::min(last, c0 + chunk);
      for (int64_t bo = 0; bo < blocks_o; ++bo)
        for (int64_t br = 0; br < blocks_r; ++br) {
          __m512 sum[kO][kR];
#pragma GCC unroll 8
          for (int64_t a = 0; a < kO; ++a)
#pragma GCC unroll 8
            for (int64_t b = 0; b < kR; ++b)
              sum[a][b] = c0 == first ? _mm512_setzero_ps()
                                      : _mm512_loadu_ps(acc + ((bo * kO + a) * r_pad + br * kR + b) * kLanes);
          for (int64_t n = c0; n < c1; ++n) {
            const float* gyn = gyg + (n * o_pad + bo * kO) * grid_pad;
            const float* xn = xpad + n * image_size;
            const float* xr[kR];
#pragma GCC unroll 8
            for (int64_t b = 0; b < kR; ++b) xr[b] = xn + offsets[br * kR + b];
            for (int64_t q = 0; q < grid_pad; q += kLanes) {
              // kR input vectors stay in registers; each gy vector is loaded once and used kR
              // times: kO + kR loads for kO * kR multiply-adds.
              __m512 xv[kR];
#pragma GCC unroll 8
              for (int64_t b = 0; b < kR; ++b) xv[b] = _mm512_loadu_ps(xr[b] + q);
#pragma GCC unroll 8
              for (int64_t a = 0; a < kO; ++a) {
                const __m512 gv = _mm512_loadu_ps(gyn + a * grid_pad + q);
#pragma GCC unroll 8
                for (int64_t b = 0; b < kR; ++b) sum[a][b] = _mm512_fmadd_ps(gv, xv[b], sum[a][b]);
              }
            }
          }
#pragma GCC unroll 8
          for (int64_t a = 0; a < kO; ++a)
#pragma GCC unroll 8
            for (int64_t b = 0; b < kR; ++b)
              _mm512_storeu_ps(acc + ((bo * kO + a) * r_pad + br * kR + b) * kLanes, sum[a][b]);
        }
    }
  }
  // Threads' partials in thread order, then the 16 lanes: a fixed order, so deterministic. Only
  // the team's slots were written; slots beyond it hold stale sums from an earlier call.
  float* gwp = gw.data<float>();
  const size_t thread_stride = static_cast<size_t>(o_pad) * r_pad * kLanes;
#pragma omp parallel for schedule(static)
  for (int64_t o = 0; o < g.o; ++o)
    for (int64_t r = 0; r < rows; ++r) {
      const float* v = lanes + (o * r_pad + r) * kLanes;
      __m512 total = _mm512_loadu_ps(v);
      for (int t = 1; t < team; ++t) total = _mm512_add_ps(total, _mm512_loadu_ps(v + t * thread_stride));
      gwp[o * rows + r] = _mm512_reduce_add_ps(total);
    }
}
#endif

// gW^T [K, O] = col [K, cols] @ gy_group^T [cols, O], summed over groups into per-thread
// partials (added in thread order afterwards).
void conv2d_backward_weight_packed(const Tensor& x, const Tensor& gy, const Tensor& gw,
                                   const ConvGeometry& g, const Grouping& grp) {
  const int64_t rows = g.col_rows(), plane = g.plane(), wsize = g.o * rows;
  const float* xp = x.data<float>();
  const float* gyp = gy.data<float>();
  const int threads = omp_get_max_threads();
  std::vector<float> partial(static_cast<size_t>(threads) * wsize, 0.0f);
#pragma omp parallel for schedule(static) num_threads(threads) if (grp.count > 1)
  for (int64_t gi = 0; gi < grp.count; ++gi) {
    const int64_t first = gi * grp.size, images = std::min(grp.size, g.n - first);
    const int64_t cols = images * plane;
    thread_local Scratch col_scratch, gy_scratch, pa_scratch, pb_scratch;
    float* col = col_scratch.get(rows * cols);
    float* gy_group = gy_scratch.get(g.o * cols);
    float* packed_col = pa_scratch.get(packed::packed_a_size(rows, cols));
    float* packed_gy = pb_scratch.get(packed::packed_b_size(cols, g.o));
    for (int64_t img = 0; img < images; ++img)
      im2col(xp + (first + img) * g.c * g.h * g.w, g, col + img * plane, cols);
    gather_group(gyp + first * g.o * plane, images, g.o, plane, gy_group);
    packed::pack_a(col, cols, false, rows, cols, packed_col);
    packed::pack_b_transposed(gy_group, cols, cols, g.o, packed_gy);
    float* acc = partial.data() + omp_get_thread_num() * wsize;
    packed::gemm(rows, g.o, cols, packed_col, packed_gy,
                 [&](int64_t r0, int64_t o0, int64_t nr, int64_t nc, const float* tile) {
                   for (int64_t r = 0; r < nr; ++r)
                     for (int64_t c = 0; c < nc; ++c)
                       acc[(o0 + c) * rows + r0 + r] += tile[r * packed::kNR + c];
                 });
  }
  float* gwp = gw.data<float>();
  std::fill(gwp, gwp + wsize, 0.0f);
  for (int t = 0; t < threads; ++t)
    for (int64_t i = 0; i < wsize; ++i) gwp[i] += partial[t * wsize + i];
}

}  // namespace diffkd::cpu_impl::conv

// conv2d on the CPU by im2col + GEMM (NCHW, weight [C_out, C_in, kh, kw]).
//
//   col[(c*kh + i)*kw + j, oh*OW + ow] = x[c, oh*sh - ph + i, ow*sw - pw + j]   (0 outside)
//   forward:          y[n]  = W @ col(x[n]) + b             W viewed as [C_out, C_in*kh*kw]
//   backward input:   gx[n] = col2im(W^T @ gy[n])           (also conv_transpose2d's forward)
//   backward weight:  gW    = sum_n gy[n] @ col(x[n])^T
//
// Images are processed in groups of G, side by side along the GEMM's column dim
// (col is [C_in*kh*kw, G*OH*OW]): with small feature maps (7x7 = 49 columns per image) one image
// makes a GEMM too thin to run near peak. G is chosen so a group has about kGroupColumns
// columns and there are at least as many groups as threads; groups run in parallel, each GEMM on
// one thread. The weight gradient sums per-thread partials in thread order, so it is
// deterministic at a given thread count.

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "tensor/cpu/blas.h"
#include "tensor/cpu/conv_common.h"
#include "tensor/cpu/conv_direct.h"
#include "tensor/cpu/conv_winograd.h"
#include "tensor/cpu/packed_weight_cache.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/packed_gemm.h"

namespace diffkd {

namespace {

using namespace cpu_impl::conv;
namespace packed = cpu_impl::packed;

// Adjoint of im2col: x += scatter(col), for one image's columns.
template <typename T>
void col2im(const T* col, int64_t ld, const ConvGeometry& g, T* x) {
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * ld;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.p.stride_h - g.p.pad_h + i;
          if (ih < 0 || ih >= g.h) continue;
          T* out = x + (c * g.h + ih) * g.w;
          const T* in = row + oh * g.ow;
          if (g.p.stride_w == 1) {
            const int64_t lo = std::clamp<int64_t>(g.p.pad_w - j, 0, g.ow);
            const int64_t hi = std::clamp<int64_t>(g.w + g.p.pad_w - j, lo, g.ow);
            T* dst = out - g.p.pad_w + j;
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] += in[ow];
          } else {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
              const int64_t iw = ow * g.p.stride_w - g.p.pad_w + j;
              if (iw >= 0 && iw < g.w) out[iw] += in[ow];
            }
          }
        }
      }
}

template <typename T>
void scatter_group(const T* src, int64_t images, int64_t rows, int64_t plane, T* dst) {
  for (int64_t img = 0; img < images; ++img)
    for (int64_t r = 0; r < rows; ++r)
      std::copy(src + r * images * plane + img * plane, src + r * images * plane + (img + 1) * plane,
                dst + (img * rows + r) * plane);
}

// Runs body(group_index, first_image, images, scratch) over all groups, in parallel.
template <typename T, typename Body>
void for_each_group(const Grouping& grp, int64_t n, Body body) {
#pragma omp parallel for schedule(static) if (grp.count > 1)
  for (int64_t gi = 0; gi < grp.count; ++gi) {
    const int64_t first = gi * grp.size;
    body(first, std::min(grp.size, n - first));
  }
}

#if defined(__AVX512F__)
// The direct kernels (conv_direct.h) take convs of stride 1 or 2 (the same along both axes) with
// at least 16 output channels (with fewer, most of their 32 vector lanes would multiply padding:
// the UNet's last conv has 1-3) and kernels of at most 16 taps.
bool direct_applies(const ConvGeometry& g) {
  return g.p.stride_h == g.p.stride_w && (g.p.stride_h == 1 || g.p.stride_h == 2) && g.o >= 16 &&
         g.kh * g.kw <= 16;
}

// The packed-weight cache's name for pack_weight_direct's layout.
constexpr int kDirectLayout = 1;

DirectShape direct_shape(const ConvGeometry& g) {
  return {g.n, g.c, g.h, g.w, g.o, g.kh, g.kw, g.p.pad_h, g.p.pad_w, g.p.stride_h};
}

// Winograd F(2x2, 3x3) (conv_winograd.h) instead of the direct kernel, by the rule measured with
// BM_Conv2dWinogradRule (bench/RESULTS.md): 3x3 stride 1 with at least 128 input and output
// channels (below, its transforms cost more than the 2.25x fewer multiplies save: MNIST's 32-128
// channel convs run 1.0-2.5x slower on it), at least 64 tiles of 2x2 outputs (2 GEMM panels; a
// batch-1 8x8 or 4x4 map leaves most of its one panel empty: 0.8x and 0.25x), at most 20% of
// the tiles' outputs outside the map (odd sizes: 7x7 was 0.9-1.0x), and rows that the direct
// kernel does not cut into full 14-column strips: with those it runs at 87-90% of the peak and
// wins (c128 14x14: Winograd 0.83x at 2 threads), where at 32, 16 and 8 columns (strips of 11,
// 8 and 8) Winograd is 1.2-1.7x faster.
bool winograd_applies(const ConvGeometry& g) {
  if (g.kh != 3 || g.kw != 3 || g.p.stride_h != 1 || g.p.stride_w != 1 || g.c < 128 || g.o < 128) return false;
  if (g.p.pad_h > 2 || g.p.pad_w > 2 || g.ow % 14 == 0) return false;
  const int64_t th = (g.oh + 1) / 2, tw = (g.ow + 1) / 2;
  return g.n * th * tw >= 64 && 4 * th * tw * 5 <= 6 * g.oh * g.ow;
}

constexpr int kWinogradLayout = 2;  // the packed-weight cache's name for pack_weight_winograd's

WinogradShape winograd_shape(const ConvGeometry& g) {
  return {g.n, g.c, g.h, g.w, g.o, g.p.pad_h, g.p.pad_w};
}
// A conv's packed weight: from the packed-weight cache when the caller reuses the weight across
// calls (inference; `cached` keeps that copy alive for the call), else packed afresh into this
// thread's scratch.
template <typename Pack>
const float* packed_weight(const Tensor& w, bool reuse, int layout, size_t floats, Pack&& pack,
                           std::shared_ptr<const std::vector<float>>& cached) {
  if (reuse) {
    cached = cpu_impl::packed_weight_cache().get(w, layout, floats, pack);
    return cached->data();
  }
  thread_local Scratch weight_scratch;
  float* buffer = weight_scratch.get(floats);
  pack(buffer);
  return buffer;
}
#endif

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                                const Tensor& y, const Conv2dParams& p) {
  if (y.numel() == 0) return;  // an empty batch
  const Tensor x = contiguous_or_copy(x_in), w = contiguous_or_copy(w_in);
  const Tensor bias = contiguous_or_copy(bias_in);
  const ConvGeometry g = geometry(x, w, y, p);
  const Grouping grp = grouping(g);
#if defined(__AVX512F__)
  if (x.dtype() == DType::F32 && winograd_applies(g)) {
    const float* wp = w.data_for_reading<float>();  // without advancing its version (the cache key)
    std::shared_ptr<const std::vector<float>> cached;
    const float* packed_w = packed_weight(
        w, p.reuse_packed_weight && w_in.is_contiguous(), kWinogradLayout,
        winograd_weight_size(g.o, g.c),
        [&](float* dst) { pack_weight_winograd(wp, g.o, g.c, false, dst); }, cached);
    conv2d_winograd(x.data_for_reading<float>(), packed_w,
                    bias.defined() ? bias.data_for_reading<float>() : nullptr, y.data<float>(),
                    winograd_shape(g));
    return;
  }
  if (x.dtype() == DType::F32 && direct_applies(g)) {
    const float* wp = w.data_for_reading<float>();  // without advancing its version (the cache key)
    std::shared_ptr<const std::vector<float>> cached;
    const float* packed_w = packed_weight(
        w, p.reuse_packed_weight && w_in.is_contiguous(), kDirectLayout,
        packed_weight_direct_size(g.o, g.c, g.kh, g.kw),
        [&](float* dst) { pack_weight_direct(wp, g.o, g.c, g.kh, g.kw, false, dst); }, cached);
    conv2d_direct(x.data_for_reading<float>(), packed_w,
                  bias.defined() ? bias.data_for_reading<float>() : nullptr, y.data<float>(),
                  direct_shape(g));
    return;
  }
#endif
  if (x.dtype() == DType::F32 && packed::available()) {
    if (p.stride_h == 1 && p.stride_w == 1) conv2d_forward_shifted(x, w, bias, y, g);
    else conv2d_forward_packed(x, w, bias, y, g);
    return;
  }
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;
    T* yp = y.data<T>();
    const int64_t rows = g.col_rows(), plane = g.plane();
    for_each_group<T>(grp, g.n, [&](int64_t first, int64_t images) {
      const int64_t cols = images * plane;
      thread_local std::vector<T> col, out;
      col.resize(rows * cols);
      out.resize(g.o * cols);
      for (int64_t img = 0; img < images; ++img)
        im2col(xp + (first + img) * g.c * g.h * g.w, g, col.data() + img * plane, cols);
      T beta = T(0);
      if (bp != nullptr) {
        for (int64_t o = 0; o < g.o; ++o) std::fill(out.data() + o * cols, out.data() + (o + 1) * cols, bp[o]);
        beta = T(1);
      }
      cpu_impl::gemm_rowmajor<T>(false, false, g.o, cols, rows, T(1), wp, rows, col.data(), cols,
                                 beta, out.data(), cols);
      scatter_group(out.data(), images, g.o, plane, yp + first * g.o * plane);
    });
  });
}

void CpuBackend::conv2d_backward_input(const Tensor& gy_in, const Tensor& w_in, const Tensor& gx,
                                       const Conv2dParams& p) {
  DK_CHECK(gx.is_contiguous(), "conv2d_backward_input: output must be contiguous");
  if (gx.numel() == 0) return;  // an empty batch
  const Tensor gy = contiguous_or_copy(gy_in), w = contiguous_or_copy(w_in);
  const int64_t kh = w.size(2), kw = w.size(3);
  if (p.stride_h == 1 && p.stride_w == 1 && p.pad_h < kh && p.pad_w < kw) {
#if defined(__AVX512F__)
    // The transposed, flipped kernel is packed straight from w (no intermediate copy).
    const ConvGeometry gt = geometry(gy, w, gx, {1, 1, kh - 1 - p.pad_h, kw - 1 - p.pad_w});
    const ConvGeometry transposed{gt.n, gt.c, gt.h, gt.w, w.size(1), kh, kw, gt.oh, gt.ow, gt.p};
    if (gx.dtype() == DType::F32 && winograd_applies(transposed)) {
      thread_local Scratch weight_scratch;
      float* packed_w = weight_scratch.get(winograd_weight_size(w.size(1), w.size(0)));
      pack_weight_winograd(w.data_for_reading<float>(), w.size(1), w.size(0), true, packed_w);
      conv2d_winograd(gy.data_for_reading<float>(), packed_w, nullptr, gx.data<float>(),
                      winograd_shape(transposed));
      return;
    }
    if (gx.dtype() == DType::F32 && direct_applies(transposed)) {
      thread_local Scratch weight_scratch;
      float* packed_w = weight_scratch.get(packed_weight_direct_size(w.size(1), w.size(0), kh, kw));
      pack_weight_direct(w.data_for_reading<float>(), w.size(1), w.size(0), kh, kw, true, packed_w);
      conv2d_direct(gy.data_for_reading<float>(), packed_w, nullptr, gx.data<float>(),
                    direct_shape(transposed));
      return;
    }
#endif
    // Stride 1: the input gradient is a forward convolution of gy with the weight transposed
    // in its channel dims and flipped in space, padded by k - 1 - p. That path copies (im2col)
    // instead of scatter-adding (col2im), which is cheaper.
    Tensor flipped = Tensor::empty({w.size(1), w.size(0), kh, kw}, w.dtype(), w.device());
    dispatch_float(w.dtype(), "conv2d_backward_input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* src = w.data<T>();
      T* dst = flipped.data<T>();
      const int64_t o_n = w.size(0), c_n = w.size(1);
      for (int64_t o = 0; o < o_n; ++o)
        for (int64_t c = 0; c < c_n; ++c)
          for (int64_t i = 0; i < kh; ++i)
            for (int64_t j = 0; j < kw; ++j)
              dst[((c * o_n + o) * kh + i) * kw + j] =
                  src[((o * c_n + c) * kh + (kh - 1 - i)) * kw + (kw - 1 - j)];
    });
    conv2d_forward(gy, flipped, Tensor(), gx, {1, 1, kh - 1 - p.pad_h, kw - 1 - p.pad_w});
    return;
  }
  const ConvGeometry g = geometry(gx, w, gy, p);
  const Grouping grp = grouping(g);
  dispatch_float(gx.dtype(), "conv2d_backward_input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* gyp = gy.data<T>();
    const T* wp = w.data<T>();
    T* gxp = gx.data<T>();
    const int64_t rows = g.col_rows(), plane = g.plane(), image = g.c * g.h * g.w;
    for_each_group<T>(grp, g.n, [&](int64_t first, int64_t images) {
      const int64_t cols = images * plane;
      thread_local std::vector<T> col, gy_group;
      col.resize(rows * cols);
      gy_group.resize(g.o * cols);
      gather_group(gyp + first * g.o * plane, images, g.o, plane, gy_group.data());
      cpu_impl::gemm_rowmajor<T>(true, false, rows, cols, g.o, T(1), wp, rows, gy_group.data(),
                                 cols, T(0), col.data(), cols);
      std::fill(gxp + first * image, gxp + (first + images) * image, T(0));
      for (int64_t img = 0; img < images; ++img)
        col2im(col.data() + img * plane, cols, g, gxp + (first + img) * image);
    });
  });
}

void CpuBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& gy_in, const Tensor& gw,
                                        const Conv2dParams& p) {
  DK_CHECK(gw.is_contiguous(), "conv2d_backward_weight: output must be contiguous");
  if (gy_in.numel() == 0) {  // an empty batch contributes nothing
    fill(gw, 0.0);
    return;
  }
  const Tensor x = contiguous_or_copy(x_in), gy = contiguous_or_copy(gy_in);
  const ConvGeometry g = geometry(x, gw, gy, p);
  const Grouping grp = grouping(g);
#if defined(__AVX512F__)
  if (x.dtype() == DType::F32 && direct_applies(g) && conv2d_weight_direct_supports(g.kh, g.kw)) {
    conv2d_weight_direct(x.data<float>(), gy.data<float>(), gw.data<float>(), direct_shape(g));
    return;
  }
  // On small maps the grid's padding columns and the short dot products cost more than the
  // im2col they save (measured: 7x7 slower, 14x14 and 28x28 faster).
  if (x.dtype() == DType::F32 && p.stride_h == 1 && p.stride_w == 1 && g.ow >= 12) {
    conv2d_backward_weight_shifted(x, gy, gw, g);
    return;
  }
#endif
  if (x.dtype() == DType::F32 && packed::available()) {
    conv2d_backward_weight_packed(x, gy, gw, g, grp);
    return;
  }
  dispatch_float(gw.dtype(), "conv2d_backward_weight", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    const T* gyp = gy.data<T>();
    const int64_t rows = g.col_rows(), plane = g.plane(), wsize = g.o * rows;
    const int threads = omp_get_max_threads();
    std::vector<T> partial(static_cast<size_t>(threads) * wsize, T(0));
#pragma omp parallel for schedule(static) num_threads(threads) if (grp.count > 1)
    for (int64_t gi = 0; gi < grp.count; ++gi) {
      const int64_t first = gi * grp.size, images = std::min(grp.size, g.n - first);
      const int64_t cols = images * plane;
      thread_local std::vector<T> col, gy_group;
      col.resize(rows * cols);
      gy_group.resize(g.o * cols);
      for (int64_t img = 0; img < images; ++img)
        im2col(xp + (first + img) * g.c * g.h * g.w, g, col.data() + img * plane, cols);
      gather_group(gyp + first * g.o * plane, images, g.o, plane, gy_group.data());
      // partial[thread] += gy_group @ col^T
      cpu_impl::gemm_rowmajor<T>(false, true, g.o, rows, cols, T(1), gy_group.data(), cols,
                                 col.data(), cols, T(1),
                                 partial.data() + omp_get_thread_num() * wsize, rows);
    }
    T* gwp = gw.data<T>();
    std::fill(gwp, gwp + wsize, T(0));
    for (int t = 0; t < threads; ++t)
      for (int64_t i = 0; i < wsize; ++i) gwp[i] += partial[t * wsize + i];
  });
}

}  // namespace diffkd

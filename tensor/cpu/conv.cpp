// conv2d on the CPU by im2col + GEMM (NCHW, weight [C_out, C_in, kh, kw]).
//
//   col[(c*kh + i)*kw + j, oh*OW + ow] = x[c, oh*sh - ph + i, ow*sw - pw + j]   (0 outside)
//   forward:          y[n]  = W @ col(x[n]) + b             W viewed as [C_out, C_in*kh*kw]
//   backward input:   gx[n] = col2im(W^T @ gy[n])           (also conv_transpose2d's forward)
//   backward weight:  gW    = sum_n gy[n] @ col(x[n])^T
//
// With at least as many images as threads, images are split across threads (one GEMM per image
// on one thread, per-thread col buffers); otherwise images go one by one through a threaded GEMM.
// 1x1 stride-1 unpadded convolutions skip im2col: col(x[n]) is x[n] itself.

#include <omp.h>

#include <cstring>
#include <vector>

#include "tensor/cpu/blas.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {

struct ConvGeometry {
  int64_t n, c, h, w;        // input
  int64_t o, kh, kw;         // weight
  int64_t oh, ow;            // output
  Conv2dParams p;
  int64_t col_rows() const { return c * kh * kw; }
  int64_t col_cols() const { return oh * ow; }
  bool is_pointwise() const {
    return kh == 1 && kw == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
  }
};

ConvGeometry geometry(const Tensor& x, const Tensor& w, const Tensor& y, const Conv2dParams& p) {
  return {x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), w.size(3),
          y.size(2), y.size(3), p};
}

template <typename T>
void im2col(const T* x, const ConvGeometry& g, T* col) {
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        T* row = col + ((c * g.kh + i) * g.kw + j) * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.p.stride_h - g.p.pad_h + i;
          T* out = row + oh * g.ow;
          if (ih < 0 || ih >= g.h) {
            std::memset(out, 0, sizeof(T) * g.ow);
            continue;
          }
          const T* in = x + (c * g.h + ih) * g.w;
          if (g.p.stride_w == 1) {
            // Valid ow range: 0 <= ow - pw + j < W.
            const int64_t lo = std::max<int64_t>(0, g.p.pad_w - j);
            const int64_t hi = std::min<int64_t>(g.ow, g.w + g.p.pad_w - j);
            for (int64_t ow = 0; ow < lo; ++ow) out[ow] = T(0);
            if (hi > lo) std::memcpy(out + lo, in + lo - g.p.pad_w + j, sizeof(T) * (hi - lo));
            for (int64_t ow = std::max(hi, lo); ow < g.ow; ++ow) out[ow] = T(0);
          } else {
            for (int64_t ow = 0; ow < g.ow; ++ow) {
              const int64_t iw = ow * g.p.stride_w - g.p.pad_w + j;
              out[ow] = (iw >= 0 && iw < g.w) ? in[iw] : T(0);
            }
          }
        }
      }
}

// Adjoint of im2col: x += scatter(col).
template <typename T>
void col2im(const T* col, const ConvGeometry& g, T* x) {
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const T* row = col + ((c * g.kh + i) * g.kw + j) * g.oh * g.ow;
        for (int64_t oh = 0; oh < g.oh; ++oh) {
          const int64_t ih = oh * g.p.stride_h - g.p.pad_h + i;
          if (ih < 0 || ih >= g.h) continue;
          T* out = x + (c * g.h + ih) * g.w;
          const T* in = row + oh * g.ow;
          for (int64_t ow = 0; ow < g.ow; ++ow) {
            const int64_t iw = ow * g.p.stride_w - g.p.pad_w + j;
            if (iw >= 0 && iw < g.w) out[iw] += in[ow];
          }
        }
      }
}

bool split_images(int64_t n) { return n >= omp_get_max_threads() && omp_get_max_threads() > 1; }

}  // namespace

void CpuBackend::conv2d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in,
                                const Tensor& y, const Conv2dParams& p) {
  const Tensor x = x_in.is_contiguous() ? x_in : x_in.clone_data();
  const Tensor bias = !bias_in.defined() || bias_in.is_contiguous() ? bias_in : bias_in.clone_data();
  const Tensor w = w_in.is_contiguous() ? w_in : w_in.clone_data();
  const ConvGeometry g = geometry(x, w, y, p);
  dispatch_float(x.dtype(), "conv2d", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    const T* wp = w.data<T>();
    const T* bp = bias.defined() ? bias.data<T>() : nullptr;
    T* yp = y.data<T>();
    const int64_t rows = g.col_rows(), cols = g.col_cols();
    auto image = [&](int64_t n, std::vector<T>& col) {
      const T* src = xp + n * g.c * g.h * g.w;
      if (!g.is_pointwise()) {
        im2col(src, g, col.data());
        src = col.data();
      }
      T* dst = yp + n * g.o * cols;
      T beta = T(0);
      if (bp != nullptr) {
        for (int64_t o = 0; o < g.o; ++o) std::fill(dst + o * cols, dst + (o + 1) * cols, bp[o]);
        beta = T(1);
      }
      cpu_impl::gemm_rowmajor<T>(false, false, g.o, cols, rows, T(1), wp, rows, src, cols, beta, dst,
                            cols);
    };
    const size_t col_size = g.is_pointwise() ? 0 : rows * cols;
    if (split_images(g.n)) {
#pragma omp parallel
      {
        std::vector<T> col(col_size);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g.n; ++n) image(n, col);
      }
    } else {
      std::vector<T> col(col_size);
      for (int64_t n = 0; n < g.n; ++n) image(n, col);
    }
  });
}

void CpuBackend::conv2d_backward_input(const Tensor& gy_in, const Tensor& w_in, const Tensor& gx,
                                       const Conv2dParams& p) {
  const Tensor gy = gy_in.is_contiguous() ? gy_in : gy_in.clone_data();
  const Tensor w = w_in.is_contiguous() ? w_in : w_in.clone_data();
  DK_CHECK(gx.is_contiguous(), "conv2d_backward_input: output must be contiguous");
  const ConvGeometry g = geometry(gx, w, gy, p);
  dispatch_float(gx.dtype(), "conv2d_backward_input", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* gyp = gy.data<T>();
    const T* wp = w.data<T>();
    T* gxp = gx.data<T>();
    const int64_t rows = g.col_rows(), cols = g.col_cols();
    auto image = [&](int64_t n, std::vector<T>& col) {
      T* dst = gxp + n * g.c * g.h * g.w;
      const T* src = gyp + n * g.o * cols;
      if (g.is_pointwise()) {  // gx[n] = W^T @ gy[n] directly
        cpu_impl::gemm_rowmajor<T>(true, false, rows, cols, g.o, T(1), wp, rows, src, cols, T(0), dst,
                              cols);
        return;
      }
      cpu_impl::gemm_rowmajor<T>(true, false, rows, cols, g.o, T(1), wp, rows, src, cols, T(0),
                            col.data(), cols);
      std::fill(dst, dst + g.c * g.h * g.w, T(0));
      col2im(col.data(), g, dst);
    };
    const size_t col_size = g.is_pointwise() ? 0 : rows * cols;
    if (split_images(g.n)) {
#pragma omp parallel
      {
        std::vector<T> col(col_size);
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g.n; ++n) image(n, col);
      }
    } else {
      std::vector<T> col(col_size);
      for (int64_t n = 0; n < g.n; ++n) image(n, col);
    }
  });
}

void CpuBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& gy_in, const Tensor& gw,
                                        const Conv2dParams& p) {
  const Tensor x = x_in.is_contiguous() ? x_in : x_in.clone_data();
  const Tensor gy = gy_in.is_contiguous() ? gy_in : gy_in.clone_data();
  DK_CHECK(gw.is_contiguous(), "conv2d_backward_weight: output must be contiguous");
  const ConvGeometry g = geometry(x, gw, gy, p);
  dispatch_float(gw.dtype(), "conv2d_backward_weight", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    const T* gyp = gy.data<T>();
    const int64_t rows = g.col_rows(), cols = g.col_cols();
    const int64_t wsize = g.o * rows;
    // acc += gy[n] @ col(x[n])^T
    auto image = [&](int64_t n, std::vector<T>& col, T* acc) {
      const T* src = xp + n * g.c * g.h * g.w;
      if (!g.is_pointwise()) {
        im2col(src, g, col.data());
        src = col.data();
      }
      cpu_impl::gemm_rowmajor<T>(false, true, g.o, rows, cols, T(1), gyp + n * g.o * cols, cols, src,
                            cols, T(1), acc, rows);
    };
    const size_t col_size = g.is_pointwise() ? 0 : rows * cols;
    T* gwp = gw.data<T>();
    std::fill(gwp, gwp + wsize, T(0));
    if (split_images(g.n)) {
      // Per-thread partial sums, added in thread order: deterministic at a given thread count.
      const int threads = omp_get_max_threads();
      std::vector<T> partial(static_cast<size_t>(threads) * wsize, T(0));
#pragma omp parallel num_threads(threads)
      {
        std::vector<T> col(col_size);
        T* acc = partial.data() + omp_get_thread_num() * wsize;
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g.n; ++n) image(n, col, acc);
      }
      for (int t = 0; t < threads; ++t)
        for (int64_t i = 0; i < wsize; ++i) gwp[i] += partial[t * wsize + i];
    } else {
      std::vector<T> col(col_size);
      for (int64_t n = 0; n < g.n; ++n) image(n, col, gwp);
    }
  });
}

}  // namespace diffkd

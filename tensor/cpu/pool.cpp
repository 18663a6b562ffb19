// Pooling and resampling on the CPU (NCHW): average and max pooling, nearest upsampling and
// bilinear resize (align_corners=False), each with its backward. Loops run over (n, c) planes
// in parallel; within a plane they read like the definition.

#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/resample_math.h"

namespace diffkd {

namespace {

Tensor contiguous_or_copy(const Tensor& t) { return t.is_contiguous() ? t : t.clone_data(); }

int64_t planes(const Tensor& t) { return t.size(0) * t.size(1); }

std::vector<resample::BilinearTap> bilinear_taps(int64_t in, int64_t out) {
  std::vector<resample::BilinearTap> taps(out);
  for (int64_t d = 0; d < out; ++d) taps[d] = resample::bilinear_tap(d, in, out);
  return taps;
}

}  // namespace

void CpuBackend::avg_pool2d(const Tensor& x_in, const Tensor& out, const Pool2dParams& p) {
  const Tensor x = contiguous_or_copy(x_in);
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  dispatch_float(x.dtype(), "avg_pool2d", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    const T inv = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);  // count_include_pad=True
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(x); ++pl)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          T s = 0;
          for (int64_t i = 0; i < p.kernel_h; ++i)
            for (int64_t j = 0; j < p.kernel_w; ++j) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) s += xp[(pl * H + ih) * W + iw];
            }
          op[(pl * OH + oh) * OW + ow] = s * inv;
        }
  });
}

void CpuBackend::avg_pool2d_backward(const Tensor& gy_in, const Tensor& gx, const Pool2dParams& p) {
  const Tensor gy = contiguous_or_copy(gy_in);
  const int64_t H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  dispatch_float(gx.dtype(), "avg_pool2d_backward", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* gyp = gy.data<T>();
    T* gxp = gx.data<T>();
    const T inv = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(gx); ++pl) {
      // Each input's output gradients summed, then divided once (as the GPU's gather,
      // tensor/pool_backward_math.h: a product inside the sum would round as the compiler fuses it).
      std::fill(gxp + pl * H * W, gxp + (pl + 1) * H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const T g = gyp[(pl * OH + oh) * OW + ow];
          for (int64_t i = 0; i < p.kernel_h; ++i)
            for (int64_t j = 0; j < p.kernel_w; ++j) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
              if (ih >= 0 && ih < H && iw >= 0 && iw < W) gxp[(pl * H + ih) * W + iw] += g;
            }
        }
      for (int64_t k = pl * H * W; k < (pl + 1) * H * W; ++k) gxp[k] *= inv;
    }
  });
}

void CpuBackend::max_pool2d(const Tensor& x_in, const Tensor& out, const Tensor& indices,
                            const Pool2dParams& p) {
  const Tensor x = contiguous_or_copy(x_in);
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  dispatch_float(x.dtype(), "max_pool2d", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
    int64_t* ip = indices.data<int64_t>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(x); ++pl)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          T best = -std::numeric_limits<T>::infinity();
          int64_t arg = -1;
          for (int64_t i = 0; i < p.kernel_h; ++i)
            for (int64_t j = 0; j < p.kernel_w; ++j) {
              const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
              if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
              const T v = xp[(pl * H + ih) * W + iw];
              if (arg < 0 || v > best || std::isnan(v)) {
                best = v;
                arg = ih * W + iw;
              }
            }
          op[(pl * OH + oh) * OW + ow] = best;
          ip[(pl * OH + oh) * OW + ow] = arg;
        }
  });
}

void CpuBackend::max_pool2d_backward(const Tensor& gy_in, const Tensor& indices, const Tensor& gx,
                                     const Pool2dParams&) {
  const Tensor gy = contiguous_or_copy(gy_in);
  const int64_t HW = gx.size(2) * gx.size(3), OHW = gy.size(2) * gy.size(3);
  dispatch_float(gx.dtype(), "max_pool2d_backward", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* gyp = gy.data<T>();
    const int64_t* ip = indices.data<int64_t>();
    T* gxp = gx.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(gx); ++pl) {
      std::fill(gxp + pl * HW, gxp + (pl + 1) * HW, T(0));
      for (int64_t k = 0; k < OHW; ++k) gxp[pl * HW + ip[pl * OHW + k]] += gyp[pl * OHW + k];
    }
  });
}

// Nearest: source index floor(dst * in / out), as PyTorch's mode='nearest'.
void CpuBackend::upsample_nearest(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_or_copy(x_in);
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  dispatch_float(x.dtype(), "upsample_nearest", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(x); ++pl)
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t ih = resample::nearest_source(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow)
          op[(pl * OH + oh) * OW + ow] = xp[(pl * H + ih) * W + resample::nearest_source(ow, W, OW)];
      }
  });
}

void CpuBackend::upsample_nearest_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_or_copy(gy_in);
  const int64_t H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  dispatch_float(gx.dtype(), "upsample_nearest_backward", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* gyp = gy.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(gx); ++pl) {
      std::fill(gxp + pl * H * W, gxp + (pl + 1) * H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh) {
        const int64_t ih = resample::nearest_source(oh, H, OH);
        for (int64_t ow = 0; ow < OW; ++ow)
          gxp[(pl * H + ih) * W + resample::nearest_source(ow, W, OW)] += gyp[(pl * OH + oh) * OW + ow];
      }
    }
  });
}

void CpuBackend::resize_bilinear(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_or_copy(x_in);
  const int64_t H = x.size(2), W = x.size(3), OH = out.size(2), OW = out.size(3);
  const auto th = bilinear_taps(H, OH), tw = bilinear_taps(W, OW);
  dispatch_float(x.dtype(), "resize_bilinear", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(x); ++pl)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const T* src = xp + pl * H * W;
          const auto& a = th[oh];
          const auto& b = tw[ow];
          const double v = a.w0 * (b.w0 * src[a.i0 * W + b.i0] + b.w1 * src[a.i0 * W + b.i1]) +
                           a.w1 * (b.w0 * src[a.i1 * W + b.i0] + b.w1 * src[a.i1 * W + b.i1]);
          op[(pl * OH + oh) * OW + ow] = static_cast<T>(v);
        }
  });
}

void CpuBackend::resize_bilinear_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_or_copy(gy_in);
  const int64_t H = gx.size(2), W = gx.size(3), OH = gy.size(2), OW = gy.size(3);
  const auto th = bilinear_taps(H, OH), tw = bilinear_taps(W, OW);
  dispatch_float(gx.dtype(), "resize_bilinear_backward", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* gyp = gy.data<T>();
    T* gxp = gx.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t pl = 0; pl < planes(gx); ++pl) {
      T* dst = gxp + pl * H * W;
      std::fill(dst, dst + H * W, T(0));
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const T g = gyp[(pl * OH + oh) * OW + ow];
          const auto& a = th[oh];
          const auto& b = tw[ow];
          dst[a.i0 * W + b.i0] += static_cast<T>(a.w0 * b.w0) * g;
          dst[a.i0 * W + b.i1] += static_cast<T>(a.w0 * b.w1) * g;
          dst[a.i1 * W + b.i0] += static_cast<T>(a.w1 * b.w0) * g;
          dst[a.i1 * W + b.i1] += static_cast<T>(a.w1 * b.w1) * g;
        }
    }
  });
}

}  // namespace diffkd

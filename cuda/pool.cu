// Pooling and resampling on the GPU (NCHW): forward passes run one thread per output element;
// backward passes one thread per (n, c) plane, scattering in the CPU backend's order, so the
// sums are deterministic without atomics. Source indices come from tensor/resample_math.h.

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/resample_math.h"

namespace diffkd::cuda {

namespace {

struct Plane {
  int64_t planes, H, W, OH, OW;
};

Plane plane_of(const Tensor& in, const Tensor& out) {
  return {in.size(0) * in.size(1), in.size(2), in.size(3), out.size(2), out.size(3)};
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, T* out, Plane s, Pool2dParams p) {
  const T inv = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);  // count_include_pad=True
  DK_GRID_STRIDE_LOOP(e, s.planes * s.OH * s.OW) {
    const int64_t ow = e % s.OW, oh = (e / s.OW) % s.OH, pl = e / (s.OW * s.OH);
    T sum = 0;
    for (int64_t i = 0; i < p.kernel_h; ++i)
      for (int64_t j = 0; j < p.kernel_w; ++j) {
        const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
        if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) sum += x[(pl * s.H + ih) * s.W + iw];
      }
    out[e] = sum * inv;
  }
}

template <typename T>
__global__ void avg_pool_backward_kernel(const T* gy, T* gx, Plane s, Pool2dParams p) {
  const T inv = T(1) / static_cast<T>(p.kernel_h * p.kernel_w);
  DK_GRID_STRIDE_LOOP(pl, s.planes) {
    T* dst = gx + pl * s.H * s.W;
    for (int64_t k = 0; k < s.H * s.W; ++k) dst[k] = T(0);
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const T g = gy[(pl * s.OH + oh) * s.OW + ow] * inv;
        for (int64_t i = 0; i < p.kernel_h; ++i)
          for (int64_t j = 0; j < p.kernel_w; ++j) {
            const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
            if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) dst[ih * s.W + iw] += g;
          }
      }
  }
}

template <typename T>
__global__ void max_pool_kernel(const T* x, T* out, int64_t* indices, Plane s, Pool2dParams p) {
  DK_GRID_STRIDE_LOOP(e, s.planes * s.OH * s.OW) {
    const int64_t ow = e % s.OW, oh = (e / s.OW) % s.OH, pl = e / (s.OW * s.OH);
    T best = -INFINITY;
    int64_t arg = -1;
    for (int64_t i = 0; i < p.kernel_h; ++i)
      for (int64_t j = 0; j < p.kernel_w; ++j) {
        const int64_t ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
        if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) continue;
        const T v = x[(pl * s.H + ih) * s.W + iw];
        if (arg < 0 || v > best || v != v) {  // NaN wins, as on the CPU
          best = v;
          arg = ih * s.W + iw;
        }
      }
    out[e] = best;
    indices[e] = arg;
  }
}

template <typename T>
__global__ void max_pool_backward_kernel(const T* gy, const int64_t* indices, T* gx, int64_t planes, int64_t hw,
                                         int64_t ohw) {
  DK_GRID_STRIDE_LOOP(pl, planes) {
    for (int64_t k = 0; k < hw; ++k) gx[pl * hw + k] = T(0);
    for (int64_t k = 0; k < ohw; ++k) gx[pl * hw + indices[pl * ohw + k]] += gy[pl * ohw + k];
  }
}

template <typename T>
__global__ void nearest_kernel(const T* x, T* out, Plane s) {
  DK_GRID_STRIDE_LOOP(e, s.planes * s.OH * s.OW) {
    const int64_t ow = e % s.OW, oh = (e / s.OW) % s.OH, pl = e / (s.OW * s.OH);
    out[e] = x[(pl * s.H + resample::nearest_source(oh, s.H, s.OH)) * s.W + resample::nearest_source(ow, s.W, s.OW)];
  }
}

template <typename T>
__global__ void nearest_backward_kernel(const T* gy, T* gx, Plane s) {
  DK_GRID_STRIDE_LOOP(pl, s.planes) {
    T* dst = gx + pl * s.H * s.W;
    for (int64_t k = 0; k < s.H * s.W; ++k) dst[k] = T(0);
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const int64_t ih = resample::nearest_source(oh, s.H, s.OH);
      for (int64_t ow = 0; ow < s.OW; ++ow)
        dst[ih * s.W + resample::nearest_source(ow, s.W, s.OW)] += gy[(pl * s.OH + oh) * s.OW + ow];
    }
  }
}

template <typename T>
__global__ void bilinear_kernel(const T* x, T* out, Plane s) {
  DK_GRID_STRIDE_LOOP(e, s.planes * s.OH * s.OW) {
    const int64_t ow = e % s.OW, oh = (e / s.OW) % s.OH, pl = e / (s.OW * s.OH);
    const resample::BilinearTap a = resample::bilinear_tap(oh, s.H, s.OH), b = resample::bilinear_tap(ow, s.W, s.OW);
    const T* src = x + pl * s.H * s.W;
    const double v = a.w0 * (b.w0 * src[a.i0 * s.W + b.i0] + b.w1 * src[a.i0 * s.W + b.i1]) +
                     a.w1 * (b.w0 * src[a.i1 * s.W + b.i0] + b.w1 * src[a.i1 * s.W + b.i1]);
    out[e] = static_cast<T>(v);
  }
}

template <typename T>
__global__ void bilinear_backward_kernel(const T* gy, T* gx, Plane s) {
  DK_GRID_STRIDE_LOOP(pl, s.planes) {
    T* dst = gx + pl * s.H * s.W;
    for (int64_t k = 0; k < s.H * s.W; ++k) dst[k] = T(0);
    for (int64_t oh = 0; oh < s.OH; ++oh)
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        const T g = gy[(pl * s.OH + oh) * s.OW + ow];
        const resample::BilinearTap a = resample::bilinear_tap(oh, s.H, s.OH), b = resample::bilinear_tap(ow, s.W, s.OW);
        dst[a.i0 * s.W + b.i0] += static_cast<T>(a.w0 * b.w0) * g;
        dst[a.i0 * s.W + b.i1] += static_cast<T>(a.w0 * b.w1) * g;
        dst[a.i1 * s.W + b.i0] += static_cast<T>(a.w1 * b.w0) * g;
        dst[a.i1 * s.W + b.i1] += static_cast<T>(a.w1 * b.w1) * g;
      }
  }
}

// Launches `kernel` over `n` work items for the dtype of `t`.
#define DK_LAUNCH_FLOAT(t, op, n, kernel, ...)                                         \
  dispatch_float((t).dtype(), op, [&](auto tag) {                                     \
    using T = typename decltype(tag)::type;                                           \
    if ((n) > 0) {                                                                    \
      kernel<T><<<blocks_for((n), kThreads), kThreads, 0, stream()>>>(__VA_ARGS__);   \
      DK_CUDA_CHECK_LAUNCH();                                                         \
    }                                                                                 \
  })

}  // namespace

void CudaBackend::avg_pool2d(const Tensor& x_in, const Tensor& out, const Pool2dParams& p) {
  const Tensor x = contiguous_on_device(x_in);
  const Plane s = plane_of(x, out);
  DK_LAUNCH_FLOAT(x, "avg_pool2d", out.numel(), avg_pool_kernel, x.data<T>(), out.data<T>(), s, p);
}

void CudaBackend::avg_pool2d_backward(const Tensor& gy_in, const Tensor& gx, const Pool2dParams& p) {
  const Tensor gy = contiguous_on_device(gy_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "avg_pool2d_backward", s.planes, avg_pool_backward_kernel, gy.data<T>(), gx.data<T>(), s, p);
}

void CudaBackend::max_pool2d(const Tensor& x_in, const Tensor& out, const Tensor& indices, const Pool2dParams& p) {
  const Tensor x = contiguous_on_device(x_in);
  const Plane s = plane_of(x, out);
  DK_LAUNCH_FLOAT(x, "max_pool2d", out.numel(), max_pool_kernel, x.data<T>(), out.data<T>(), indices.data<int64_t>(), s,
                  p);
}

void CudaBackend::max_pool2d_backward(const Tensor& gy_in, const Tensor& indices, const Tensor& gx) {
  const Tensor gy = contiguous_on_device(gy_in);
  const int64_t planes = gx.size(0) * gx.size(1);
  DK_LAUNCH_FLOAT(gx, "max_pool2d_backward", planes, max_pool_backward_kernel, gy.data<T>(), indices.data<int64_t>(),
                  gx.data<T>(), planes, gx.size(2) * gx.size(3), gy.size(2) * gy.size(3));
}

void CudaBackend::upsample_nearest(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_on_device(x_in);
  DK_LAUNCH_FLOAT(x, "upsample_nearest", out.numel(), nearest_kernel, x.data<T>(), out.data<T>(), plane_of(x, out));
}

void CudaBackend::upsample_nearest_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_on_device(gy_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "upsample_nearest_backward", s.planes, nearest_backward_kernel, gy.data<T>(), gx.data<T>(), s);
}

void CudaBackend::resize_bilinear(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_on_device(x_in);
  DK_LAUNCH_FLOAT(x, "resize_bilinear", out.numel(), bilinear_kernel, x.data<T>(), out.data<T>(), plane_of(x, out));
}

void CudaBackend::resize_bilinear_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_on_device(gy_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "resize_bilinear_backward", s.planes, bilinear_backward_kernel, gy.data<T>(), gx.data<T>(), s);
}

}  // namespace diffkd::cuda

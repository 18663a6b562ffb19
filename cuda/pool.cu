// Pooling and resampling on the GPU (NCHW): forward passes run one thread per output element,
// backward passes one thread per input element, gathering the output gradients that read it in
// the order the CPU backend's scatter adds them (tensor/pool_backward_math.h), so the sums are
// deterministic without atomics and equal the CPU's. Source indices: tensor/resample_math.h.

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/pool_backward_math.h"
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
  const pool_math::PlaneShape shape{s.H, s.W, s.OH, s.OW};
  const pool_math::PoolWindow w{p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
  DK_GRID_STRIDE_LOOP(e, s.planes * s.H * s.W) {
    const int64_t iw = e % s.W, ih = (e / s.W) % s.H, pl = e / (s.W * s.H);
    gx[e] = pool_math::avg_pool_input_grad(gy + pl * s.OH * s.OW, shape, w, ih, iw);
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
__global__ void max_pool_backward_kernel(const T* gy, const int64_t* indices, T* gx, Plane s, Pool2dParams p) {
  const pool_math::PlaneShape shape{s.H, s.W, s.OH, s.OW};
  const pool_math::PoolWindow w{p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
  DK_GRID_STRIDE_LOOP(e, s.planes * s.H * s.W) {
    const int64_t iw = e % s.W, ih = (e / s.W) % s.H, pl = e / (s.W * s.H);
    gx[e] = pool_math::max_pool_input_grad(gy + pl * s.OH * s.OW, indices + pl * s.OH * s.OW, shape, w, ih, iw);
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
  const pool_math::PlaneShape shape{s.H, s.W, s.OH, s.OW};
  DK_GRID_STRIDE_LOOP(e, s.planes * s.H * s.W) {
    const int64_t iw = e % s.W, ih = (e / s.W) % s.H, pl = e / (s.W * s.H);
    gx[e] = pool_math::nearest_input_grad(gy + pl * s.OH * s.OW, shape, ih, iw);
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
  const pool_math::PlaneShape shape{s.H, s.W, s.OH, s.OW};
  DK_GRID_STRIDE_LOOP(e, s.planes * s.H * s.W) {
    const int64_t iw = e % s.W, ih = (e / s.W) % s.H, pl = e / (s.W * s.H);
    gx[e] = pool_math::bilinear_input_grad(gy + pl * s.OH * s.OW, shape, ih, iw);
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
  DK_LAUNCH_FLOAT(gx, "avg_pool2d_backward", gx.numel(), avg_pool_backward_kernel, gy.data<T>(), gx.data<T>(), s, p);
}

void CudaBackend::max_pool2d(const Tensor& x_in, const Tensor& out, const Tensor& indices, const Pool2dParams& p) {
  const Tensor x = contiguous_on_device(x_in);
  const Plane s = plane_of(x, out);
  DK_LAUNCH_FLOAT(x, "max_pool2d", out.numel(), max_pool_kernel, x.data<T>(), out.data<T>(), indices.data<int64_t>(), s,
                  p);
}

void CudaBackend::max_pool2d_backward(const Tensor& gy_in, const Tensor& indices_in, const Tensor& gx,
                                      const Pool2dParams& p) {
  const Tensor gy = contiguous_on_device(gy_in), indices = contiguous_on_device(indices_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "max_pool2d_backward", gx.numel(), max_pool_backward_kernel, gy.data<T>(),
                  indices.data<int64_t>(), gx.data<T>(), s, p);
}

void CudaBackend::upsample_nearest(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_on_device(x_in);
  DK_LAUNCH_FLOAT(x, "upsample_nearest", out.numel(), nearest_kernel, x.data<T>(), out.data<T>(), plane_of(x, out));
}

void CudaBackend::upsample_nearest_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_on_device(gy_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "upsample_nearest_backward", gx.numel(), nearest_backward_kernel, gy.data<T>(), gx.data<T>(), s);
}

void CudaBackend::resize_bilinear(const Tensor& x_in, const Tensor& out) {
  const Tensor x = contiguous_on_device(x_in);
  DK_LAUNCH_FLOAT(x, "resize_bilinear", out.numel(), bilinear_kernel, x.data<T>(), out.data<T>(), plane_of(x, out));
}

void CudaBackend::resize_bilinear_backward(const Tensor& gy_in, const Tensor& gx) {
  const Tensor gy = contiguous_on_device(gy_in);
  const Plane s = plane_of(gx, gy);
  DK_LAUNCH_FLOAT(gx, "resize_bilinear_backward", gx.numel(), bilinear_backward_kernel, gy.data<T>(), gx.data<T>(),
                  s);
}

}  // namespace diffkd::cuda

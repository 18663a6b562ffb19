// Group normalisation on the GPU: one block per (sample, group) computes the group's statistics
// (two passes, in double, as the CPU) and writes y; the backward pass sums per (sample, channel)
// in the same blocks, then one thread per channel reduces over the batch in a fixed order. The
// coefficient math is tensor/norm_math.h, shared with the CPU backend.

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/norm_math.h"

namespace diffkd::cuda {

namespace {

template <typename T>
__global__ void group_norm_kernel(const T* x, const T* w, const T* b, int64_t groups, int64_t cg, int64_t hw,
                                  double eps, T* y, T* mean, T* rstd) {
  __shared__ double scratch[kThreads];
  const int64_t ng = blockIdx.x, g = ng % groups, d = cg * hw;
  const T* xg = x + ng * d;
  double s = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) s += static_cast<double>(xg[i]);
  const double mu = block_sum(s, scratch) / d;
  double ss = 0;
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const double v = static_cast<double>(xg[i]) - mu;
    ss += v * v;
  }
  const double r = 1.0 / sqrt(block_sum(ss, scratch) / d + eps);
  if (threadIdx.x == 0) {
    mean[ng] = static_cast<T>(mu);
    rstd[ng] = static_cast<T>(r);
  }
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const int64_t ch = g * cg + i / hw;
    const norm_math::Affine f = norm_math::group_norm_affine(mu, r, w ? static_cast<double>(w[ch]) : 1.0,
                                                             b ? static_cast<double>(b[ch]) : 0.0);
    y[ng * d + i] = xg[i] * static_cast<T>(f.a) + static_cast<T>(f.shift);
  }
}

// Per (sample, group): ds, db per channel (sum gy x, sum gy), then gx.
template <typename T>
__global__ void group_norm_backward_kernel(const T* gy, const T* x, const T* w, const T* mean, const T* rstd,
                                           int64_t groups, int64_t cg, int64_t hw, double* ds, double* db, T* gx) {
  __shared__ double scratch[kThreads];
  const int64_t ng = blockIdx.x, g = ng % groups, d = cg * hw;
  const double mu = mean[ng], r = rstd[ng];
  double m1 = 0, m2 = 0;
  for (int64_t k = 0; k < cg; ++k) {
    const int64_t ch = g * cg + k;
    const T* xs = x + ng * d + k * hw;
    const T* gs = gy + ng * d + k * hw;
    double sx = 0, sg = 0;
    for (int64_t i = threadIdx.x; i < hw; i += blockDim.x) {
      sx += static_cast<double>(gs[i]) * xs[i];
      sg += static_cast<double>(gs[i]);
    }
    sx = block_sum(sx, scratch);
    sg = block_sum(sg, scratch);
    if (threadIdx.x == 0) {
      ds[ng * cg + k] = sx;  // ng * cg + k == sample * C + ch
      db[ng * cg + k] = sg;
    }
    const double wc = w ? static_cast<double>(w[ch]) : 1.0;
    m1 += wc * sg;
    m2 += wc * (sx - mu * sg);
  }
  if (gx == nullptr) return;
  const norm_math::BackwardLine line = norm_math::group_norm_backward_line(mu, r, m1, m2, static_cast<double>(d));
  const T slope = static_cast<T>(line.slope), shift = static_cast<T>(line.shift);
  for (int64_t i = threadIdx.x; i < d; i += blockDim.x) {
    const int64_t ch = g * cg + i / hw;
    const T a = static_cast<T>(r * (w ? static_cast<double>(w[ch]) : 1.0));
    gx[ng * d + i] = a * gy[ng * d + i] + slope * x[ng * d + i] + shift;
  }
}

template <typename T>
__global__ void group_norm_affine_grad_kernel(const double* ds, const double* db, const T* mean, const T* rstd,
                                              int64_t n, int64_t c, int64_t groups, T* gw, T* gb) {
  const int64_t ch = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (ch >= c) return;
  const int64_t cg = c / groups;
  double sw = 0, sb = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ng = i * groups + ch / cg;
    sw += static_cast<double>(rstd[ng]) * (ds[i * c + ch] - static_cast<double>(mean[ng]) * db[i * c + ch]);
    sb += db[i * c + ch];
  }
  if (gw) gw[ch] = static_cast<T>(sw);
  if (gb) gb[ch] = static_cast<T>(sb);
}

template <typename T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}
template <typename T>
T* optional_output(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

void CudaBackend::group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps,
                             const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  DK_CHECK(x.is_contiguous() && y.is_contiguous(), "group_norm: kernel needs contiguous tensors");
  if (x.numel() == 0) return;
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / (n * c);
  dispatch_float(x.dtype(), "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    group_norm_kernel<T><<<static_cast<unsigned>(n * groups), kThreads, 0, stream()>>>(
        x.data<T>(), optional_data<T>(w), optional_data<T>(b), groups, c / groups, hw, eps, y.data<T>(), mean.data<T>(),
        rstd.data<T>());
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::group_norm_backward(const Tensor& gy_in, const Tensor& x, const Tensor& w, const Tensor& mean,
                                      const Tensor& rstd, int64_t groups, const Tensor& gx, const Tensor& gw,
                                      const Tensor& gb) {
  if (x.numel() == 0) {  // an empty batch: no gradient for the affine parameters
    if (gw.defined()) fill(gw, 0.0);
    if (gb.defined()) fill(gb, 0.0);
    return;
  }
  DK_CHECK(x.is_contiguous(), "group_norm_backward: kernel needs contiguous tensors");
  const Tensor gy = contiguous_on_device(gy_in);
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / (n * c);
  const Tensor ds = Tensor::empty({n, c}, DType::F64, x.device()), db = Tensor::empty({n, c}, DType::F64, x.device());
  dispatch_float(x.dtype(), "group_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    group_norm_backward_kernel<T><<<static_cast<unsigned>(n * groups), kThreads, 0, stream()>>>(
        gy.data<T>(), x.data<T>(), optional_data<T>(w), mean.data<T>(), rstd.data<T>(), groups, c / groups, hw,
        ds.data<double>(), db.data<double>(), optional_output<T>(gx));
    DK_CUDA_CHECK_LAUNCH();
    if (gw.defined() || gb.defined()) {
      group_norm_affine_grad_kernel<T><<<blocks_for(c, kThreads), kThreads, 0, stream()>>>(
          ds.data<double>(), db.data<double>(), mean.data<T>(), rstd.data<T>(), n, c, groups, optional_output<T>(gw),
          optional_output<T>(gb));
      DK_CUDA_CHECK_LAUNCH();
    }
  });
}

}  // namespace diffkd::cuda

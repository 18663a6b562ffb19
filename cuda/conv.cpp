// conv2d forward, backward-data (also conv_transpose2d's forward) and backward-filter on cuDNN.
// Descriptors and the chosen algorithm are cached per (shapes, padding, stride, dtype): a training
// step asks for the same few convolutions every iteration. Algorithms come from cuDNN's
// heuristics (the _v7 queries), keeping the first deterministic one whose workspace fits in
// kMaxWorkspace, so that a run on one GPU repeats bit for bit. fp32 convolutions use plain FMA
// math (no TF32) unless DIFFKD_ALLOW_TF32=1: results must match the CPU to fp32 rounding.
//
// This is cuDNN's legacy convolution API, deprecated in cuDNN 9 in favour of the graph API but
// still shipped and supported there; it says in a page what the graph API says in several.

#include <cstdio>
#include <map>
#include <mutex>
#include <tuple>

#include "cuda/cuda_backend.h"
#include "cuda/runtime.h"

namespace diffkd::cuda {

namespace {

constexpr size_t kMaxWorkspace = size_t{1} << 30;  // 1 GiB

cudnnDataType_t data_type(DType t) {
  DK_CHECK(t == DType::F32 || t == DType::F64, "conv2d on CUDA: ", dtype_name(t), " is not supported (f32, f64)");
  return t == DType::F32 ? CUDNN_DATA_FLOAT : CUDNN_DATA_DOUBLE;
}

// Scratch memory for one call, from the caching allocator.
Tensor workspace(size_t bytes, Device device) {
  return Tensor::empty({static_cast<int64_t>((bytes + 7) / 8)}, DType::F64, device);
}

using Key = std::tuple<Shape, Shape, Shape, int64_t, int64_t, int64_t, int64_t, int>;

// Everything cuDNN needs for one convolution shape, created once.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool have_fwd = false, have_bwd_data = false, have_bwd_filter = false;
  cudnnConvolutionFwdAlgo_t fwd{};
  cudnnConvolutionBwdDataAlgo_t bwd_data{};
  cudnnConvolutionBwdFilterAlgo_t bwd_filter{};
  size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;
};

void set_4d(cudnnTensorDescriptor_t d, cudnnDataType_t type, const Shape& s) {
  DK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, type, static_cast<int>(s[0]), static_cast<int>(s[1]),
                                            static_cast<int>(s[2]), static_cast<int>(s[3])));
}

// The plan for x [N, C, H, W] * w [K, C, kh, kw] -> y [N, K, OH, OW].
ConvPlan& plan_for(const Shape& x, const Shape& w, const Shape& y, const Conv2dParams& p, DType dtype) {
  static std::mutex mutex;
  static std::map<Key, ConvPlan> plans;
  std::lock_guard<std::mutex> lock(mutex);
  const Key key{x, w, y, p.stride_h, p.stride_w, p.pad_h, p.pad_w, static_cast<int>(dtype)};
  auto it = plans.find(key);
  if (it != plans.end()) return it->second;
  const cudnnDataType_t type = data_type(dtype);
  ConvPlan plan;
  DK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.x));
  DK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.y));
  DK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&plan.bias));
  DK_CUDNN_CHECK(cudnnCreateFilterDescriptor(&plan.w));
  DK_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&plan.conv));
  set_4d(plan.x, type, x);
  set_4d(plan.y, type, y);
  set_4d(plan.bias, type, {1, y[1], 1, 1});
  DK_CUDNN_CHECK(cudnnSetFilter4dDescriptor(plan.w, type, CUDNN_TENSOR_NCHW, static_cast<int>(w[0]),
                                            static_cast<int>(w[1]), static_cast<int>(w[2]), static_cast<int>(w[3])));
  DK_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(plan.conv, static_cast<int>(p.pad_h), static_cast<int>(p.pad_w),
                                                 static_cast<int>(p.stride_h), static_cast<int>(p.stride_w), 1, 1,
                                                 CUDNN_CROSS_CORRELATION, type));
  DK_CUDNN_CHECK(cudnnSetConvolutionMathType(
      plan.conv, (type == CUDNN_DATA_FLOAT && !allow_tf32()) ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  int n = 0, c = 0, h = 0, wd = 0;
  DK_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan.conv, plan.x, plan.w, &n, &c, &h, &wd));
  DK_CHECK(n == y[0] && c == y[1] && h == y[2] && wd == y[3], "conv2d on CUDA: input ", shape_str(x), " and weight ",
           shape_str(w), " give [", n, ",", c, ",", h, ",", wd, "], not ", shape_str(y));
  return plans.emplace(key, plan).first->second;
}

// The first deterministic algorithm (in cuDNN's ranking) that succeeded and fits the workspace
// cap; else the first that fits, said once on stderr (runs then repeat only to rounding).
template <typename Perf>
Perf choose(const Perf* perf, int count, const char* what) {
  const Perf* fallback = nullptr;
  for (int i = 0; i < count; ++i) {
    if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > kMaxWorkspace) continue;
    if (perf[i].determinism == CUDNN_DETERMINISTIC) return perf[i];
    if (fallback == nullptr) fallback = &perf[i];
  }
  DK_CHECK(fallback != nullptr, "conv2d on CUDA: cuDNN offers no ", what, " algorithm for this shape");
  static std::once_flag warned;
  std::call_once(warned, [what] {
    std::fprintf(stderr, "diffkd: cuDNN has no deterministic %s algorithm within the %zu MiB workspace for a "
                 "convolution shape; using a non-deterministic one (runs repeat only to rounding)\n",
                 what, kMaxWorkspace >> 20);
  });
  return *fallback;
}

}  // namespace

void CudaBackend::conv2d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const Tensor& out,
                                 const Conv2dParams& p) {
  DK_CHECK(out.is_contiguous(), "conv2d_forward: output must be contiguous");
  if (out.numel() == 0) return;
  const Tensor x = contiguous_on_device(x_in), w = contiguous_on_device(w_in);
  ConvPlan& plan = plan_for(x.shape(), w.shape(), out.shape(), p, x.dtype());
  if (!plan.have_fwd) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), plan.x, plan.w, plan.conv, plan.y,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    const auto best = choose(perf, count, "forward");
    plan.fwd = best.algo;
    DK_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(cudnn(), plan.x, plan.w, plan.conv, plan.y, plan.fwd,
                                                           &plan.fwd_bytes));
    plan.have_fwd = true;
  }
  const Tensor scratch = workspace(plan.fwd_bytes, x.device());
  dispatch_float(x.dtype(), "conv2d_forward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T one = 1, zero = 0;
    DK_CUDNN_CHECK(cudnnConvolutionForward(cudnn(), &one, plan.x, x.raw_data(), plan.w, w.raw_data(), plan.conv,
                                           plan.fwd, scratch.raw_data(), plan.fwd_bytes, &zero, plan.y,
                                           out.raw_data()));
    if (bias.defined()) {
      const Tensor b = contiguous_on_device(bias);
      DK_CUDNN_CHECK(cudnnAddTensor(cudnn(), &one, plan.bias, b.raw_data(), &one, plan.y, out.raw_data()));
    }
  });
}

void CudaBackend::conv2d_backward_input(const Tensor& gy_in, const Tensor& w_in, const Tensor& gx,
                                        const Conv2dParams& p) {
  DK_CHECK(gx.is_contiguous(), "conv2d_backward_input: output must be contiguous");
  if (gx.numel() == 0) return;
  if (gy_in.numel() == 0) return fill(gx, 0.0);
  const Tensor gy = contiguous_on_device(gy_in), w = contiguous_on_device(w_in);
  ConvPlan& plan = plan_for(gx.shape(), w.shape(), gy.shape(), p, gy.dtype());
  if (!plan.have_bwd_data) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), plan.w, plan.y, plan.conv, plan.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    plan.bwd_data = choose(perf, count, "backward-data").algo;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(cudnn(), plan.w, plan.y, plan.conv, plan.x,
                                                                plan.bwd_data, &plan.bwd_data_bytes));
    plan.have_bwd_data = true;
  }
  const Tensor scratch = workspace(plan.bwd_data_bytes, gy.device());
  dispatch_float(gy.dtype(), "conv2d_backward_input", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T one = 1, zero = 0;
    DK_CUDNN_CHECK(cudnnConvolutionBackwardData(cudnn(), &one, plan.w, w.raw_data(), plan.y, gy.raw_data(), plan.conv,
                                                plan.bwd_data, scratch.raw_data(), plan.bwd_data_bytes, &zero, plan.x,
                                                gx.raw_data()));
  });
}

void CudaBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& gy_in, const Tensor& gw,
                                         const Conv2dParams& p) {
  DK_CHECK(gw.is_contiguous(), "conv2d_backward_weight: output must be contiguous");
  if (gw.numel() == 0) return;
  if (x_in.numel() == 0 || gy_in.numel() == 0) return fill(gw, 0.0);
  const Tensor x = contiguous_on_device(x_in), gy = contiguous_on_device(gy_in);
  ConvPlan& plan = plan_for(x.shape(), gw.shape(), gy.shape(), p, x.dtype());
  if (!plan.have_bwd_filter) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        cudnn(), plan.x, plan.y, plan.conv, plan.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    plan.bwd_filter = choose(perf, count, "backward-filter").algo;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(cudnn(), plan.x, plan.y, plan.conv, plan.w,
                                                                  plan.bwd_filter, &plan.bwd_filter_bytes));
    plan.have_bwd_filter = true;
  }
  const Tensor scratch = workspace(plan.bwd_filter_bytes, x.device());
  dispatch_float(x.dtype(), "conv2d_backward_weight", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T one = 1, zero = 0;
    DK_CUDNN_CHECK(cudnnConvolutionBackwardFilter(cudnn(), &one, plan.x, x.raw_data(), plan.y, gy.raw_data(),
                                                  plan.conv, plan.bwd_filter, scratch.raw_data(),
                                                  plan.bwd_filter_bytes, &zero, plan.w, gw.raw_data()));
  });
}

}  // namespace diffkd::cuda

// conv2d forward, backward-data (also conv_transpose2d's forward) and backward-filter on cuDNN.
// Descriptors and the chosen algorithm are cached per (shapes, padding, stride, dtype): a training
// step asks for the same few convolutions every iteration. Algorithms come from cuDNN's
// heuristics (the _v7 queries), tried in the order of cuda/conv_algorithms.h (deterministic ones
// first, so that a run on one GPU repeats bit for bit, within kMaxWorkspace), each with the math
// type it was ranked with; one that returns NOT_SUPPORTED or EXECUTION_FAILED when run gives way
// to the next, and the first that runs is kept. fp32 convolutions use plain FMA math (no TF32)
// unless DIFFKD_ALLOW_TF32=1: results must match the CPU to fp32 rounding. Operands whose data is
// not 16-byte aligned (a narrow() view's offset) are copied first: cuDNN's vectorised kernels
// assume aligned pointers.
//
// This is cuDNN's legacy convolution API, deprecated in cuDNN 9 in favour of the graph API but
// still shipped and supported there; it says in a page what the graph API says in several.

#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <tuple>
#include <vector>

#include "cuda/conv_algorithms.h"
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

// One direction's algorithms (forward, backward-data or backward-filter), best first; once one
// has run, it is the front.
struct AlgorithmChoice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
  bool deterministic = false;
};
struct Direction {
  bool queried = false;
  std::vector<AlgorithmChoice> order;
};

// Everything cuDNN needs for one convolution shape, created once.
struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool fma_only = false;  // fp32 without TF32
  Direction fwd, bwd_data, bwd_filter;
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
  plan.fma_only = type == CUDNN_DATA_FLOAT && !allow_tf32();
  DK_CUDNN_CHECK(cudnnSetConvolutionMathType(plan.conv, plan.fma_only ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH));
  int n = 0, c = 0, h = 0, wd = 0;
  DK_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(plan.conv, plan.x, plan.w, &n, &c, &h, &wd));
  DK_CHECK(n == y[0] && c == y[1] && h == y[2] && wd == y[3], "conv2d on CUDA: input ", shape_str(x), " and weight ",
           shape_str(w), " give [", n, ",", c, ",", h, ",", wd, "], not ", shape_str(y));
  return plans.emplace(key, plan).first->second;
}

// A direction's candidates from cuDNN's ranking (perf[0 .. count)), in the order they are tried.
template <typename Perf>
std::vector<AlgorithmChoice> ranked(const Perf* perf, int count, bool fma_only) {
  std::vector<AlgorithmOffer> offers;
  for (int i = 0; i < count; ++i) {
    AlgorithmOffer o;
    o.succeeded = perf[i].status == CUDNN_STATUS_SUCCESS;
    o.workspace = perf[i].memory;
    o.deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
    o.tensor_op_math =
        perf[i].mathType == CUDNN_TENSOR_OP_MATH || perf[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION;
    offers.push_back(o);
  }
  std::vector<AlgorithmChoice> order;
  for (int i : algorithm_order(offers, kMaxWorkspace, fma_only)) {
    AlgorithmChoice c;
    c.algo = static_cast<int>(perf[i].algo);
    c.math = fma_only ? CUDNN_FMA_MATH : perf[i].mathType;
    c.workspace = perf[i].memory;
    c.deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
    order.push_back(c);
  }
  return order;
}

// Runs `launch(algo, workspace, bytes)` (returning cuDNN's status) with the direction's first
// candidate that runs; NOT_SUPPORTED and EXECUTION_FAILED drop a candidate for the next, any
// other failure is an error. Said once on stderr: a fallback, and a non-deterministic algorithm.
template <typename Launch>
void run_first_that_works(Direction& d, cudnnConvolutionDescriptor_t conv, Device device, const char* what,
                          Launch launch) {
  while (!d.order.empty()) {
    const AlgorithmChoice c = d.order.front();
    DK_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, c.math));
    const Tensor scratch = workspace(c.workspace, device);
    const cudnnStatus_t status = launch(c.algo, scratch.raw_data(), c.workspace);
    if (status == CUDNN_STATUS_SUCCESS) {
      if (!c.deterministic) {
        static std::once_flag warned;
        std::call_once(warned, [what] {
          std::fprintf(stderr, "diffkd: cuDNN has no deterministic %s algorithm within the %zu MiB workspace that runs "
                       "for a convolution shape; using a non-deterministic one (runs repeat only to rounding)\n",
                       what, kMaxWorkspace >> 20);
        });
      }
      return;
    }
    if (!cudnn_status_falls_back(static_cast<int>(status))) DK_CUDNN_CHECK(status);
    std::fprintf(stderr, "diffkd: cuDNN %s algorithm %d returned %s; trying the next\n", what, c.algo,
                 cudnnGetErrorString(status));
    d.order.erase(d.order.begin());
  }
  fail("conv2d on CUDA: no cuDNN ", what, " algorithm runs for this shape (all the heuristic's candidates failed)");
}

bool aligned(const Tensor& t) { return reinterpret_cast<std::uintptr_t>(t.raw_data()) % 16 == 0; }

// t contiguous on the device with 16-byte-aligned data (a copy when it is not).
Tensor aligned_contiguous(const Tensor& t) {
  const Tensor c = contiguous_on_device(t);
  return aligned(c) ? c : c.clone_data();
}

// Runs compute(target) for a contiguous output `out`: into out itself when its data is aligned,
// else into an aligned temporary copied to out afterwards.
template <typename Compute>
void into_aligned(const Tensor& out, Compute compute) {
  if (aligned(out)) return compute(out);
  const Tensor target = Tensor::empty(out.shape(), out.dtype(), out.device());
  compute(target);
  copy_on_device(target, out);
}

}  // namespace

void CudaBackend::conv2d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& bias, const Tensor& out,
                                 const Conv2dParams& p) {
  DK_CHECK(out.is_contiguous(), "conv2d_forward: output must be contiguous");
  if (out.numel() == 0) return;
  const Tensor x = aligned_contiguous(x_in), w = aligned_contiguous(w_in);
  ConvPlan& plan = plan_for(x.shape(), w.shape(), out.shape(), p, x.dtype());
  if (!plan.fwd.queried) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(cudnn(), plan.x, plan.w, plan.conv, plan.y,
                                                          CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    plan.fwd.order = ranked(perf, count, plan.fma_only);
    plan.fwd.queried = true;
  }
  into_aligned(out, [&](const Tensor& y) {
    dispatch_float(x.dtype(), "conv2d_forward", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T one = 1, zero = 0;
      run_first_that_works(plan.fwd, plan.conv, x.device(), "forward", [&](int algo, void* scratch, size_t bytes) {
        return cudnnConvolutionForward(cudnn(), &one, plan.x, x.raw_data(), plan.w, w.raw_data(), plan.conv,
                                       static_cast<cudnnConvolutionFwdAlgo_t>(algo), scratch, bytes, &zero, plan.y,
                                       y.raw_data());
      });
      if (bias.defined()) {
        const Tensor b = aligned_contiguous(bias);
        DK_CUDNN_CHECK(cudnnAddTensor(cudnn(), &one, plan.bias, b.raw_data(), &one, plan.y, y.raw_data()));
      }
    });
  });
}

void CudaBackend::conv2d_backward_input(const Tensor& gy_in, const Tensor& w_in, const Tensor& gx,
                                        const Conv2dParams& p) {
  DK_CHECK(gx.is_contiguous(), "conv2d_backward_input: output must be contiguous");
  if (gx.numel() == 0) return;
  if (gy_in.numel() == 0) return fill(gx, 0.0);
  const Tensor gy = aligned_contiguous(gy_in), w = aligned_contiguous(w_in);
  ConvPlan& plan = plan_for(gx.shape(), w.shape(), gy.shape(), p, gy.dtype());
  if (!plan.bwd_data.queried) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn(), plan.w, plan.y, plan.conv, plan.x,
                                                               CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    plan.bwd_data.order = ranked(perf, count, plan.fma_only);
    plan.bwd_data.queried = true;
  }
  into_aligned(gx, [&](const Tensor& target) {
    dispatch_float(gy.dtype(), "conv2d_backward_input", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T one = 1, zero = 0;
      run_first_that_works(plan.bwd_data, plan.conv, gy.device(), "backward-data",
                           [&](int algo, void* scratch, size_t bytes) {
                             return cudnnConvolutionBackwardData(
                                 cudnn(), &one, plan.w, w.raw_data(), plan.y, gy.raw_data(), plan.conv,
                                 static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), scratch, bytes, &zero, plan.x,
                                 target.raw_data());
                           });
    });
  });
}

void CudaBackend::conv2d_backward_weight(const Tensor& x_in, const Tensor& gy_in, const Tensor& gw,
                                         const Conv2dParams& p) {
  DK_CHECK(gw.is_contiguous(), "conv2d_backward_weight: output must be contiguous");
  if (gw.numel() == 0) return;
  if (x_in.numel() == 0 || gy_in.numel() == 0) return fill(gw, 0.0);
  const Tensor x = aligned_contiguous(x_in), gy = aligned_contiguous(gy_in);
  ConvPlan& plan = plan_for(x.shape(), gw.shape(), gy.shape(), p, x.dtype());
  if (!plan.bwd_filter.queried) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    DK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        cudnn(), plan.x, plan.y, plan.conv, plan.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    plan.bwd_filter.order = ranked(perf, count, plan.fma_only);
    plan.bwd_filter.queried = true;
  }
  into_aligned(gw, [&](const Tensor& target) {
    dispatch_float(x.dtype(), "conv2d_backward_weight", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T one = 1, zero = 0;
      run_first_that_works(plan.bwd_filter, plan.conv, x.device(), "backward-filter",
                           [&](int algo, void* scratch, size_t bytes) {
                             return cudnnConvolutionBackwardFilter(
                                 cudnn(), &one, plan.x, x.raw_data(), plan.y, gy.raw_data(), plan.conv,
                                 static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), scratch, bytes, &zero, plan.w,
                                 target.raw_data());
                           });
    });
  });
}

}  // namespace diffkd::cuda

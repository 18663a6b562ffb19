// Reductions and softmax on the GPU. Deterministic: each output is reduced by one block (or one
// thread, for short reductions) in a fixed order, so the same input gives the same bits on every
// run (a resumed run must match an uninterrupted one). Sums accumulate in double, as on the CPU.
// Few outputs over long reductions (a full sum; a conv bias gradient, 128 outputs of ~131k) would
// leave most SMs idle at one block per output: those are split into fixed chunks, a block each,
// whose partials a second pass combines in chunk order.

#include <algorithm>
#include <cfloat>

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "cuda/strided.cuh"

namespace diffkd::cuda {

namespace {

template <typename T, typename Acc>
struct SumOp {
  static __device__ Acc identity() { return Acc(0); }
  static __device__ Acc combine(Acc a, Acc b) { return a + b; }
};
template <typename T, typename Acc>
struct MaxOp {
  static __device__ Acc identity() { return -INFINITY; }
  // NaN propagates, as on the CPU (a comparison with NaN is false, so test it explicitly).
  static __device__ Acc combine(Acc a, Acc b) { return (a != a || a > b) ? a : b; }
};
template <typename T, typename Acc>
struct MinOp {
  static __device__ Acc identity() { return INFINITY; }
  static __device__ Acc combine(Acc a, Acc b) { return (a != a || a < b) ? a : b; }
};

// Block b reduces chunk b % chunks of output b / chunks (reduced indices [c * chunk, (c + 1) *
// chunk)) into out[b]: x offset = kept(o) + reduced(r). With one chunk, out is the result.
template <typename T, typename Acc, typename Op, typename Out>
__global__ void reduce_block_kernel(StridedIndex<1> kept, StridedIndex<1> reduced, int64_t reduce_size,
                                    int64_t chunks, const T* x, Out* out) {
  __shared__ Acc partial[kThreads];
  const int64_t o = blockIdx.x / chunks, c = blockIdx.x % chunks, chunk = (reduce_size + chunks - 1) / chunks;
  const int64_t end = c * chunk + chunk < reduce_size ? c * chunk + chunk : reduce_size;
  int64_t base[1];
  kept.offsets(o, base);
  Acc acc = Op::identity();
  for (int64_t r = c * chunk + threadIdx.x; r < end; r += blockDim.x) {
    int64_t off[1];
    reduced.offsets(r, off);
    acc = Op::combine(acc, static_cast<Acc>(x[base[0] + off[0]]));
  }
  const Acc total = block_reduce(acc, partial, [](Acc a, Acc b) { return Op::combine(a, b); });
  if (threadIdx.x == 0) out[blockIdx.x] = static_cast<Out>(total);
}

// Chunks per output: enough blocks to fill the GPU (~4 per SM of an H100) when outputs are few,
// each chunk at least 16k elements (below that the second pass costs more than it saves).
int64_t chunks_per_output(int64_t outputs, int64_t reduce_size) {
  constexpr int64_t kTargetBlocks = 512, kMinChunk = 16384;
  if (outputs >= kTargetBlocks) return 1;
  const int64_t by_size = reduce_size / kMinChunk, by_blocks = (kTargetBlocks + outputs - 1) / outputs;
  return std::max<int64_t>(1, std::min(by_size, by_blocks));
}

template <typename T, typename Acc, typename Op>
__global__ void reduce_thread_kernel(StridedIndex<1> kept, StridedIndex<1> reduced, int64_t outputs,
                                     int64_t reduce_size, const T* x, T* out) {
  for (int64_t o = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; o < outputs; o += int64_t{gridDim.x} * blockDim.x) {
    int64_t base[1];
    kept.offsets(o, base);
    Acc acc = Op::identity();
    for (int64_t r = 0; r < reduce_size; ++r) {
      int64_t off[1];
      reduced.offsets(r, off);
      acc = Op::combine(acc, static_cast<Acc>(x[base[0] + off[0]]));
    }
    out[o] = static_cast<T>(acc);
  }
}

template <typename T, typename Acc, typename Op>
void launch_reduce(const Tensor& x, const std::vector<bool>& reduced_dims, const Tensor& out) {
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (int64_t d = 0; d < x.dim(); ++d) {
    (reduced_dims[d] ? red_shape : kept_shape).push_back(x.size(d));
    (reduced_dims[d] ? red_strides : kept_strides).push_back(x.stride(d));
  }
  const int64_t outputs = numel_of(kept_shape), reduce_size = numel_of(red_shape);
  const auto kept = strided_index<1>("reduce", kept_shape, {&kept_strides});
  const auto reduced = strided_index<1>("reduce", red_shape, {&red_strides});
  const int64_t chunks = chunks_per_output(outputs, reduce_size);
  if (chunks > 1) {
    // Pass 1: a block per (output, chunk) into partials [outputs, chunks] of the accumulator's
    // type; pass 2: each output's chunks, in order, by one block.
    const Tensor partials = Tensor::empty({outputs * chunks}, dtype_of<Acc>::value, x.device());
    reduce_block_kernel<T, Acc, Op, Acc><<<static_cast<unsigned>(outputs * chunks), kThreads, 0, stream()>>>(
        kept, reduced, reduce_size, chunks, x.data<T>(), partials.data<Acc>());
    DK_CUDA_CHECK_LAUNCH();
    const Shape rows{outputs}, row_strides{chunks}, columns{chunks}, column_strides{1};
    const auto row = strided_index<1>("reduce", rows, {&row_strides});
    const auto column = strided_index<1>("reduce", columns, {&column_strides});
    reduce_block_kernel<Acc, Acc, Op, T><<<static_cast<unsigned>(outputs), kThreads, 0, stream()>>>(
        row, column, chunks, 1, partials.data<Acc>(), out.data<T>());
  } else if (reduce_size >= 128) {
    reduce_block_kernel<T, Acc, Op, T><<<static_cast<unsigned>(outputs), kThreads, 0, stream()>>>(
        kept, reduced, reduce_size, 1, x.data<T>(), out.data<T>());
  } else {
    reduce_thread_kernel<T, Acc, Op><<<blocks_for(outputs, kThreads), kThreads, 0, stream()>>>(
        kept, reduced, outputs, reduce_size, x.data<T>(), out.data<T>());
  }
  DK_CUDA_CHECK_LAUNCH();
}

// Softmax over rows of `len` elements, `inner` apart (a contiguous [outer, len, inner] view): a
// block per (outer, inner) row, striding over the rows when there are more than blocks. The
// maximum is subtracted first; the sum accumulates in double.
template <typename T>
__global__ void softmax_kernel(const T* x, T* out, int64_t rows, int64_t len, int64_t inner, bool log) {
  __shared__ double partial[kThreads];
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {  // uniform across the block
    const int64_t o = row / inner, i = row % inner;
    const T* in = x + o * len * inner + i;
    T* dst = out + o * len * inner + i;
    double m = -INFINITY;
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) m = fmax(m, static_cast<double>(in[k * inner]));
    const T row_max = static_cast<T>(block_reduce(m, partial, [](double a, double b) { return fmax(a, b); }));
    double s = 0;
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) s += static_cast<double>(exp(in[k * inner] - row_max));
    const double total = block_sum(s, partial);
    for (int64_t k = threadIdx.x; k < len; k += blockDim.x) {
      const T shifted = in[k * inner] - row_max;
      dst[k * inner] = log ? static_cast<T>(shifted - ::log(total)) : static_cast<T>(exp(shifted) / total);
    }
  }
}

}  // namespace

void CudaBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims, const Tensor& out) {
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) reduced[x.wrap_dim(d)] = true;
  for (int64_t d = 0; d < x.dim(); ++d)
    DK_CHECK(out.size(d) == (reduced[d] ? 1 : x.size(d)), "reduce: output shape ", shape_str(out.shape()),
             " does not match input ", shape_str(x.shape()));
  DK_CHECK(out.is_contiguous(), "reduce: output must be contiguous");
  if (out.numel() == 0) return;
  if (x.numel() == 0) {
    DK_CHECK(op == ReduceOp::Sum, "reduce: max/min of an empty tensor ", shape_str(x.shape()));
    fill(out, 0.0);
    return;
  }
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case ReduceOp::Sum: return launch_reduce<T, double, SumOp<T, double>>(x, reduced, out);
      case ReduceOp::Max: return launch_reduce<T, T, MaxOp<T, T>>(x, reduced, out);
      case ReduceOp::Min: return launch_reduce<T, T, MinOp<T, T>>(x, reduced, out);
    }
  });
}

void CudaBackend::softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  dim = x.wrap_dim(dim);
  DK_CHECK(out.is_contiguous() && out.shape() == x.shape(), "softmax: bad output");
  if (x.numel() == 0) return;
  const Tensor xc = contiguous_on_device(x);
  const int64_t len = x.size(dim);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using T = typename decltype(tag)::type;
    // One block per row up to blocks_for's cap (65535 x 16), then each block strides.
    softmax_kernel<T><<<blocks_for(outer * inner, 1), kThreads, 0, stream()>>>(xc.data<T>(), out.data<T>(),
                                                                                outer * inner, len, inner, log);
    DK_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace diffkd::cuda

// The CUDA backend's entry points that are plain host code: copies between host and device, GEMM
// on cuBLAS (opened at run time, cuda/cublas_loader.h), and the backend object itself. Kernels live in the .cu files beside it.

#include "cuda/cuda_backend.h"

#include <algorithm>
#include <limits>

#include "cuda/cublas_loader.h"
#include "cuda/runtime.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd::cuda {

namespace {

bool on_cuda(const Tensor& t) { return t.device().type == DeviceType::CUDA; }

// A contiguous host tensor with src's values in `dtype` (src itself when it already is one).
Tensor host_contiguous(const Tensor& src, DType dtype) {
  if (src.is_contiguous() && src.dtype() == dtype) return src;
  Tensor t = Tensor::empty(src.shape(), dtype, cpu());
  cpu_backend().copy(src, t);
  return t;
}

}  // namespace

// dst = src where either side may be on the host: host data are staged contiguous in the
// destination's dtype and moved with one cudaMemcpy; strided device layouts go through a
// contiguous device buffer and the device copy kernel.
void CudaBackend::copy(const Tensor& src, const Tensor& dst) {
  DK_CHECK(src.shape() == dst.shape(), "copy: source shape ", shape_str(src.shape()), " differs from destination ",
           shape_str(dst.shape()));
  if (src.numel() == 0) return;
  if (on_cuda(src) && on_cuda(dst)) return copy_on_device(src, dst);
  if (on_cuda(dst)) {  // host -> device
    const Tensor host = host_contiguous(src, dst.dtype());
    Tensor target = dst.is_contiguous() ? dst : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
    DK_CUDA_CHECK(cudaMemcpyAsync(target.raw_data(), host.raw_data(), host.numel() * itemsize(host.dtype()),
                                  cudaMemcpyHostToDevice, stream()));
    // The host buffer may be freed on return: wait until the transfer has read it.
    DK_CUDA_CHECK(cudaStreamSynchronize(stream()));
    if (!dst.is_contiguous()) copy_on_device(target, dst);
    return;
  }
  DK_CHECK(on_cuda(src), "copy: the CUDA backend was asked to copy between two host tensors");
  // device -> host
  Tensor source = src;
  if (!src.is_contiguous()) {
    source = Tensor::empty(src.shape(), src.dtype(), src.device());
    copy_on_device(src, source);
  }
  Tensor host = (dst.is_contiguous() && dst.dtype() == src.dtype()) ? dst : Tensor::empty(src.shape(), src.dtype(), cpu());
  DK_CUDA_CHECK(cudaMemcpyAsync(host.raw_data(), source.raw_data(), source.numel() * itemsize(source.dtype()),
                                cudaMemcpyDeviceToHost, stream()));
  DK_CUDA_CHECK(cudaStreamSynchronize(stream()));
  if (host.raw_data() != dst.raw_data()) cpu_backend().copy(host, dst);
}

namespace {

// One GEMM operand as cuBLAS reads it. cuBLAS is column-major: a row-major matrix M [r, c] with
// row stride ld is, to cuBLAS, the column-major M^T [c, r] with leading dimension ld; a matrix
// stored column-major (unit row stride) is M itself. Anything else (stride-0 or overlapping rows,
// both strides > 1) is copied contiguous first.
struct BlasOperand {
  Tensor storage;                // what the pointer points into (kept alive)
  bool column_view_is_transposed;  // cuBLAS sees M^T (row-major storage)
  int64_t ld;
  int64_t batch_stride;
};

BlasOperand blas_operand(const Tensor& m) {
  const int64_t r = m.size(1), c = m.size(2);
  int64_t sr = m.stride(1), sc = m.stride(2);
  if (c == 1) sc = 1;  // the stride of a size-1 dim never matters
  if (r == 1) sr = std::max<int64_t>(c, 1);
  const int64_t batch_stride = m.size(0) == 1 ? 0 : m.stride(0);
  if (sc == 1 && sr >= std::max<int64_t>(c, 1)) return {m, true, sr, batch_stride};
  if (sr == 1 && sc >= std::max<int64_t>(r, 1) && r > 1) return {m, false, sc, batch_stride};
  Tensor copy = Tensor::empty(m.shape(), m.dtype(), m.device());
  copy_on_device(m, copy);
  return {copy, true, std::max<int64_t>(c, 1), m.size(0) == 1 ? 0 : r * c};
}

}  // namespace

// Row-major C = alpha op(A) op(B) + beta C is, in cuBLAS's column-major terms,
// C^T [n, m] = op(B)^T [n, k] op(A)^T [k, m]: B is the first cuBLAS operand, A the second.
void CudaBackend::gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b, double beta,
                       const Tensor& c) {
  DK_CHECK(a.dim() == 3 && b.dim() == 3 && c.dim() == 3, "gemm: expected 3-D operands, got ", shape_str(a.shape()), ", ",
           shape_str(b.shape()), ", ", shape_str(c.shape()));
  DK_CHECK(c.is_contiguous(), "gemm: output must be contiguous");
  const int64_t batch = c.size(0), m = c.size(1), n = c.size(2);
  const int64_t k = trans_a ? a.size(1) : a.size(2);
  DK_CHECK((trans_a ? a.size(2) : a.size(1)) == m && (trans_b ? b.size(1) : b.size(2)) == n &&
               (trans_b ? b.size(2) : b.size(1)) == k && (a.size(0) == batch || a.size(0) == 1) &&
               (b.size(0) == batch || b.size(0) == 1),
           "gemm: shapes ", shape_str(a.shape()), (trans_a ? "^T" : ""), " x ", shape_str(b.shape()),
           (trans_b ? "^T" : ""), " do not give ", shape_str(c.shape()));
  if (batch == 0 || m == 0 || n == 0) return;
  const BlasOperand x = blas_operand(b), y = blas_operand(a);
  // cuBLAS wants op(B)^T (= B when trans_b, else B^T) and op(A)^T; it transposes what it sees
  // when that differs.
  const cublasOperation_t op_x = (x.column_view_is_transposed != trans_b) ? CUBLAS_OP_N : CUBLAS_OP_T;
  const cublasOperation_t op_y = (y.column_view_is_transposed != trans_a) ? CUBLAS_OP_N : CUBLAS_OP_T;
  const int64_t c_stride = batch == 1 ? 0 : m * n;
  // cuBLAS takes sizes, leading dimensions and the batch count as int: a larger one would wrap.
  constexpr int64_t kIntMax = std::numeric_limits<int>::max();
  DK_CHECK(std::max({m, n, k, batch, x.ld, y.ld}) <= kIntMax, "gemm on CUDA: ", shape_str(a.shape()), " x ",
           shape_str(b.shape()), " has a size or leading dimension over 2^31 - 1 (cuBLAS's int)");
  dispatch_float(c.dtype(), "gemm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T al = static_cast<T>(alpha), be = static_cast<T>(beta);
    const T* px = x.storage.data<T>();
    const T* py = y.storage.data<T>();
    if constexpr (std::is_same_v<T, float>)
      DK_CUBLAS_CHECK(cublas_api().sgemm_strided_batched(cublas(), op_x, op_y, n, m, k, &al, px, x.ld, x.batch_stride, py, y.ld,
                                                y.batch_stride, &be, c.data<T>(), n, c_stride, batch));
    else
      DK_CUBLAS_CHECK(cublas_api().dgemm_strided_batched(cublas(), op_x, op_y, n, m, k, &al, px, x.ld, x.batch_stride, py, y.ld,
                                                y.batch_stride, &be, c.data<T>(), n, c_stride, batch));
  });
}

CudaBackend& cuda_backend() {
  static CudaBackend backend;
  return backend;
}

}  // namespace diffkd::cuda

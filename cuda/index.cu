// index_select and its adjoint index_add on the GPU, on the [outer, size(dim), inner] view. The
// index is checked on the host first, so a bad index is an error, never an out-of-bounds access:
// a host index is checked where it is and copied up once; a device index is read down once and
// then used where it is. index_add gives each thread one (outer, inner) column and walks the
// index in order: repeated indices add deterministically, without atomics.

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd::cuda {

namespace {

// The index as a contiguous device tensor, after checking every entry on the host.
Tensor checked_index(const char* op, const Tensor& index, int64_t limit, Device device) {
  DK_CHECK(index.dtype() == DType::I64 && index.dim() == 1, op, ": index must be 1-D i64, got ",
           dtype_name(index.dtype()), " ", shape_str(index.shape()));
  const bool on_device = index.device().type == DeviceType::CUDA;
  Tensor host = on_device || !index.is_contiguous() ? Tensor::empty(index.shape(), DType::I64, cpu()) : index;
  if (on_device)
    cuda_backend().copy(index, host);
  else if (host.raw_data() != index.raw_data())
    cpu_backend().copy(index, host);
  const int64_t* ip = host.data<int64_t>();
  for (int64_t i = 0; i < host.numel(); ++i)
    DK_CHECK(ip[i] >= 0 && ip[i] < limit, op, ": index ", ip[i], " out of range [0, ", limit, ")");
  if (on_device) return contiguous_on_device(index);
  Tensor uploaded = Tensor::empty(index.shape(), DType::I64, device);
  cuda_backend().copy(host, uploaded);
  return uploaded;
}

template <typename T>
__global__ void index_select_kernel(const T* x, const int64_t* index, T* out, int64_t outer, int64_t len, int64_t k,
                                    int64_t inner) {
  DK_GRID_STRIDE_LOOP(e, outer * k * inner) {
    const int64_t j = e % inner, i = (e / inner) % k, o = e / (inner * k);
    out[e] = x[(o * len + index[i]) * inner + j];
  }
}

template <typename T>
__global__ void index_add_kernel(T* out, const int64_t* index, const T* src, int64_t outer, int64_t len, int64_t k,
                                 int64_t inner) {
  DK_GRID_STRIDE_LOOP(e, outer * inner) {
    const int64_t j = e % inner, o = e / inner;
    for (int64_t i = 0; i < k; ++i) out[(o * len + index[i]) * inner + j] += src[(o * k + i) * inner + j];
  }
}

}  // namespace

void CudaBackend::index_select(const Tensor& x_in, int64_t dim, const Tensor& index, const Tensor& out) {
  const Tensor x = contiguous_on_device(x_in);
  dim = x.wrap_dim(dim);
  const Tensor idx = checked_index("index_select", index, x.size(dim), x.device());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const int64_t len = x.size(dim), k = index.numel(), n = outer * k * inner;
  if (n == 0) return;
  dispatch_all(x.dtype(), "index_select", [&](auto tag) {
    using T = typename decltype(tag)::type;
    index_select_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(x.data<T>(), idx.data<int64_t>(),
                                                                               out.data<T>(), outer, len, k, inner);
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src_in) {
  const Tensor src = contiguous_on_device(src_in);
  DK_CHECK(out.is_contiguous(), "index_add: output must be contiguous");
  dim = out.wrap_dim(dim);
  const Tensor idx = checked_index("index_add", index, out.size(dim), out.device());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.size(d);
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.size(d);
  const int64_t len = out.size(dim), k = index.numel(), n = outer * inner;
  if (n == 0 || k == 0) return;
  dispatch_float(out.dtype(), "index_add", [&](auto tag) {
    using T = typename decltype(tag)::type;
    index_add_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(out.data<T>(), idx.data<int64_t>(),
                                                                            src.data<T>(), outer, len, k, inner);
    DK_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace diffkd::cuda

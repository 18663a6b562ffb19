// index_select and its adjoint index_add on the CPU. The tensor is viewed as
// [outer, size(dim), inner]; index is a 1-D i64 tensor of positions along dim.

#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {
void check_index(const char* op, const Tensor& index, int64_t limit) {
  DK_CHECK(index.dtype() == DType::I64 && index.dim() == 1, op, ": index must be 1-D i64, got ",
           dtype_name(index.dtype()), " ", shape_str(index.shape()));
  const int64_t* ip = index.data<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i)
    DK_CHECK(ip[i * index.stride(0)] >= 0 && ip[i * index.stride(0)] < limit, op, ": index ",
             ip[i * index.stride(0)], " out of range [0, ", limit, ")");
}
}  // namespace

void CpuBackend::index_select(const Tensor& x_in, int64_t dim, const Tensor& index,
                              const Tensor& out) {
  const Tensor x = x_in.is_contiguous() ? x_in : x_in.clone_data();
  dim = x.wrap_dim(dim);
  check_index("index_select", index, x.size(dim));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const int64_t len = x.size(dim), k = index.numel();
  const int64_t* ip = index.data<int64_t>();
  const int64_t is = index.stride(0);
  dispatch_all(x.dtype(), "index_select", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = x.data<T>();
    T* op = out.data<T>();
#pragma omp parallel for collapse(2) schedule(static) if (out.numel() > 32768)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i)
        std::copy(xp + (o * len + ip[i * is]) * inner, xp + (o * len + ip[i * is] + 1) * inner,
                  op + (o * k + i) * inner);
  });
}

void CpuBackend::index_add(const Tensor& out, int64_t dim, const Tensor& index,
                           const Tensor& src_in) {
  const Tensor src = src_in.is_contiguous() ? src_in : src_in.clone_data();
  DK_CHECK(out.is_contiguous(), "index_add: output must be contiguous");
  dim = out.wrap_dim(dim);
  check_index("index_add", index, out.size(dim));
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.size(d);
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.size(d);
  const int64_t len = out.size(dim), k = index.numel();
  const int64_t* ip = index.data<int64_t>();
  const int64_t is = index.stride(0);
  dispatch_float(out.dtype(), "index_add", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* sp = src.data<T>();
    T* op = out.data<T>();
    // Parallel over outer only: repeated indices then add in index order, deterministically.
#pragma omp parallel for schedule(static) if (src.numel() > 32768)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < k; ++i) {
        T* dst = op + (o * len + ip[i * is]) * inner;
        const T* s = sp + (o * k + i) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] += s[j];
      }
  });
}

}  // namespace diffkd

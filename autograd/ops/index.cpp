// index_select (gathering rows along a dim) and its adjoint index_add_to_zeros.
//   index_select:       gx   = index_add_to_zeros(x.shape, dim, index, g)
//   index_add_to_zeros: gsrc = index_select(g, dim, index)
// Each is the other's backward, so gradients of any order flow.

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = x.wrap_dim(dim);
  DK_CHECK(index.dtype() == DType::I64 && index.dim() == 1, "index_select: index must be 1-D i64, ",
           "got ", dtype_name(index.dtype()), " ", shape_str(index.shape()));
  Shape shape = x.shape();
  shape[dim] = index.numel();
  Tensor out = empty_as(shape, x);
  be(x).index_select(x, dim, index, out);
  return record("index_select", {x}, out, [xs = x.shape(), dim, index](const GradContext& c) {
    return TensorList{index_add_to_zeros(xs, dim, index, c.grad)};
  });
}

Tensor index_add_to_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = zeros(shape, src.dtype(), src.device());
  dim = out.wrap_dim(dim);
  DK_CHECK(index.dtype() == DType::I64 && index.dim() == 1, "index_add: index must be 1-D i64, ",
           "got ", dtype_name(index.dtype()), " ", shape_str(index.shape()));
  bool matches = src.dim() == out.dim() && src.size(dim) == index.numel();
  for (int64_t d = 0; matches && d < out.dim(); ++d) matches = d == dim || src.size(d) == shape[d];
  DK_CHECK(matches, "index_add: source ", shape_str(src.shape()), " does not match ",
           index.numel(), " indices into ", shape_str(shape), " along dim ", dim);
  be(src).index_add(out, dim, index, src);
  return record("index_add", {src}, out, [dim, index](const GradContext& c) {
    return TensorList{index_select(c.grad, dim, index)};
  });
}

}  // namespace diffkd

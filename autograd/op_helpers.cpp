// Helpers shared by the op files in autograd/ops/ (declared in op_helpers.h).

#include "autograd/op_helpers.h"

namespace diffkd::ops {

Tensor expand_raw(const Tensor& t, const Shape& shape) {
  const int64_t extra = static_cast<int64_t>(shape.size()) - t.dim();
  Shape strides(shape.size(), 0);
  for (int64_t d = 0; d < t.dim(); ++d)
    strides[extra + d] = (t.size(d) == 1 && shape[extra + d] != 1) ? 0 : t.stride(d);
  return t.as_strided(shape, strides, t.offset());
}

void check_compatible(const char* op, const Tensor& a, const Tensor& b) {
  DK_CHECK(a.defined() && b.defined(), op, ": undefined operand");
  DK_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ: ", dtype_name(a.dtype()), " ",
           shape_str(a.shape()), " vs ", dtype_name(b.dtype()), " ", shape_str(b.shape()));
  DK_CHECK(a.device() == b.device(), op, ": devices differ: ", a.device().str(), " vs ",
           b.device().str());
}

Tensor unary_forward(UnaryOp op, const Tensor& x, double a, double b) {
  DK_CHECK(x.defined(), "unary op on an undefined tensor");
  Tensor out = empty_like(x);
  be(x).unary(op, x, out, a, b);
  return out;
}

Tensor mark_not_differentiable_again(const char* op, Tensor grad, const TensorList& inputs) {
  return record(op, inputs, std::move(grad), [op](const GradContext&) -> TensorList {
    fail(op, ": its gradient is not differentiable again (double backward is not implemented)");
  });
}

}  // namespace diffkd::ops

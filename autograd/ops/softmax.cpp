// softmax and log_softmax along a dim: one fused, max-shifted forward kernel each; backward
// written with differentiable ops (y = output):
//   softmax:     gx = y * (g - sum(g * y, dim))
//   log_softmax: gx = g - exp(y) * sum(g, dim)

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor softmax(const Tensor& x, int64_t dim) {
  dim = x.wrap_dim(dim);
  Tensor out = empty_like(x);
  be(x).softmax(x, dim, false, out);
  return record("softmax", {x}, out, [dim](const GradContext& c) {
    return TensorList{c.out * (c.grad - sum(c.grad * c.out, {dim}, true))};
  }, true);
}

Tensor log_softmax(const Tensor& x, int64_t dim) {
  dim = x.wrap_dim(dim);
  Tensor out = empty_like(x);
  be(x).softmax(x, dim, true, out);
  return record("log_softmax", {x}, out, [dim](const GradContext& c) {
    return TensorList{c.grad - exp(c.out) * sum(c.grad, {dim}, true)};
  }, true);
}

}  // namespace diffkd

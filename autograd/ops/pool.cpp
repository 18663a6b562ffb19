// Pooling (NCHW):
//   avg_pool2d: gx = avg_pool2d_backward(g)   (each window spreads g / (k*k); count_include_pad)
//               and avg_pool2d_backward's own backward is avg_pool2d: higher orders flow.
//   max_pool2d: gx = g routed to each window's argmax. This gradient is not differentiable again
//               (no method here needs it); asking for it throws.

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Pool2dParams pool_params(const char* op, const Tensor& x, int64_t kernel, int64_t stride,
                         int64_t padding) {
  DK_CHECK(x.dim() == 4, op, ": expected [N,C,H,W], got ", shape_str(x.shape()));
  if (stride < 0) stride = kernel;
  DK_CHECK(kernel > 0 && stride > 0 && padding >= 0 && 2 * padding <= kernel, op, ": kernel ",
           kernel, ", stride ", stride, ", padding ", padding, " are invalid (padding at most ",
           "half the kernel)");
  return {kernel, kernel, stride, stride, padding, padding};
}

Shape pooled_shape(const char* op, const Tensor& x, const Pool2dParams& p) {
  const int64_t oh = (x.size(2) + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t ow = (x.size(3) + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  DK_CHECK(oh > 0 && ow > 0, op, ": kernel ", p.kernel_h, " larger than input ",
           shape_str(x.shape()));
  return {x.size(0), x.size(1), oh, ow};
}

Tensor avg_pool2d_impl(const Tensor& x, const Pool2dParams& p);

Tensor avg_pool2d_backward(const Tensor& g, const Shape& input_shape, const Pool2dParams& p) {
  Tensor out = empty_as(input_shape, g);
  be(g).avg_pool2d_backward(g, out, p);
  return record("avg_pool2d_backward", {g}, out,
                [p](const GradContext& c) { return TensorList{avg_pool2d_impl(c.grad, p)}; });
}

Tensor avg_pool2d_impl(const Tensor& x, const Pool2dParams& p) {
  Tensor out = empty_as(pooled_shape("avg_pool2d", x, p), x);
  be(x).avg_pool2d(x, out, p);
  return record("avg_pool2d", {x}, out, [p, xs = x.shape()](const GradContext& c) {
    return TensorList{avg_pool2d_backward(c.grad, xs, p)};
  });
}

}  // namespace

Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  return avg_pool2d_impl(x, pool_params("avg_pool2d", x, kernel, stride, padding));
}

Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride, int64_t padding) {
  const Pool2dParams p = pool_params("max_pool2d", x, kernel, stride, padding);
  const Shape shape = pooled_shape("max_pool2d", x, p);
  Tensor out = empty_as(shape, x);
  Tensor indices = Tensor::empty(shape, DType::I64, x.device());
  be(x).max_pool2d(x, out, indices, p);
  return record("max_pool2d", {x}, out, [indices, p, xs = x.shape()](const GradContext& c) {
    Tensor gx = empty_as(xs, c.grad);
    be(c.grad).max_pool2d_backward(c.grad, indices, gx, p);
    return TensorList{mark_not_differentiable_again("max_pool2d", gx, {c.grad})};
  });
}

}  // namespace diffkd

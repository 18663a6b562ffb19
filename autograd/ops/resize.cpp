// Resampling (NCHW): nearest upsampling by an integer factor, and bilinear resize with
// align_corners=False (PyTorch's F.interpolate). Both are linear maps; each forward's backward
// is its adjoint kernel, and the adjoint's backward is the forward again, so gradients of any
// order flow.

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Tensor nearest(const Tensor& x, const Shape& out_shape);

Tensor nearest_adjoint(const Tensor& g, const Shape& in_shape) {
  Tensor out = empty_as(in_shape, g);
  be(g).upsample_nearest_backward(g, out);
  return record("upsample_nearest_backward", {g}, out, [os = g.shape()](const GradContext& c) {
    return TensorList{nearest(c.grad, os)};
  });
}

Tensor nearest(const Tensor& x, const Shape& out_shape) {
  Tensor out = empty_as(out_shape, x);
  be(x).upsample_nearest(x, out);
  return record("upsample_nearest", {x}, out, [xs = x.shape()](const GradContext& c) {
    return TensorList{nearest_adjoint(c.grad, xs)};
  });
}

Tensor bilinear(const Tensor& x, const Shape& out_shape);

Tensor bilinear_adjoint(const Tensor& g, const Shape& in_shape) {
  Tensor out = empty_as(in_shape, g);
  be(g).resize_bilinear_backward(g, out);
  return record("resize_bilinear_backward", {g}, out, [os = g.shape()](const GradContext& c) {
    return TensorList{bilinear(c.grad, os)};
  });
}

Tensor bilinear(const Tensor& x, const Shape& out_shape) {
  Tensor out = empty_as(out_shape, x);
  be(x).resize_bilinear(x, out);
  return record("resize_bilinear", {x}, out, [xs = x.shape()](const GradContext& c) {
    return TensorList{bilinear_adjoint(c.grad, xs)};
  });
}

}  // namespace

Tensor upsample_nearest(const Tensor& x, int64_t scale) {
  DK_CHECK(x.dim() == 4 && scale >= 1, "upsample_nearest: expected [N,C,H,W] and scale >= 1, got ",
           shape_str(x.shape()), " and ", scale);
  return nearest(x, {x.size(0), x.size(1), x.size(2) * scale, x.size(3) * scale});
}

Tensor resize_bilinear(const Tensor& x, int64_t h, int64_t w) {
  DK_CHECK(x.dim() == 4 && h > 0 && w > 0, "resize_bilinear: expected [N,C,H,W] and a positive ",
           "size, got ", shape_str(x.shape()), " and (", h, ", ", w, ")");
  return bilinear(x, {x.size(0), x.size(1), h, w});
}

}  // namespace diffkd

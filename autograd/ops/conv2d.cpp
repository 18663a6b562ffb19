// conv2d, conv_transpose2d, and the two gradient maps of conv2d as ops of their own.
//
// conv2d is bilinear in (x, w), so all its derivatives are built from three maps:
//   Y(x, w)  = conv2d(x, w)                         (forward)
//   X(gy, w) = conv2d_input_grad(gy, w)             = J_x^T gy, also conv_transpose2d's forward
//   W(x, gy) = conv2d_weight_grad(x, gy)            = J_w^T gy
// and each map's backward is again two of them (from <a, Y(x, w)> = <X(a, w), x> = <W(x, a), w>):
//   Y: gx = X(g, w),   gw = W(x, g)
//   X: ggy = Y(g, w),  gw = W(g, gy)
//   W: gx = X(gy, g),  ggy = Y(x, g)
// so gradients of any order exist (WGAN-GP needs the second). The bias gradient is
// sum over (N, H, W).

#include "autograd/flop_counter.h"
#include "autograd/grad_mode.h"
#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Conv2dParams params(const Conv2dOptions& o) {
  DK_CHECK(o.stride.size() == 2 && o.padding.size() == 2 && o.output_padding.size() == 2,
           "conv2d: stride, padding and output_padding take 2 values each");
  DK_CHECK(o.stride[0] > 0 && o.stride[1] > 0 && o.padding[0] >= 0 && o.padding[1] >= 0,
           "conv2d: stride must be positive and padding non-negative, got stride ",
           shape_str(o.stride), " padding ", shape_str(o.padding));
  return {o.stride[0], o.stride[1], o.padding[0], o.padding[1]};
}

int64_t conv_out(int64_t in, int64_t k, int64_t s, int64_t p) { return (in + 2 * p - k) / s + 1; }

Tensor add_bias_grad(const Tensor& g) { return sum(g, {0, 2, 3}); }

Tensor conv2d_no_bias(const Tensor& x, const Tensor& w, const Conv2dOptions& opt);

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dOptions& opt) {
  check_compatible("conv2d", x, w);
  DK_CHECK(x.dim() == 4 && w.dim() == 4, "conv2d: expected input [N,C,H,W] and weight ",
           "[O,C,kh,kw], got ", shape_str(x.shape()), " and ", shape_str(w.shape()));
  DK_CHECK(x.size(1) == w.size(1), "conv2d: input ", shape_str(x.shape()), " has ", x.size(1),
           " channels, weight ", shape_str(w.shape()), " expects ", w.size(1));
  const Conv2dParams p = params(opt);
  const int64_t oh = conv_out(x.size(2), w.size(2), p.stride_h, p.pad_h);
  const int64_t ow = conv_out(x.size(3), w.size(3), p.stride_w, p.pad_w);
  DK_CHECK(oh > 0 && ow > 0, "conv2d: kernel ", shape_str(w.shape()), " larger than padded input ",
           shape_str(x.shape()));
  if (b.defined())
    DK_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "conv2d: bias ", shape_str(b.shape()),
             " does not match ", w.size(0), " output channels");
  Tensor out = empty_as({x.size(0), w.size(0), oh, ow}, x);
  // Without gradients the weight is being used, not trained (sampling, a frozen teacher): the
  // backend may keep its packed form for the next call (a weight written since is repacked).
  Conv2dParams forward_params = p;
  forward_params.reuse_packed_weight = !GradMode::is_enabled();
  be(x).conv2d_forward(x, w, b.defined() ? b.detach() : Tensor(), out, forward_params);
  FlopCounter::add(2 * out.numel() * w.size(1) * w.size(2) * w.size(3));
  return record("conv2d", {x, w, b}, out, [x, w, opt](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? conv2d_input_grad(c.grad, w, x.shape(), opt) : Tensor(),
                      c.needs_grad(1) ? conv2d_weight_grad(x, c.grad, w.shape(), opt) : Tensor(),
                      c.needs_grad(2) ? add_bias_grad(c.grad) : Tensor()};
  });
}

namespace {
Tensor conv2d_no_bias(const Tensor& x, const Tensor& w, const Conv2dOptions& opt) {
  return conv2d(x, w, Tensor(), opt);
}
}  // namespace

Tensor conv2d_input_grad(const Tensor& gy, const Tensor& w, const Shape& input_shape,
                         const Conv2dOptions& opt) {
  const Conv2dParams p = params(opt);
  Tensor out = empty_as(input_shape, gy);
  be(gy).conv2d_backward_input(gy, w, out, p);
  FlopCounter::add(2 * gy.numel() * w.size(1) * w.size(2) * w.size(3));
  return record("conv2d_input_grad", {gy, w}, out, [gy, w, opt](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? conv2d_no_bias(c.grad, w, opt) : Tensor(),
                      c.needs_grad(1) ? conv2d_weight_grad(c.grad, gy, w.shape(), opt) : Tensor()};
  });
}

Tensor conv2d_weight_grad(const Tensor& x, const Tensor& gy, const Shape& weight_shape,
                          const Conv2dOptions& opt) {
  const Conv2dParams p = params(opt);
  Tensor out = empty_as(weight_shape, x);
  be(x).conv2d_backward_weight(x, gy, out, p);
  return record("conv2d_weight_grad", {x, gy}, out, [x, gy, opt](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? conv2d_input_grad(gy, c.grad, x.shape(), opt) : Tensor(),
                      c.needs_grad(1) ? conv2d_no_bias(x, c.grad, opt) : Tensor()};
  });
}

// conv_transpose2d(x, w) = X(x, w) with w [C_in, C_out, kh, kw] playing conv2d's [O, C, kh, kw]:
// H_out = (H - 1) * stride - 2 * padding + kh + output_padding.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b,
                        const Conv2dOptions& opt) {
  check_compatible("conv_transpose2d", x, w);
  DK_CHECK(x.dim() == 4 && w.dim() == 4, "conv_transpose2d: expected input [N,C,H,W] and ",
           "weight [C_in,C_out,kh,kw], got ", shape_str(x.shape()), " and ", shape_str(w.shape()));
  DK_CHECK(x.size(1) == w.size(0), "conv_transpose2d: input ", shape_str(x.shape()), " has ",
           x.size(1), " channels, weight ", shape_str(w.shape()), " expects ", w.size(0));
  const Conv2dParams p = params(opt);
  // As PyTorch (no dilation here): 0 <= output_padding < stride, else the extra rows would lie
  // beyond what any input pixel reaches.
  DK_CHECK(opt.output_padding[0] >= 0 && opt.output_padding[1] >= 0 &&
               opt.output_padding[0] < p.stride_h && opt.output_padding[1] < p.stride_w,
           "conv_transpose2d: output_padding ", shape_str(opt.output_padding),
           " must be >= 0 and smaller than stride ", shape_str(opt.stride));
  const int64_t oh = (x.size(2) - 1) * p.stride_h - 2 * p.pad_h + w.size(2) + opt.output_padding[0];
  const int64_t ow = (x.size(3) - 1) * p.stride_w - 2 * p.pad_w + w.size(3) + opt.output_padding[1];
  DK_CHECK(oh > 0 && ow > 0, "conv_transpose2d: empty output for input ", shape_str(x.shape()));
  Tensor y = conv2d_input_grad(x, w, {x.size(0), w.size(1), oh, ow}, opt);
  if (b.defined()) {
    DK_CHECK(b.dim() == 1 && b.size(0) == w.size(1), "conv_transpose2d: bias ",
             shape_str(b.shape()), " does not match ", w.size(1), " output channels");
    y = y + reshape(b, {1, w.size(1), 1, 1});
  }
  return y;
}

}  // namespace diffkd

// Elementwise math: neg, affine (scalar + - * /), exp, log, sqrt, rsqrt, abs, square, pow with a
// scalar exponent, clamp, sign, to_dtype.
//   neg:    gx = -g                    affine(x; a, b) = a x + b:  gx = a g
//   exp:    gx = g * out               log:   gx = g / x
//   sqrt:   gx = g / (2 out)           rsqrt: gx = -g out^3 / 2
//   abs:    gx = g * sign(x)           square: gx = 2 g x
//   pow(x, p): gx = p g x^(p-1)        clamp: gx = g * [lo <= x <= hi]

#include <limits>

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {
// A constant (history-free) elementwise function of x: masks and signs used by backward.
Tensor constant_of(UnaryOp op, const Tensor& x, double a = 0, double b = 0) {
  return unary_forward(op, x.detach(), a, b);
}
}  // namespace

Tensor neg(const Tensor& x) {
  return record("neg", {x}, unary_forward(UnaryOp::Neg, x),
                [](const GradContext& c) { return TensorList{neg(c.grad)}; });
}

Tensor affine(const Tensor& x, double scale, double shift) {
  return record("affine", {x}, unary_forward(UnaryOp::Affine, x, scale, shift),
                [scale](const GradContext& c) { return TensorList{affine(c.grad, scale, 0.0)}; });
}

Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& x, double s) { return affine(x, 1.0, s); }
Tensor operator+(double s, const Tensor& x) { return affine(x, 1.0, s); }
Tensor operator-(const Tensor& x, double s) { return affine(x, 1.0, -s); }
Tensor operator-(double s, const Tensor& x) { return affine(x, -1.0, s); }
Tensor operator*(const Tensor& x, double s) { return affine(x, s, 0.0); }
Tensor operator*(double s, const Tensor& x) { return affine(x, s, 0.0); }
Tensor operator/(const Tensor& x, double s) { return affine(x, 1.0 / s, 0.0); }
Tensor operator/(double s, const Tensor& x) { return s * pow(x, -1.0); }

Tensor exp(const Tensor& x) {
  return record("exp", {x}, unary_forward(UnaryOp::Exp, x),
                [](const GradContext& c) { return TensorList{mul(c.grad, c.out)}; }, true);
}

Tensor log(const Tensor& x) {
  return record("log", {x}, unary_forward(UnaryOp::Log, x),
                [x](const GradContext& c) { return TensorList{div(c.grad, x)}; });
}

Tensor sqrt(const Tensor& x) {
  return record("sqrt", {x}, unary_forward(UnaryOp::Sqrt, x),
                [](const GradContext& c) { return TensorList{div(c.grad, c.out * 2.0)}; }, true);
}

Tensor rsqrt(const Tensor& x) {
  return record("rsqrt", {x}, unary_forward(UnaryOp::Rsqrt, x),
                [](const GradContext& c) {
                  return TensorList{mul(c.grad, pow(c.out, 3.0)) * -0.5};
                }, true);
}

Tensor abs(const Tensor& x) {
  return record("abs", {x}, unary_forward(UnaryOp::Abs, x), [x](const GradContext& c) {
    return TensorList{mul(c.grad, constant_of(UnaryOp::Sign, x))};
  });
}

Tensor sign(const Tensor& x) { return constant_of(UnaryOp::Sign, x); }

// to_dtype: gx = to_dtype(g, dtype of x), the cast back.
Tensor to_dtype(const Tensor& x, DType dtype) {
  DK_CHECK(x.defined(), "to_dtype: undefined tensor");
  if (x.dtype() == dtype) return x;
  DK_CHECK(is_floating(dtype) && is_floating(x.dtype()), "to_dtype: ", dtype_name(x.dtype()),
           " -> ", dtype_name(dtype), " is not differentiable; only f32 <-> f64 is supported");
  Tensor out = Tensor::empty(x.shape(), dtype, x.device());
  be(x).copy(x, out);
  const DType from = x.dtype();
  return record("to_dtype", {x}, out,
                [from](const GradContext& c) { return TensorList{to_dtype(c.grad, from)}; });
}

Tensor square(const Tensor& x) {
  return record("square", {x}, unary_forward(UnaryOp::Square, x),
                [x](const GradContext& c) { return TensorList{mul(c.grad, x) * 2.0}; });
}

Tensor pow(const Tensor& x, double p) {
  return record("pow", {x}, unary_forward(UnaryOp::Pow, x, p), [x, p](const GradContext& c) {
    if (p == 0.0) return TensorList{zeros_like(c.grad)};
    return TensorList{mul(c.grad, pow(x, p - 1.0)) * p};
  });
}

Tensor clamp(const Tensor& x, double lo, double hi) {
  DK_CHECK(lo <= hi, "clamp: lower bound ", lo, " exceeds upper bound ", hi);
  return record("clamp", {x}, unary_forward(UnaryOp::Clamp, x, lo, hi),
                [x, lo, hi](const GradContext& c) {
                  return TensorList{mul(c.grad, constant_of(UnaryOp::InRange, x, lo, hi))};
                });
}

Tensor clamp_min(const Tensor& x, double lo) {
  return clamp(x, lo, std::numeric_limits<double>::infinity());
}

}  // namespace diffkd

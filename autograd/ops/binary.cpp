// Broadcasting binary ops: add, sub, mul, div, pow, maximum, minimum, where, comparisons.
//
// Forward: both operands are expanded (stride-0 views) to the broadcast shape of PyTorch's rules,
// then one kernel call. Backward: the gradient for an operand is computed at the broadcast
// shape and summed back to the operand's shape (sum_to).
//   add: ga = g,              gb = g
//   sub: ga = g,              gb = -g
//   mul: ga = g * b,          gb = g * a
//   div: ga = g / b,          gb = -g * a / b^2 = -g * out / b
//   pow: ga = g * b * a^(b-1), gb = g * out * log(a)
//   maximum: ga = g * [a > b] + g/2 * [a == b],  gb = g - ga   (minimum alike)
//   where:   ga = g * cond,   gb = g * (1 - cond)

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    DK_CHECK(da == db || da == 1 || db == 1, "broadcast: shapes ", shape_str(a), " and ",
             shape_str(b), " are not broadcastable (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace {

Tensor binary_forward(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  check_compatible(name, a, b);
  Shape shape;
  try {
    shape = broadcast_shapes(a.shape(), b.shape());
  } catch (const Error& e) {
    fail(name, ": ", e.what());
  }
  Tensor out = empty_as(shape, a);
  be(a).binary(op, expand_raw(a, shape), expand_raw(b, shape), out);
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("add", BinaryOp::Add, a, b);
  return record("add", {a, b}, out, [sa = a.shape(), sb = b.shape()](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? sum_to(c.grad, sa) : Tensor(),
                      c.needs_grad(1) ? sum_to(c.grad, sb) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("sub", BinaryOp::Sub, a, b);
  return record("sub", {a, b}, out, [sa = a.shape(), sb = b.shape()](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? sum_to(c.grad, sa) : Tensor(),
                      c.needs_grad(1) ? sum_to(neg(c.grad), sb) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("mul", BinaryOp::Mul, a, b);
  return record("mul", {a, b}, out, [a, b](const GradContext& c) {
    return TensorList{c.needs_grad(0) ? sum_to(mul(c.grad, b), a.shape()) : Tensor(),
                      c.needs_grad(1) ? sum_to(mul(c.grad, a), b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("div", BinaryOp::Div, a, b);
  return record("div", {a, b}, out, [a, b](const GradContext& c) {
    Tensor ga, gb;
    if (c.needs_grad(0)) ga = sum_to(div(c.grad, b), a.shape());
    if (c.needs_grad(1)) gb = sum_to(neg(div(mul(c.grad, a), mul(b, b))), b.shape());
    return TensorList{ga, gb};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward("pow", BinaryOp::Pow, a, b);
  return record("pow", {a, b}, out, [a, b](const GradContext& c) {
    Tensor ga, gb;
    if (c.needs_grad(0)) ga = sum_to(mul(c.grad, mul(b, pow(a, b - 1.0))), a.shape());
    if (c.needs_grad(1)) gb = sum_to(mul(c.grad, mul(pow(a, b), log(a))), b.shape());
    return TensorList{ga, gb};
  });
}

namespace {
// Share of the gradient that goes to `a` in maximum (greater) or minimum (!greater).
Tensor extremum_share(const Tensor& a, const Tensor& b, bool greater) {
  Tensor wins = greater ? gt(a, b) : lt(a, b);
  return add(wins, mul(eq(a, b), full_like(wins, 0.5).detach()));
}

Tensor extremum(const char* name, BinaryOp op, bool greater, const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(name, op, a, b);
  return record(name, {a, b}, out, [a, b, greater](const GradContext& c) {
    Tensor share;
    {
      NoGradGuard no_grad;  // the share is a constant mask
      share = extremum_share(a, b, greater);
    }
    Tensor ga, gb;
    if (c.needs_grad(0)) ga = sum_to(mul(c.grad, share), a.shape());
    if (c.needs_grad(1)) gb = sum_to(mul(c.grad, 1.0 - share), b.shape());
    return TensorList{ga, gb};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return extremum("maximum", BinaryOp::Maximum, true, a, b);
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return extremum("minimum", BinaryOp::Minimum, false, a, b);
}

Tensor eq(const Tensor& a, const Tensor& b) {
  return binary_forward("eq", BinaryOp::Eq, a.detach(), b.detach());
}
Tensor lt(const Tensor& a, const Tensor& b) {
  return binary_forward("lt", BinaryOp::Lt, a.detach(), b.detach());
}
Tensor gt(const Tensor& a, const Tensor& b) {
  return binary_forward("gt", BinaryOp::Gt, a.detach(), b.detach());
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_compatible("where", a, b);
  check_compatible("where", cond, a);
  const Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape()), b.shape());
  Tensor out = empty_as(shape, a);
  be(a).where(expand_raw(cond, shape), expand_raw(a, shape), expand_raw(b, shape), out);
  const Tensor mask = cond.detach();
  return record("where", {a, b}, out, [mask, sa = a.shape(), sb = b.shape()](const GradContext& c) {
    Tensor ga, gb;
    if (c.needs_grad(0)) ga = sum_to(mul(c.grad, mask), sa);
    if (c.needs_grad(1)) gb = sum_to(mul(c.grad, 1.0 - mask), sb);
    return TensorList{ga, gb};
  });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }

}  // namespace diffkd

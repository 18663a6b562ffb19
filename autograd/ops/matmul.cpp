// Matrix products. bmm ([B, M, K] @ [B, K, N]) is the primitive; matmul adds PyTorch's rules
// (1-D promotion, broadcast batch dims) with reshape/expand, whose own backward does the rest.
//   bmm:    ga = g @ b^T,   gb = a^T @ g
//   linear: y = x @ w^T + b

#include "autograd/flop_counter.h"
#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_compatible("matmul", a, b);
  DK_CHECK(a.size(2) == b.size(1), "matmul: ", shape_str(a.shape()), " @ ", shape_str(b.shape()),
           ": inner dims ", a.size(2), " and ", b.size(1), " differ");
  Tensor out = empty_as({a.size(0), a.size(1), b.size(2)}, a);
  be(a).gemm(false, false, 1.0, a, b, 0.0, out);
  return record("matmul", {a, b}, out, [a, b](const GradContext& c) {
    Tensor ga, gb;
    if (c.needs_grad(0)) ga = bmm(c.grad, transpose(b, 1, 2));
    if (c.needs_grad(1)) gb = bmm(transpose(a, 1, 2), c.grad);
    return TensorList{ga, gb};
  });
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  DK_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: operands must have at least 1 dim, got ",
           shape_str(a_in.shape()), " and ", shape_str(b_in.shape()));
  const bool a_vec = a_in.dim() == 1, b_vec = b_in.dim() == 1;
  const Tensor a = a_vec ? unsqueeze(a_in, 0) : a_in;   // [K] -> [1, K]
  const Tensor b = b_vec ? unsqueeze(b_in, 1) : b_in;   // [K] -> [K, 1]
  const int64_t m = a.size(-2), k = a.size(-1), k2 = b.size(-2), n = b.size(-1);
  DK_CHECK(k == k2, "matmul: ", shape_str(a_in.shape()), " @ ", shape_str(b_in.shape()),
           ": inner dims ", k, " and ", k2, " differ");
  const Shape batch_a(a.shape().begin(), a.shape().end() - 2);
  const Shape batch_b(b.shape().begin(), b.shape().end() - 2);
  const Shape batch = broadcast_shapes(batch_a, batch_b);
  const int64_t nb = numel_of(batch);
  Shape full_a = batch, full_b = batch;
  full_a.insert(full_a.end(), {m, k});
  full_b.insert(full_b.end(), {k, n});
  Tensor out = bmm(reshape(expand(a, full_a), {nb, m, k}), reshape(expand(b, full_b), {nb, k, n}));
  FlopCounter::add(2 * nb * m * k * n);
  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  return reshape(out, out_shape);
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  DK_CHECK(w.dim() == 2 && x.dim() >= 1 && x.size(-1) == w.size(1), "linear: input ",
           shape_str(x.shape()), " does not match weight ", shape_str(w.shape()),
           " (expected last dim ", w.dim() == 2 ? w.size(1) : -1, ")");
  Tensor y = matmul(x, transpose(w, 0, 1));
  if (b.defined()) {
    DK_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: bias ", shape_str(b.shape()),
             " does not match weight ", shape_str(w.shape()));
    y = y + b;
  }
  return y;
}

}  // namespace diffkd

#pragma once
// Helpers shared by the op files in autograd/ops/: allocation of outputs and raw (history-free)
// views, operand checks.

#include "autograd/node.h"
#include "autograd/ops.h"
#include "tensor/backend.h"

namespace diffkd::ops {

inline Backend& be(const Tensor& t) { return backend(t.device()); }

inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.dtype(), t.device()); }

inline Tensor empty_as(const Shape& shape, const Tensor& like) {
  return Tensor::empty(shape, like.dtype(), like.device());
}

// A broadcast view of t with `shape` (stride 0 on expanded dims), no history.
Tensor expand_raw(const Tensor& t, const Shape& shape);

// Raises a clear error if a and b differ in dtype or device.
void check_compatible(const char* op, const Tensor& a, const Tensor& b);

// The elementwise function op(x; a, b) into a fresh tensor, no history (ops record their own).
Tensor unary_forward(UnaryOp op, const Tensor& x, double a = 0, double b = 0);

// A node for gradients that are not differentiable again: backward of them throws.
Tensor mark_not_differentiable_again(const char* op, Tensor grad, const TensorList& inputs);

}  // namespace diffkd::ops

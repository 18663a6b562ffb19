#include "autograd/op_helpers.h"

namespace diffkd::ops {

Tensor mark_not_differentiable_again(const char* op, Tensor grad, const TensorList& inputs) {
  return record(op, inputs, std::move(grad), [op](const GradContext&) -> TensorList {
    fail(op, ": its gradient is not differentiable again (double backward is not implemented)");
  });
}

}  // namespace diffkd::ops

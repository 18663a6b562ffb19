// to_device: the same values on another device (host <-> GPU). Differentiable: the gradient
// travels back to the input's device.
//   y = x (on device d)   =>   dL/dx = (dL/dy) moved to x's device

#include "autograd/op_helpers.h"
#include "autograd/ops.h"

namespace diffkd {

Tensor to_device(const Tensor& x, Device device) {
  DK_CHECK(x.defined(), "to_device: undefined tensor");
  if (x.device() == device) return x;
  Tensor out = Tensor::empty(x.shape(), x.dtype(), device);
  copy_tensor(x, out);
  const Device from = x.device();
  return record("to_device", {x}, out,
                [from](const GradContext& c) { return TensorList{to_device(c.grad, from)}; });
}

}  // namespace diffkd

// Activations:
//   relu:        gx = g * [x > 0]
//   leaky_relu:  gx = g * ([x > 0] + s [x <= 0])
//   sigmoid:     gx = g * out (1 - out)
//   tanh:        gx = g * (1 - out^2)
//   silu = x sigmoid(x):  gx = g * (s + x s (1 - s)),  s = sigmoid(x)  (fused for first order)
//   softplus = log(1 + e^x):  gx = g * sigmoid(x)
// Masks are constants; everything else is written with differentiable ops, so second
// derivatives exist (WGAN-GP differentiates through leaky_relu).

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor relu(const Tensor& x) {
  return record("relu", {x}, unary_forward(UnaryOp::Relu, x), [x](const GradContext& c) {
    return TensorList{mul(c.grad, unary_forward(UnaryOp::Positive, x.detach()))};
  });
}

Tensor leaky_relu(const Tensor& x, double slope) {
  return record("leaky_relu", {x}, unary_forward(UnaryOp::LeakyRelu, x, slope),
                [x, slope](const GradContext& c) {
                  // [x > 0] + s [x <= 0] = s + (1 - s) [x > 0]
                  Tensor d = affine(unary_forward(UnaryOp::Positive, x.detach()), 1.0 - slope, slope);
                  return TensorList{mul(c.grad, d)};
                });
}

Tensor sigmoid(const Tensor& x) {
  return record("sigmoid", {x}, unary_forward(UnaryOp::Sigmoid, x),
                [](const GradContext& c) { return TensorList{mul(c.grad, c.out * (1.0 - c.out))}; },
                true);
}

Tensor tanh(const Tensor& x) {
  return record("tanh", {x}, unary_forward(UnaryOp::Tanh, x),
                [](const GradContext& c) {
                  return TensorList{mul(c.grad, 1.0 - square(c.out))};
                }, true);
}

Tensor silu(const Tensor& x) {
  return record("silu", {x}, unary_forward(UnaryOp::Silu, x), [x](const GradContext& c) {
    if (GradMode::is_enabled()) {  // create_graph: the composed formula, differentiable again
      Tensor s = sigmoid(x);
      return TensorList{mul(c.grad, s + x * s * (1.0 - s))};
    }
    Tensor gx = empty_like(x);  // the same formula in one fused pass
    be(x).binary(BinaryOp::SiluBackward, x, c.grad, gx);
    return TensorList{gx};
  });
}

Tensor softplus(const Tensor& x) {
  return record("softplus", {x}, unary_forward(UnaryOp::Softplus, x),
                [x](const GradContext& c) { return TensorList{mul(c.grad, sigmoid(x))}; });
}

}  // namespace diffkd

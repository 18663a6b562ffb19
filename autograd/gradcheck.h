#pragma once
// Finite-difference gradient checks (float64), as flashlight's jacobianTestImpl and PyTorch's
// gradcheck: the whole numeric Jacobian (central differences, one input element at a time) is
// compared with the whole analytic Jacobian (one backward per output element, one-hot upstream
// gradient). Failures report the worst entry.

#include <functional>
#include <string>

#include "autograd/ops.h"

namespace diffkd {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // where the worst mismatch is, when !ok
  double max_abs_error = 0;
};

using TensorFunction = std::function<Tensor(const TensorList&)>;

// inputs: f64 leaves that require grad. f may return any shape.
GradcheckResult gradcheck(const TensorFunction& f, const TensorList& inputs,
                          const GradcheckOptions& opt = {});

// Checks second derivatives: gradcheck of x -> <d<f(x), v>/dx, u> for fixed random v, u,
// computed with create_graph.
GradcheckResult gradgradcheck(const TensorFunction& f, const TensorList& inputs,
                              const GradcheckOptions& opt = {});

}  // namespace diffkd

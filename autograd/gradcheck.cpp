#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

namespace diffkd {

namespace {

std::vector<double> evaluate(const TensorFunction& f, const TensorList& inputs) {
  NoGradGuard no_grad;
  return f(inputs).to_vector();
}

// Pointer to logical element k (row-major) of a f64 tensor, through its strides.
double* element(const Tensor& t, int64_t k) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    off += (k % t.size(d)) * t.stride(d);
    k /= t.size(d);
  }
  return t.data<double>() + off;
}

}  // namespace

GradcheckResult gradcheck(const TensorFunction& f, const TensorList& inputs,
                          const GradcheckOptions& opt) {
  for (const Tensor& x : inputs)
    DK_CHECK(x.dtype() == DType::F64 && x.requires_grad(),
             "gradcheck: inputs must be f64 tensors that require grad");
  Tensor out = f(inputs);
  const int64_t m = out.numel();

  // Analytic Jacobian rows: d out[j] / d inputs.
  std::vector<std::vector<std::vector<double>>> analytic(inputs.size());
  for (auto& a : analytic) a.resize(m);
  for (int64_t j = 0; j < m; ++j) {
    TensorList g(inputs.size());
    if (out.requires_grad()) {  // otherwise out does not depend on the inputs: zero Jacobian
      Tensor onehot = zeros(out.shape(), DType::F64);
      onehot.data<double>()[j] = 1.0;
      g = grad({out}, inputs, {onehot}, /*retain_graph=*/true, false, /*allow_unused=*/true);
    }
    for (size_t i = 0; i < inputs.size(); ++i)
      analytic[i][j] = g[i].defined() ? g[i].to_vector()
                                      : std::vector<double>(inputs[i].numel(), 0.0);
  }

  GradcheckResult result;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    for (int64_t k = 0; k < x.numel(); ++k) {
      double* p = element(x, k);
      const double saved = *p;
      *p = saved + opt.eps;
      const std::vector<double> plus = evaluate(f, inputs);
      *p = saved - opt.eps;
      const std::vector<double> minus = evaluate(f, inputs);
      *p = saved;
      for (int64_t j = 0; j < m; ++j) {
        const double numeric = (plus[j] - minus[j]) / (2 * opt.eps);
        const double a = analytic[i][j][k];
        const double err = std::abs(numeric - a);
        if (!(err <= result.max_abs_error)) result.max_abs_error = err;  // keeps a NaN
        if (!(err <= opt.atol + opt.rtol * std::abs(numeric)) && result.ok) {  // NaN fails
          std::ostringstream os;
          os << "input " << i << " " << shape_str(x.shape()) << " element " << k << ", output "
             << j << " of " << shape_str(out.shape()) << ": analytic " << a << ", numeric "
             << numeric;
          result.ok = false;
          result.message = os.str();
        }
      }
    }
  }
  return result;
}

GradcheckResult gradgradcheck(const TensorFunction& f, const TensorList& inputs,
                              const GradcheckOptions& opt) {
  Generator gen(1234);
  Tensor probe = f(inputs);
  const Tensor v = randn(probe.shape(), gen, DType::F64);
  TensorList us;
  for (const Tensor& x : inputs) us.push_back(randn(x.shape(), gen, DType::F64));
  TensorFunction first_derivative = [&](const TensorList& xs) {
    GradModeGuard enable(true);  // also while gradcheck evaluates it for finite differences
    Tensor y = f(xs);
    const TensorList g = grad({y}, xs, {v}, /*retain_graph=*/true, /*create_graph=*/true,
                              /*allow_unused=*/true);
    Tensor total = zeros({}, DType::F64);
    for (size_t i = 0; i < xs.size(); ++i)
      if (g[i].defined()) total = total + sum(g[i] * us[i]);
    return total;
  };
  return gradcheck(first_derivative, inputs, opt);
}

}  // namespace diffkd

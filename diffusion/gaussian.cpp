// Noising and parameterisation conversions (see gaussian.h).

#include "diffusion/gaussian.h"

namespace diffkd::diffusion {

Prediction parse_prediction(const std::string& name) {
  if (name == "eps") return Prediction::Eps;
  if (name == "x0") return Prediction::X0;
  if (name == "v") return Prediction::V;
  fail("unknown prediction '", name, "' (expected eps, x0 or v)");
}

std::string prediction_name(Prediction p) {
  switch (p) {
    case Prediction::Eps: return "eps";
    case Prediction::X0: return "x0";
    case Prediction::V: return "v";
  }
  return "?";
}

Tensor per_sample(const std::vector<double>& values, const Tensor& like) {
  return from_vector(values, {static_cast<int64_t>(values.size()), 1, 1, 1}, like.dtype(), like.device());
}

Coefficients coefficients(const NoiseSchedule& s, const std::vector<int64_t>& t, const Tensor& like) {
  std::vector<double> a, sigma;
  for (int64_t step : t) {
    a.push_back(s.signal(step));
    sigma.push_back(s.noise(step));
  }
  return {per_sample(a, like), per_sample(sigma, like)};
}

Tensor q_sample(const Tensor& x0, const Tensor& eps, const Coefficients& c) {
  return c.signal * x0 + c.noise * eps;
}

Denoised denoise(const Tensor& output, Prediction p, const Tensor& x_t, const Coefficients& c) {
  switch (p) {
    case Prediction::Eps: return {(x_t - c.noise * output) / c.signal, output};
    case Prediction::X0: return {output, (x_t - c.signal * output) / c.noise};
    case Prediction::V:
      return {c.signal * x_t - c.noise * output, c.noise * x_t + c.signal * output};
  }
  fail("denoise: unknown prediction");
}

Tensor prediction_target(Prediction p, const Tensor& x0, const Tensor& eps, const Coefficients& c) {
  switch (p) {
    case Prediction::Eps: return eps;
    case Prediction::X0: return x0;
    case Prediction::V: return c.signal * eps - c.noise * x0;
  }
  fail("prediction_target: unknown prediction");
}

Tensor model_time(const NoiseSchedule& s, const std::vector<int64_t>& t) {
  std::vector<double> steps;
  for (int64_t step : t) steps.push_back(static_cast<double>(s.timesteps.at(step)) * s.time_scale);
  return from_vector(steps, {static_cast<int64_t>(steps.size())});
}

}  // namespace diffkd::diffusion

#pragma once
// The Gaussian diffusion's algebra (METHODS.md 0.1): noising x_t = a_t x_0 + sigma_t eps, and the
// exact conversions between what a network may predict (eps, x_0 or v = a_t eps - sigma_t x_0):
//   eps:  x0 = (x_t - sigma eps) / a
//   x0:   eps = (x_t - a x0) / sigma
//   v:    x0 = a x_t - sigma v,   eps = sigma x_t + a v        (Salimans & Ho 2022, sec. 4)
// Coefficients are per-sample tensors [B, 1, 1, 1] so a batch may mix timesteps.

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "diffusion/schedule.h"

namespace diffkd::diffusion {

enum class Prediction { Eps, X0, V };
Prediction parse_prediction(const std::string& name);  // "eps", "x0", "v"
std::string prediction_name(Prediction p);

// [B, 1, 1, 1] tensor of per-sample values (for broadcasting against images).
Tensor per_sample(const std::vector<double>& values, const Tensor& like);

struct Coefficients {
  Tensor signal, noise;  // a_t, sigma_t as [B, 1, 1, 1]
};
Coefficients coefficients(const NoiseSchedule& s, const std::vector<int64_t>& t, const Tensor& like);

Tensor q_sample(const Tensor& x0, const Tensor& eps, const Coefficients& c);

struct Denoised {
  Tensor x0, eps;
};
// x0 and eps implied by a network output of kind p at x_t.
Denoised denoise(const Tensor& output, Prediction p, const Tensor& x_t, const Coefficients& c);
// What a network of kind p should output for (x0, eps).
Tensor prediction_target(Prediction p, const Tensor& x0, const Tensor& eps, const Coefficients& c);

// The model's time input for schedule entries t: their original step indices, as floats [B].
Tensor model_time(const NoiseSchedule& s, const std::vector<int64_t>& t);

}  // namespace diffkd::diffusion

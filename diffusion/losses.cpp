// Diffusion training losses and the learned-range variance algebra (see losses.h).

#include "diffusion/losses.h"

#include <cmath>

namespace diffkd::diffusion {

LossKind parse_loss(const std::string& name) {
  if (name == "eps") return LossKind::Eps;
  if (name == "x0") return LossKind::X0;
  if (name == "v") return LossKind::V;
  if (name == "snr-trunc") return LossKind::SnrTrunc;
  if (name == "hybrid") return LossKind::Hybrid;
  fail("unknown loss '", name, "' (expected eps, x0, v, snr-trunc or hybrid)");
}

Tensor per_sample_mean(const Tensor& x) { return mean(flatten(x, 1), {1}); }

namespace {

// Posterior variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t), for every t.
std::vector<double> posterior_variances(const NoiseSchedule& s) {
  std::vector<double> v(s.steps());
  for (int64_t t = 0; t < s.steps(); ++t)
    v[t] = s.betas[t] * (1 - s.alpha_bar_prev(t)) / (1 - s.alpha_bar(t));
  return v;
}

}  // namespace

Tensor learned_log_variance(const Tensor& variance_values, const NoiseSchedule& s, const std::vector<int64_t>& t) {
  std::vector<double> tilde = posterior_variances(s), log_min, log_max;
  DK_CHECK(s.steps() > 1, "learned_log_variance: the schedule needs at least 2 steps");
  for (int64_t step : t) {
    log_min.push_back(std::log(step == 0 ? tilde[1] : tilde[step]));
    log_max.push_back(std::log(s.betas[step]));
  }
  const Tensor frac = (variance_values + 1.0) * 0.5;
  return frac * per_sample(log_max, variance_values) + (1.0 - frac) * per_sample(log_min, variance_values);
}

Posterior q_posterior(const Tensor& x0, const Tensor& x_t, const NoiseSchedule& s, const std::vector<int64_t>& t) {
  std::vector<double> coef_x0, coef_xt;
  const std::vector<double> tilde = posterior_variances(s);
  std::vector<double> log_var;
  for (int64_t step : t) {
    const double abar = s.alpha_bar(step), abar_prev = s.alpha_bar_prev(step), beta = s.betas[step];
    coef_x0.push_back(beta * std::sqrt(abar_prev) / (1 - abar));
    coef_xt.push_back((1 - abar_prev) * std::sqrt(1 - beta) / (1 - abar));
    log_var.push_back(std::log(step == 0 ? tilde.at(1) : tilde[step]));
  }
  Posterior p;
  p.mean = per_sample(coef_x0, x0) * x0 + per_sample(coef_xt, x0) * x_t;
  p.log_variance = expand(per_sample(log_var, x0), x0.shape());
  return p;
}

Tensor normal_kl(const Tensor& mean1, const Tensor& logvar1, const Tensor& mean2, const Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + exp(logvar1 - logvar2) + square(mean1 - mean2) * exp(-logvar2));
}

Tensor discretized_gaussian_log_likelihood(const Tensor& x, const Tensor& mean, const Tensor& log_scale) {
  auto cdf = [](const Tensor& v) {  // 0.5 (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3)))
    return 0.5 * (1.0 + tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * pow(v, 3.0))));
  };
  const Tensor centred = x - mean;
  const Tensor inv_std = exp(-log_scale);
  const Tensor cdf_plus = cdf(inv_std * (centred + 1.0 / 255.0));
  const Tensor cdf_minus = cdf(inv_std * (centred - 1.0 / 255.0));
  const Tensor log_cdf_plus = log(clamp_min(cdf_plus, 1e-12));
  const Tensor log_one_minus_cdf_min = log(clamp_min(1.0 - cdf_minus, 1e-12));
  const Tensor log_delta = log(clamp_min(cdf_plus - cdf_minus, 1e-12));
  // The edge bins extend to -inf and +inf.
  const Tensor low = lt(x, full_like(x, -0.999)), high = gt(x, full_like(x, 0.999));
  return where(low, log_cdf_plus, where(high, log_one_minus_cdf_min, log_delta));
}

Tensor vlb_bits_per_dim(const Tensor& model_mean, const Tensor& model_log_variance, const Tensor& x0,
                        const Tensor& x_t, const NoiseSchedule& s, const std::vector<int64_t>& t) {
  const Posterior q = q_posterior(x0, x_t, s, t);
  const Tensor kl = per_sample_mean(normal_kl(q.mean, q.log_variance, model_mean, model_log_variance)) / std::log(2.0);
  const Tensor nll = -per_sample_mean(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_variance)) /
                     std::log(2.0);
  std::vector<double> is_first;
  for (int64_t step : t) is_first.push_back(step == 0 ? 1.0 : 0.0);
  const Tensor first = from_vector(is_first, {static_cast<int64_t>(t.size())}, kl.dtype(), kl.device());
  return where(first, nll, kl);
}

Tensor diffusion_loss(LossKind kind, Prediction prediction, const LossInputs& in) {
  const Coefficients& c = in.coefficients;
  switch (kind) {
    // The MSE is taken in the loss's space whatever the network predicts (e.g. x0-MSE of a
    // v-network): the output is converted first unless the two already agree.
    case LossKind::Eps:
      return mse_loss(prediction == Prediction::Eps ? in.output : denoise(in.output, prediction, in.x_t, c).eps, in.eps);
    case LossKind::X0:
      return mse_loss(prediction == Prediction::X0 ? in.output : denoise(in.output, prediction, in.x_t, c).x0, in.x0);
    case LossKind::V: {
      if (prediction == Prediction::V) return mse_loss(in.output, prediction_target(Prediction::V, in.x0, in.eps, c));
      const Denoised d = denoise(in.output, prediction, in.x_t, c);
      return mse_loss(prediction_target(Prediction::V, d.x0, d.eps, c),
                      prediction_target(Prediction::V, in.x0, in.eps, c));
    }
    case LossKind::SnrTrunc: {
      const Denoised d = denoise(in.output, prediction, in.x_t, c);
      return mean(maximum(per_sample_mean(square(d.x0 - in.x0)), per_sample_mean(square(d.eps - in.eps))));
    }
    case LossKind::Hybrid: {
      DK_CHECK(prediction == Prediction::Eps && in.schedule != nullptr, "hybrid loss: needs an eps-predicting ",
               "model with learned variance and the schedule");
      const int64_t ch = in.x0.size(1);
      DK_CHECK(in.output.size(1) == 2 * ch, "hybrid loss: output has ", in.output.size(1), " channels, expected ",
               2 * ch, " (eps and variance)");
      const Tensor eps_hat = narrow(in.output, 1, 0, ch), values = narrow(in.output, 1, ch, ch);
      const Tensor log_var = learned_log_variance(values, *in.schedule, in.t);
      // The VLB trains only the variance: the mean is built from a detached eps.
      // (No x0 clipping here, as guided-diffusion's training loss.)
      const Tensor x0_frozen = denoise(eps_hat.detach(), Prediction::Eps, in.x_t, c).x0;
      const Tensor mean_frozen = q_posterior(x0_frozen, in.x_t, *in.schedule, in.t).mean;
      // guided-diffusion's "MSE" loss type (DKDM's rescale_learned_sigmas = false): the one-step
      // VLB term, in bits per dimension, added unweighted; being one of T terms, it is the
      // paper's lambda = 1/T weighting of the whole L_vlb.
      return mse_loss(eps_hat, in.eps) +
             mean(vlb_bits_per_dim(mean_frozen, log_var, in.x0, in.x_t, *in.schedule, in.t));
    }
  }
  fail("diffusion_loss: unknown loss");
}

}  // namespace diffkd::diffusion

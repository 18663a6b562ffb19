// DDIM and DDPM ancestral sampling (see sampler.h).

#include "diffusion/sampler.h"

#include <cmath>

#include "diffusion/noise.h"

namespace diffkd::diffusion {

namespace {

Shape sample_shape_of(const Tensor& x) { return Shape(x.shape().begin() + 1, x.shape().end()); }

// x0 and eps from the model at schedule entries t (all equal to `step`), x0 optionally clipped.
Denoised predict(const ModelFn& model, Prediction p, const NoiseSchedule& s, int64_t step,
                 const Tensor& x, bool clip) {
  const std::vector<int64_t> t(x.size(0), step);
  const Coefficients c = coefficients(s, t, x);
  Denoised d = denoise(model(x, model_time(s, t)), p, x, c);
  if (clip) {
    d.x0 = clamp(d.x0, -1.0, 1.0);
    d.eps = (x - c.signal * d.x0) / c.noise;
  }
  return d;
}

Tensor ddim(const ModelFn& model, Prediction p, const NoiseSchedule& s, const SamplerConfig& cfg,
            const std::vector<int64_t>& seq, Tensor x, int64_t first, uint64_t seed,
            const std::function<void(int64_t, int64_t)>& on_step) {
  const int64_t total = static_cast<int64_t>(seq.size());
  for (int64_t k = total - 1; k >= 0; --k) {
    const int64_t t = seq[k];
    const Denoised d = predict(model, p, s, t, x, cfg.clip_x0);
    if (k == 0) {
      x = d.x0;
    } else {
      const double abar_t = s.alpha_bar(t), abar_s = s.alpha_bar(seq[k - 1]);
      const double sigma_eta =
          cfg.eta * std::sqrt((1 - abar_s) / (1 - abar_t)) * std::sqrt(1 - abar_t / abar_s);
      x = d.x0 * std::sqrt(abar_s) + d.eps * std::sqrt(std::max(0.0, 1 - abar_s - sigma_eta * sigma_eta));
      if (sigma_eta > 0)
        x = x + sample_noise(sample_shape_of(x), first, x.size(0), seed, total - k) * sigma_eta;
    }
    if (on_step) on_step(total - k, total);
  }
  return x;
}

Tensor ddpm(const ModelFn& model, Prediction p, const NoiseSchedule& full, const SamplerConfig& cfg,
            const std::vector<int64_t>& seq, Tensor x, int64_t first, uint64_t seed,
            const std::function<void(int64_t, int64_t)>& on_step) {
  const NoiseSchedule s = full.respaced(seq);
  const int64_t total = s.steps();
  auto posterior_variance = [&](int64_t k) {
    return s.betas[k] * (1 - s.alpha_bar_prev(k)) / (1 - s.alpha_bar(k));
  };
  for (int64_t k = total - 1; k >= 0; --k) {
    const Denoised d = predict(model, p, s, k, x, cfg.clip_x0);
    const double abar = s.alpha_bar(k), abar_prev = s.alpha_bar_prev(k), beta = s.betas[k];
    // Posterior mean (Ho et al. eq. 7).
    const double coef_x0 = beta * std::sqrt(abar_prev) / (1 - abar);
    const double coef_xt = (1 - abar_prev) * std::sqrt(1 - beta) / (1 - abar);
    x = d.x0 * coef_x0 + x * coef_xt;
    if (k > 0) {
      double var = posterior_variance(k);
      if (cfg.variance == SamplerConfig::Variance::FixedLarge) var = (k == 1 && total > 1) ? posterior_variance(1) : beta;
      x = x + sample_noise(sample_shape_of(x), first, x.size(0), seed, total - k) * std::sqrt(var);
    }
    if (on_step) on_step(total - k, total);
  }
  return x;
}

}  // namespace

std::vector<int64_t> sampler_steps(const NoiseSchedule& schedule, const SamplerConfig& config) {
  if (config.spacing == "uniform") return uniform_steps(schedule.steps(), config.steps);
  if (config.spacing == "quadratic") return quadratic_steps(config.quadratic_last, config.steps);
  fail("unknown step spacing '", config.spacing, "' (expected uniform or quadratic)");
}

int64_t sampler_nfe(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return static_cast<int64_t>(sampler_steps(schedule, config).size());
}

Tensor sample(const ModelFn& model, Prediction prediction, const NoiseSchedule& schedule,
              const SamplerConfig& config, const Tensor& x_T, int64_t first_index, uint64_t seed,
              const std::function<void(int64_t, int64_t)>& on_step) {
  NoGradGuard no_grad;
  const std::vector<int64_t> seq = sampler_steps(schedule, config);
  if (config.kind == SamplerConfig::Kind::Ddim)
    return ddim(model, prediction, schedule, config, seq, x_T, first_index, seed, on_step);
  return ddpm(model, prediction, schedule, config, seq, x_T, first_index, seed, on_step);
}

}  // namespace diffkd::diffusion

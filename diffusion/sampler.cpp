// DDIM and DDPM ancestral sampling (see sampler.h).

#include "diffusion/sampler.h"

#include <cmath>

#include "diffusion/losses.h"
#include "diffusion/noise.h"

namespace diffkd::diffusion {

namespace {
Shape sample_shape_of(const Tensor& x) { return Shape(x.shape().begin() + 1, x.shape().end()); }
}  // namespace

Denoised predicted_x0_eps(const Tensor& output, Prediction p, const Tensor& x, const NoiseSchedule& s,
                          int64_t step, bool clip) {
  const Coefficients c = coefficients(s, std::vector<int64_t>(x.size(0), step), x);
  Denoised d = denoise(output, p, x, c);
  if (clip) {  // clip x0, then the eps consistent with it
    d.x0 = clamp(d.x0, -1.0, 1.0);
    d.eps = (x - c.signal * d.x0) / c.noise;
  }
  return d;
}

Tensor ddim_step(const Tensor& x_t, const Tensor& output, Prediction p, const NoiseSchedule& s, int64_t t,
                 int64_t next, double eta, const Tensor& z, bool clip) {
  const Denoised d = predicted_x0_eps(output, p, x_t, s, t, clip);
  if (next < 0) return d.x0;  // the step past the first: alpha_bar = 1
  const double abar_t = s.alpha_bar(t), abar_s = s.alpha_bar(next);
  const double sigma_eta = eta * std::sqrt((1 - abar_s) / (1 - abar_t)) * std::sqrt(1 - abar_t / abar_s);
  Tensor x = d.x0 * std::sqrt(abar_s) + d.eps * std::sqrt(std::max(0.0, 1 - abar_s - sigma_eta * sigma_eta));
  if (sigma_eta > 0) {
    DK_CHECK(z.defined(), "ddim_step: eta > 0 needs noise z");
    x = x + z * sigma_eta;
  }
  return x;
}

Tensor ddpm_step(const Tensor& x_k, const StepPrediction& prediction, Prediction p, const NoiseSchedule& s,
                 int64_t k, SamplerConfig::Variance variance, const Tensor& z, bool clip) {
  const Denoised d = predicted_x0_eps(prediction.output, p, x_k, s, k, clip);
  const double abar = s.alpha_bar(k), abar_prev = s.alpha_bar_prev(k), beta = s.betas[k];
  // Posterior mean (Ho et al. eq. 7).
  const double coef_x0 = beta * std::sqrt(abar_prev) / (1 - abar);
  const double coef_xt = (1 - abar_prev) * std::sqrt(1 - beta) / (1 - abar);
  Tensor x = d.x0 * coef_x0 + x_k * coef_xt;
  if (k == 0) return x;  // no noise at the last step
  DK_CHECK(z.defined(), "ddpm_step: needs noise z at k > 0");
  if (prediction.variance_values.defined())  // iDDPM learned range
    return x + z * exp(0.5 * learned_log_variance(prediction.variance_values, s, std::vector<int64_t>(x_k.size(0), k)));
  // Fixed-large is beta_k; guided-diffusion's substitution of beta~ at the first step (where
  // beta~ is 0) only matters at k = 0, where no noise is added.
  const double var = variance == SamplerConfig::Variance::FixedLarge ? beta : beta * (1 - abar_prev) / (1 - abar);
  return x + z * std::sqrt(var);
}

namespace {

// The network's output at x for schedule entry `step`, split into the prediction and, for a
// learned-range model (2C channels), the variance values.
StepPrediction run_model(const ModelFn& model, const NoiseSchedule& s, int64_t step, const Tensor& x) {
  const std::vector<int64_t> t(x.size(0), step);
  Tensor out = model(x, model_time(s, t));
  StepPrediction r;
  const int64_t ch = x.size(1);
  if (out.size(1) == 2 * ch) {
    r.variance_values = narrow(out, 1, ch, ch);
    out = narrow(out, 1, 0, ch);
  }
  DK_CHECK(out.size(1) == ch, "sampler: the model outputs ", out.size(1), " channels for ", ch, "-channel images");
  r.output = out;
  return r;
}

Tensor ddim(const ModelFn& model, Prediction p, const NoiseSchedule& s, const SamplerConfig& cfg,
            const std::vector<int64_t>& seq, Tensor x, int64_t first, uint64_t seed,
            const StepCallback& on_step) {
  const int64_t total = static_cast<int64_t>(seq.size());
  for (int64_t k = total - 1; k >= 0; --k) {
    const StepPrediction pr = run_model(model, s, seq[k], x);
    const Tensor z = cfg.eta > 0 && k > 0 ? sample_noise(sample_shape_of(x), first, x.size(0), seed, total - k, x.device()) : Tensor();
    x = ddim_step(x, pr.output, p, s, seq[k], k > 0 ? seq[k - 1] : -1, cfg.eta, z, cfg.clip_x0);
    if (on_step) on_step(total - k, total, x);
  }
  return x;
}

Tensor ddpm(const ModelFn& model, Prediction p, const NoiseSchedule& full, const SamplerConfig& cfg,
            const std::vector<int64_t>& seq, Tensor x, int64_t first, uint64_t seed,
            const StepCallback& on_step) {
  const NoiseSchedule s = full.respaced(seq);
  const int64_t total = s.steps();
  for (int64_t k = total - 1; k >= 0; --k) {
    const StepPrediction pr = run_model(model, s, k, x);
    const Tensor z = k > 0 ? sample_noise(sample_shape_of(x), first, x.size(0), seed, total - k, x.device()) : Tensor();
    x = ddpm_step(x, pr, p, s, k, cfg.variance, z, cfg.clip_x0);
    if (on_step) on_step(total - k, total, x);
  }
  return x;
}

}  // namespace

std::vector<int64_t> sampler_steps(const NoiseSchedule& schedule, const SamplerConfig& config) {
  if (config.spacing == "uniform") return uniform_steps(schedule.steps(), config.steps);
  if (config.spacing == "quadratic") {
    if (config.quadratic_last >= schedule.steps())
      fail("quadratic step sequence ends at index ", config.quadratic_last, ", past the schedule's last index ",
           schedule.steps() - 1);
    return quadratic_steps(config.quadratic_last, config.steps);
  }
  if (config.spacing == "trailing") return trailing_steps(schedule.steps(), config.steps);
  fail("unknown step spacing '", config.spacing, "' (expected uniform, quadratic or trailing)");
}

int64_t sampler_nfe(const NoiseSchedule& schedule, const SamplerConfig& config) {
  return static_cast<int64_t>(sampler_steps(schedule, config).size());
}

Tensor sample(const ModelFn& model, Prediction prediction, const NoiseSchedule& schedule,
              const SamplerConfig& config, const Tensor& x_T, int64_t first_index, uint64_t seed,
              const StepCallback& on_step) {
  NoGradGuard no_grad;
  const std::vector<int64_t> seq = sampler_steps(schedule, config);
  if (config.kind == SamplerConfig::Kind::Ddim)
    return ddim(model, prediction, schedule, config, seq, x_T, first_index, seed, on_step);
  return ddpm(model, prediction, schedule, config, seq, x_T, first_index, seed, on_step);
}

}  // namespace diffkd::diffusion

#pragma once
// Samplers (METHODS.md 0.3-0.4), as short loops over a step sequence of original timesteps:
//  * DDIM (Song et al. 2021, eq. 12), any eta:
//      x_s = a_s x0 + sqrt(1 - abar_s - sigma_eta^2) eps + sigma_eta z,
//      sigma_eta = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s);
//    the step to "before the first step" returns x0.
//  * DDPM ancestral on the respaced schedule (Ho et al. 2020, eq. 6-7):
//      x_{k-1} = mu(x0, x_k) + sqrt(var) z, var = beta~_k (fixed-small) or beta_k (fixed-large);
//      no noise at the last step (k = 0). A model with 2C output channels (iDDPM learned range)
//      uses its own variance, exp(learned_log_variance), in DDPM; DDIM reads only its first C.
// Optional clipping of x0 to [-1, 1] (eps recomputed from the clipped x0).

#include <functional>
#include <string>

#include "diffusion/gaussian.h"

namespace diffkd::diffusion {

// The network: output for x_t [B, C, H, W] at model times [B].
using ModelFn = std::function<Tensor(const Tensor& x_t, const Tensor& time)>;
using StepCallback = std::function<void(int64_t done, int64_t total, const Tensor& x)>;

struct SamplerConfig {
  enum class Kind { Ddim, Ddpm } kind = Kind::Ddim;
  int64_t steps = 50;
  double eta = 0.0;
  bool clip_x0 = true;
  enum class Variance { FixedSmall, FixedLarge } variance = Variance::FixedSmall;  // DDPM only
  std::string spacing = "uniform";  // "uniform", "quadratic" (Denoising Student) or "trailing" (PD)
  int64_t quadratic_last = 800;     // the quadratic sequence's last index
};

// The increasing original step indices the sampler visits.
std::vector<int64_t> sampler_steps(const NoiseSchedule& schedule, const SamplerConfig& config);

// Runs the sampler from x_T for samples [first_index, first_index + B). Noise of every step is
// keyed by (seed, step, sample index), so a sample does not depend on the batch it is in.
// on_step(done, total, x) is called after each step when given, with the state x after it
// (Adv-KD records the teacher's trajectory this way).
Tensor sample(const ModelFn& model, Prediction prediction, const NoiseSchedule& schedule,
              const SamplerConfig& config, const Tensor& x_T, int64_t first_index, uint64_t seed,
              const StepCallback& on_step = nullptr);

// --- single steps (what the loops above run; tested against the PyTorch goldens) --------------

// x0 and eps from a network output at schedule entry `step`; with clip, x0 is clipped to
// [-1, 1] and eps recomputed from it.
Denoised predicted_x0_eps(const Tensor& output, Prediction p, const Tensor& x, const NoiseSchedule& s,
                          int64_t step, bool clip);
// One DDIM step from schedule index t to `next` (-1: past the first step, returns x0).
// z: standard normal noise, needed when eta > 0.
Tensor ddim_step(const Tensor& x_t, const Tensor& output, Prediction p, const NoiseSchedule& s, int64_t t,
                 int64_t next, double eta, const Tensor& z, bool clip);
struct StepPrediction {
  Tensor output;           // the prediction channels
  Tensor variance_values;  // a learned-range model's extra channels (else undefined)
};
// One DDPM ancestral step at index k of the (respaced) schedule s; z needed for k > 0.
Tensor ddpm_step(const Tensor& x_k, const StepPrediction& prediction, Prediction p, const NoiseSchedule& s,
                 int64_t k, SamplerConfig::Variance variance, const Tensor& z, bool clip);

// Number of network evaluations of a sampler configuration.
int64_t sampler_nfe(const NoiseSchedule& schedule, const SamplerConfig& config);

}  // namespace diffkd::diffusion

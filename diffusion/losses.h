#pragma once
// Training losses of a diffusion network's output at (x_t, t), per METHODS.md:
//  * "eps", "x0", "v": MSE of the output against that target (Ho et al.; Salimans & Ho's v);
//  * "snr-trunc": Progressive Distillation's max(||x0^ - x0||^2, ||eps^ - eps||^2) per sample
//    (= max(SNR, 1) x-MSE), then the batch mean (Salimans & Ho 2022, sec. 4);
//  * "hybrid": iDDPM's L_simple + lambda L_vlb for learned-range variance models (Nichol &
//    Dhariwal 2021, sec. 3.1): the output has 2C channels, the first C predict eps (trained by
//    L_simple), the last C interpolate the log-variance between log beta~_t and log beta_t; the
//    VLB term at the sampled t (in bits per dimension) is added unweighted and trains only the
//    variance (the mean enters it with its gradient stopped). One term at a uniform t estimates
//    L_vlb / T, so this is lambda = 1/T: the paper's lambda = 0.001 at T = 1000, as guided-diffusion.

#include <string>

#include "diffusion/gaussian.h"

namespace diffkd::diffusion {

enum class LossKind { Eps, X0, V, SnrTrunc, Hybrid };
LossKind parse_loss(const std::string& name);  // "eps", "x0", "v", "snr-trunc", "hybrid"

struct LossInputs {
  Tensor output;             // the network's output [B, C or 2C, H, W]
  Tensor x0, eps, x_t;       // [B, C, H, W]
  Coefficients coefficients; // a_t, sigma_t
  const NoiseSchedule* schedule = nullptr;  // hybrid only
  std::vector<int64_t> t;                   // hybrid only: schedule indices
};

// Mean over the batch. `prediction` says how to read the output for snr-trunc (x0 and eps are
// both derived from it); hybrid requires Prediction::Eps.
Tensor diffusion_loss(LossKind kind, Prediction prediction, const LossInputs& in);

// Per-sample mean over every dim but the first: [B, ...] -> [B].
Tensor per_sample_mean(const Tensor& x);

// --- learned-range variance (iDDPM) ------------------------------------------------------------
// log sigma^2 = f log beta_t + (1 - f) log beta~_t with f = (v + 1) / 2, v the variance channels;
// beta~ at t = 0 is replaced by beta~ at t = 1 (it is 0), as guided-diffusion's clipped log.
Tensor learned_log_variance(const Tensor& variance_values, const NoiseSchedule& s, const std::vector<int64_t>& t);
// Posterior q(x_{t-1} | x_t, x0): mean and (clipped) log-variance, per sample.
struct Posterior {
  Tensor mean, log_variance;
};
Posterior q_posterior(const Tensor& x0, const Tensor& x_t, const NoiseSchedule& s, const std::vector<int64_t>& t);
// KL(N(m1, e^l1) || N(m2, e^l2)) elementwise, in nats.
Tensor normal_kl(const Tensor& mean1, const Tensor& logvar1, const Tensor& mean2, const Tensor& logvar2);
// log-likelihood of 8-bit data x in [-1, 1] under a Gaussian discretised to bins of width 2/255
// (Ho et al. 2020, eq. 13), elementwise, with guided-diffusion's tanh approximation of the CDF.
Tensor discretized_gaussian_log_likelihood(const Tensor& x, const Tensor& mean, const Tensor& log_scale);
// The VLB term L_{t-1} per sample in bits per dimension: the KL to the posterior, or the decoder
// NLL at t = 0. model_mean / model_log_variance [B, C, H, W].
Tensor vlb_bits_per_dim(const Tensor& model_mean, const Tensor& model_log_variance, const Tensor& x0,
                        const Tensor& x_t, const NoiseSchedule& s, const std::vector<int64_t>& t);

}  // namespace diffkd::diffusion

#pragma once
// Score identity Distillation (SiD; Zhou, Zheng, Wang, Yin & Huang, ICML 2024): a one-step
// generator distilled from a teacher alone (data-free) by matching, at every noise level, the
// teacher's denoiser on generated images to that of a "fake" score network trained on them.
// Written from the paper's equations, in our discrete-time VP form (the paper's EDM sigma is the
// VP sigma_t = sqrt((1 - ab_t) / ab_t); a denoiser f(x_t, t) is the x0 a network's output implies):
//
//   generator   x_g = G_theta(s_init z, t_init), z ~ N(0, I): the teacher's network at the step of
//               sigma_init = 2.5 on the noisy state of a zero image there, read as x0; G starts as
//               the teacher.
//   noising     x_t = a_t x_g + s_t eps, t the teacher step nearest (in log sigma) to SiD's draw
//               sigma = (sigma_max^(1/rho) + (1 - u t_max / 1000)(sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
//               u ~ U[0, 1), t_max = 800, sigma 0.002 .. 80, rho = 7.
//   fake score  psi (starts as the teacher) learns the generator's distribution with the teacher's
//               own objective: the MSE of its prediction (eps, x0 or v) on (sg(x_g), t, eps), at
//               EDM's training levels ln sigma ~ N(-1.2, 1.2^2) (SiD trains its fake score with the
//               EDM loss; our v/eps objectives carry EDM's weighting 1 + 1/sigma^2 up to sigma_data),
//               again mapped to the teacher's nearest step. (`generator` levels: the draws above.)
//   generator   with d = f_phi(x_t, t) - f_psi(x_t, t) (teacher minus fake denoiser), per sample
//   loss        L_theta = mean_pix( d * ((f_phi - x_g) - alpha d) ) / w,
//                 w = max(mean_pix |x_g - f_phi|, 1e-5) with the gradient stopped (the paper's
//                 omega(t) / sigma_t^4 normaliser),
//               = ((1 - alpha) ||d||^2 + d^T (f_psi - x_g)) / (w n_pix): the score-identity loss
//               with alpha = 1.2. Its gradient flows through x_g AND through x_t into both score
//               networks (their weights frozen), unlike a stop-gradient score difference.
//   iteration   one fake-score update on fresh generator samples, then one generator update on
//               others; Adam (beta1 0, beta2 0.999; eps as SiD's on its pixel-summed losses) for
//               both; an EMA of the generator is the result, its half-life capped at 5% of the
//               iterations taken (EDM's ramp-up, as SiD).
//
// The networks run without dropout (the teacher as it samples). A learned-range teacher's
// variance channels are not used: SiD needs only the denoisers.

#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/gaussian.h"
#include "diffusion/run_folder.h"
#include "nn/unet.h"

namespace diffkd::distill {

// SiD's noise levels (EDM's range) and the fake score's training levels (EDM's P_mean, P_std).
constexpr double kSidSigmaMin = 0.002, kSidSigmaMax = 80, kSidRho = 7;
constexpr double kSidFakeLogSigmaMean = -1.2, kSidFakeLogSigmaStd = 1.2;

// The schedule step whose sigma_t = sqrt((1 - ab_t) / ab_t) is nearest `sigma` in log (ties: the
// smaller step).
int64_t sid_step_of_sigma(const diffusion::NoiseSchedule& schedule, double sigma);
// SiD's noise level for a uniform draw u in [0, 1) with t_max in 0..1000.
double sid_sigma_of_draw(double u, double t_max);
// The fake score's noise level for a standard normal draw n: exp(P_mean + P_std n).
double sid_fake_sigma_of_draw(double n);

// (The generator's image x_g is diffusion::one_step_image(G, "x0", prediction, schedule, z, t_init).)
// The x0 a network's output implies at (x_t, t) (a learned-range network's variance channels dropped).
Tensor sid_denoised(nn::UNet& net, diffusion::Prediction prediction, const diffusion::NoiseSchedule& schedule,
                    const Tensor& x_t, const std::vector<int64_t>& t);

// The generator loss above (mean over the batch) from the image and both denoisers at its x_t.
Tensor sid_generator_loss(const Tensor& x_g, const Tensor& teacher_x0, const Tensor& fake_x0, double alpha);
// The fake score network's loss on generator images x_g (detached here): the teacher's objective.
Tensor sid_fake_score_loss(nn::UNet& fake, diffusion::Prediction prediction, const diffusion::NoiseSchedule& schedule,
                           const Tensor& x_g, const std::vector<int64_t>& t, const Tensor& eps);

struct SidOptions {
  std::string teacher;
  double alpha = 1.2;
  double sigma_init = 2.5;
  double t_max = 800;
  int64_t batch_size = 64;
  int64_t steps = 2000;      // iterations (each: one fake-score and one generator update)
  double lr = 1e-5;          // the generator's (paper: 1e-5 on CIFAR-10)
  double fake_lr = 1e-5;     // the fake score network's
  double beta1 = 0, beta2 = 0.999;
  double ema = 0.995;
  double ema_rampup = 0.05;                // EDM's ema_rampup_ratio (0: a fixed decay)
  std::string fake_levels = "lognormal";   // the fake score's levels: lognormal (SiD's) or generator
  diffusion::RunControl run{"runs/sid"};  // folder, seed, cadence, resume
};

struct SidResult {
  std::string model;  // the EMA generator, sampled by `diffkd sample` in one step
  int64_t t_init = 0;
  bool interrupted = false;
};

SidResult sid_distillation(const SidOptions& options);

}  // namespace diffkd::distill

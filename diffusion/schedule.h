#pragma once
// Noise schedules (METHODS.md 0.1-0.2). A discrete schedule holds beta_t and
// alpha_bar_t = prod_{s<=t} (1 - beta_s) for t = 0 .. T-1 (index t is DDPM's step t+1); then
//   q(x_t | x_0) = N(a_t x_0, sigma_t^2 I),  a_t = sqrt(alpha_bar_t),  sigma_t = sqrt(1 - alpha_bar_t).
// Respacing keeps a subsequence of steps and recomputes each kept beta from the alpha_bar of its
// predecessor (iDDPM's respace), so a respaced schedule is a schedule like any other.

#include <cstdint>
#include <string>
#include <vector>

namespace diffkd::diffusion {

struct NoiseSchedule {
  std::vector<double> betas;
  std::vector<double> alphas_cumprod;
  std::vector<int64_t> timesteps;  // the original step index of each entry (identity unless respaced)
  // The network sees timesteps[t] * time_scale: 1, or 1000 / T for a model trained with
  // improved-diffusion's rescale_timesteps.
  double time_scale = 1.0;

  int64_t steps() const { return static_cast<int64_t>(betas.size()); }
  double alpha_bar(int64_t t) const { return alphas_cumprod.at(t); }
  // alpha_bar of the step before t; 1 before the first step.
  double alpha_bar_prev(int64_t t) const { return t > 0 ? alphas_cumprod.at(t - 1) : 1.0; }
  double signal(int64_t t) const;  // a_t
  double noise(int64_t t) const;   // sigma_t

  // Ho et al.: beta linear from 1e-4 to 0.02 at T = 1000 (both ends scaled by 1000 / T).
  static NoiseSchedule linear(int64_t steps);
  // Nichol & Dhariwal: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) * pi / 2),
  // beta_t = min(1 - alpha_bar(t+1) / alpha_bar(t), 0.999), s = 0.008.
  static NoiseSchedule cosine(int64_t steps);
  // RDD/RCFD: the cosine formula at 1025 betas (T = 1024 plus one), indices 0 .. 1024.
  static NoiseSchedule rdd_cosine() { return cosine(1025); }
  // From a name: "linear", "cosine", "rdd-cosine".
  static NoiseSchedule named(const std::string& name, int64_t steps);
  // beta_1..beta_T as given (alpha_bar their running product of 1 - beta).
  static NoiseSchedule from_betas(const std::vector<double>& betas);
  static NoiseSchedule from_alphas_cumprod(const std::vector<double>& alphas_cumprod,
                                           const std::vector<int64_t>& timesteps);

  // Keeps the given steps (increasing original indices).
  NoiseSchedule respaced(const std::vector<int64_t>& kept) const;
};

// Salimans & Ho's continuous logSNR cosine schedule on u in [0, 1] (METHODS.md 0.2):
// lambda(u) = -2 log tan(a u + b), a_u^2 = sigmoid(lambda), sigma_u^2 = sigmoid(-lambda).
struct LogSnrCosine {
  double logsnr_min = -20.0, logsnr_max = 20.0;
  double logsnr(double u) const;
  double signal(double u) const;  // a_u
  double noise(double u) const;   // sigma_u
};

// Step sequences for samplers, as increasing original indices in [0, T):
// "uniform": round(linspace(0, T - 1, n)); "quadratic": Denoising Student's
// int((k * sqrt(last) / (n - 1))^2) for k < n, ending at `last` (800 in the paper, not T - 1).
// The quadratic sequence repeats its first indices (k = 0..3 all give 0 for n = 100, last = 800);
// the official sampler runs those as identity DDIM steps, and so does ours.
// "trailing": round(i T / n) - 1 for i = 1..n, the grid of Progressive Distillation's t = i / n
// (Salimans & Ho 2022): it always starts at T - 1, and the n-step grid is every other point of
// the 2n-step one, so a distilled student's steps are exactly its teacher's step pairs.
std::vector<int64_t> uniform_steps(int64_t total, int64_t n);
std::vector<int64_t> quadratic_steps(int64_t last, int64_t n);
std::vector<int64_t> trailing_steps(int64_t total, int64_t n);

}  // namespace diffkd::diffusion

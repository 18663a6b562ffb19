// Noise schedules and step sequences (see schedule.h).

#include "diffusion/schedule.h"

#include <algorithm>
#include <cmath>

#include "tensor/error.h"

namespace diffkd::diffusion {

double NoiseSchedule::signal(int64_t t) const { return std::sqrt(alpha_bar(t)); }
double NoiseSchedule::noise(int64_t t) const { return std::sqrt(1.0 - alpha_bar(t)); }

NoiseSchedule NoiseSchedule::from_alphas_cumprod(const std::vector<double>& alphas_cumprod,
                                                 const std::vector<int64_t>& timesteps) {
  NoiseSchedule s;
  s.alphas_cumprod = alphas_cumprod;
  s.timesteps = timesteps;
  double previous = 1.0;
  for (double a : alphas_cumprod) {
    s.betas.push_back(1.0 - a / previous);
    previous = a;
  }
  return s;
}

NoiseSchedule NoiseSchedule::from_betas(const std::vector<double>& betas) {
  NoiseSchedule s;
  s.betas = betas;
  double product = 1.0;
  for (size_t t = 0; t < betas.size(); ++t) {
    product *= 1.0 - betas[t];
    s.alphas_cumprod.push_back(product);
    s.timesteps.push_back(static_cast<int64_t>(t));
  }
  return s;
}

NoiseSchedule NoiseSchedule::linear(int64_t steps) {
  DK_CHECK(steps > 1, "linear schedule: need at least 2 steps, got ", steps);
  const double scale = 1000.0 / static_cast<double>(steps);
  const double start = scale * 1e-4, end = scale * 0.02;
  std::vector<double> betas(steps);
  for (int64_t t = 0; t < steps; ++t) betas[t] = start + (end - start) * t / (steps - 1.0);
  return from_betas(betas);
}

NoiseSchedule NoiseSchedule::cosine(int64_t steps) {
  DK_CHECK(steps > 1, "cosine schedule: need at least 2 steps, got ", steps);
  auto f = [](double u) {
    const double c = std::cos((u + 0.008) / 1.008 * M_PI / 2.0);
    return c * c;
  };
  std::vector<double> betas(steps);
  for (int64_t t = 0; t < steps; ++t)
    betas[t] = std::min(1.0 - f((t + 1.0) / steps) / f(static_cast<double>(t) / steps), 0.999);
  return from_betas(betas);
}

NoiseSchedule NoiseSchedule::named(const std::string& name, int64_t steps) {
  if (name == "linear") return linear(steps);
  if (name == "cosine") return cosine(steps);
  if (name == "rdd-cosine") {
    // A fixed-length schedule: asking for another T would silently train on 1025 indices.
    if (steps != 1025)
      fail("noise schedule rdd-cosine has 1025 steps (RDD's T = 1024 plus one, indices 0..1024); got T = ",
           steps, " (pass --timesteps 1025)");
    return rdd_cosine();
  }
  fail("unknown noise schedule '", name, "' (expected linear, cosine or rdd-cosine)");
}

NoiseSchedule NoiseSchedule::respaced(const std::vector<int64_t>& kept) const {
  DK_CHECK(!kept.empty(), "respaced: no steps kept");
  std::vector<double> alphas;
  std::vector<int64_t> original;
  for (size_t i = 0; i < kept.size(); ++i) {
    DK_CHECK(kept[i] >= 0 && kept[i] < steps() && (i == 0 || kept[i] > kept[i - 1]),
             "respaced: step indices must increase within [0, ", steps(), "), got ", kept[i]);
    alphas.push_back(alphas_cumprod[kept[i]]);
    original.push_back(timesteps[kept[i]]);
  }
  NoiseSchedule kept_schedule = from_alphas_cumprod(alphas, original);
  kept_schedule.time_scale = time_scale;
  return kept_schedule;
}

double LogSnrCosine::logsnr(double u) const {
  const double b = std::atan(std::exp(-0.5 * logsnr_max));
  const double a = std::atan(std::exp(-0.5 * logsnr_min)) - b;
  return -2.0 * std::log(std::tan(a * u + b));
}

double LogSnrCosine::signal(double u) const {
  return std::sqrt(1.0 / (1.0 + std::exp(-logsnr(u))));
}

double LogSnrCosine::noise(double u) const {
  return std::sqrt(1.0 / (1.0 + std::exp(logsnr(u))));
}

std::vector<int64_t> uniform_steps(int64_t total, int64_t n) {
  DK_CHECK(n >= 1 && n <= total, "uniform steps: ", n, " steps out of ", total);
  std::vector<int64_t> out;
  for (int64_t k = 0; k < n; ++k)
    out.push_back(n == 1 ? total - 1
                         : static_cast<int64_t>(std::llround(k * (total - 1.0) / (n - 1.0))));
  return out;
}

std::vector<int64_t> trailing_steps(int64_t total, int64_t n) {
  DK_CHECK(n >= 1 && n <= total, "trailing steps: ", n, " steps out of ", total);
  std::vector<int64_t> out;
  for (int64_t i = 1; i <= n; ++i)
    out.push_back(static_cast<int64_t>(std::llround(static_cast<double>(i) * total / n)) - 1);
  return out;
}

std::vector<int64_t> quadratic_steps(int64_t last, int64_t n) {
  DK_CHECK(n >= 2 && last >= n - 1, "quadratic steps: ", n, " steps ending at ", last);
  std::vector<int64_t> out;
  for (int64_t k = 0; k < n; ++k) {
    const double r = k * std::sqrt(static_cast<double>(last)) / (n - 1.0);
    out.push_back(static_cast<int64_t>(r * r));
  }
  out.back() = last;  // guard against rounding just below
  return out;
}

}  // namespace diffkd::diffusion

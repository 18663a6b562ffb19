// Schedules, single sampler steps and a whole 10-step DDIM trajectory of the tiny golden UNet,
// against tests/golden/make_diffusion_goldens.py (written from METHODS.md independently of our
// code). Schedules and steps are float64 on both sides (1e-12 relative); the trajectory runs our
// float32 UNet and sampler against PyTorch's float32 model with float64 step arithmetic: the
// script measured its own float32 floor at 5.4e-7 after 10 steps; we allow 1e-5 absolute.

#include <gtest/gtest.h>

#include <cmath>

#include "diffusion/sampler.h"
#include "nn/safetensors.h"
#include "nn/unet.h"
#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

using namespace diffusion;

safetensors::Contents golden(const std::string& name) {
  return safetensors::load(diffkd::testing::golden_dir() + "/" + name);
}

void expect_close(const std::vector<double>& ours, const std::vector<double>& ref, double rel, double abs_tol,
                  const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(ours[i], ref[i], rel * std::abs(ref[i]) + abs_tol) << what << " [" << i << "]";
}

std::vector<double> as_doubles(const std::vector<int64_t>& v) { return std::vector<double>(v.begin(), v.end()); }

TEST(DiffusionGolden, SchedulesAndStepSequences) {
  const auto g = golden("diffusion_schedules.safetensors");
  expect_close(NoiseSchedule::linear(1000).betas, g.at("linear1000.betas").to_vector(), 1e-12, 0, "linear betas");
  expect_close(NoiseSchedule::linear(1000).alphas_cumprod, g.at("linear1000.alphas_cumprod").to_vector(), 1e-12, 0, "linear abar");
  expect_close(NoiseSchedule::cosine(1000).betas, g.at("cosine1000.betas").to_vector(), 1e-12, 1e-16, "cosine betas");
  expect_close(NoiseSchedule::cosine(1000).alphas_cumprod, g.at("cosine1000.alphas_cumprod").to_vector(), 1e-12, 1e-16, "cosine abar");
  expect_close(NoiseSchedule::rdd_cosine().alphas_cumprod, g.at("rdd.alphas_cumprod").to_vector(), 1e-12, 1e-16, "rdd abar");
  const LogSnrCosine pd;
  std::vector<double> logsnr, signal, noise;
  for (double u : g.at("pd.u").to_vector()) {
    logsnr.push_back(pd.logsnr(u));
    signal.push_back(pd.signal(u));
    noise.push_back(pd.noise(u));
  }
  expect_close(logsnr, g.at("pd.logsnr").to_vector(), 1e-12, 1e-10, "pd logsnr");  // tan near pi/2 at u = 1
  expect_close(signal, g.at("pd.signal").to_vector(), 1e-12, 1e-15, "pd signal");
  expect_close(noise, g.at("pd.noise").to_vector(), 1e-12, 1e-15, "pd noise");
  EXPECT_EQ(as_doubles(uniform_steps(1000, 5)), g.at("steps.uniform_1000_5").to_vector());
  EXPECT_EQ(as_doubles(uniform_steps(1000, 50)), g.at("steps.uniform_1000_50").to_vector());
  EXPECT_EQ(as_doubles(quadratic_steps(800, 100)), g.at("steps.quadratic_800_100").to_vector());
}

TEST(DiffusionGolden, DdimStepsWithEtaAndClipping) {
  const auto g = golden("diffusion_steps.safetensors");
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  for (const std::string p : {"ddim_999_979", "ddim_500_480", "ddim_20_0", "ddim_final_0"}) {
    const int64_t t = static_cast<int64_t>(g.at(p + ".t").item()), next = static_cast<int64_t>(g.at(p + ".s").item());
    const Tensor z = g.contains(p + ".z") ? g.at(p + ".z") : Tensor();
    const Tensor x = ddim_step(g.at(p + ".x_t"), g.at(p + ".out"), Prediction::V, s, t, next, g.at(p + ".eta").item(), z, true);
    expect_close(x.to_vector(), g.at(p + ".x_next").to_vector(), 1e-12, 1e-14, p);
  }
}

TEST(DiffusionGolden, RespacedDdpmStepsFixedSmallAndLarge) {
  const auto g = golden("diffusion_steps.safetensors");
  std::vector<int64_t> kept;
  for (double k : g.at("ddpm.kept").to_vector()) kept.push_back(static_cast<int64_t>(k));
  const NoiseSchedule s = NoiseSchedule::cosine(1000).respaced(kept);
  for (const std::string p : {"ddpm_k3_small", "ddpm_k3_large", "ddpm_k1_large", "ddpm_k0"}) {
    const int64_t k = static_cast<int64_t>(g.at(p + ".k").item());
    const auto variance = p.find("large") != std::string::npos ? SamplerConfig::Variance::FixedLarge
                                                                 : SamplerConfig::Variance::FixedSmall;
    const Tensor z = g.contains(p + ".z") ? g.at(p + ".z") : Tensor();
    const Tensor x = ddpm_step(g.at(p + ".x_t"), {g.at(p + ".out"), Tensor()}, Prediction::V, s, k, variance, z, true);
    expect_close(x.to_vector(), g.at(p + ".x_next").to_vector(), 1e-12, 1e-14, p);
  }
}

TEST(DiffusionGolden, RespacedDdpmStepsWithLearnedRangeVariance) {
  const auto g = golden("diffusion_steps.safetensors");
  std::vector<int64_t> kept;
  for (double k : g.at("ddpm.kept").to_vector()) kept.push_back(static_cast<int64_t>(k));
  const NoiseSchedule s = NoiseSchedule::cosine(1000).respaced(kept);
  for (const std::string p : {"ddpm_learned_k3", "ddpm_learned_k1", "ddpm_learned_k0"}) {
    const int64_t k = static_cast<int64_t>(g.at(p + ".k").item());
    const Tensor z = g.contains(p + ".z") ? g.at(p + ".z") : Tensor();
    // The fixed variance flag is ignored when the model gives its own.
    const Tensor x = ddpm_step(g.at(p + ".x_t"), {g.at(p + ".out"), g.at(p + ".var")}, Prediction::Eps, s, k,
                               SamplerConfig::Variance::FixedLarge, z, true);
    expect_close(x.to_vector(), g.at(p + ".x_next").to_vector(), 1e-12, 1e-14, p);
  }
}

TEST(DiffusionGolden, TenStepDdimTrajectoryOfTheTinyUNet) {
  const auto weights = golden("unet_ddpm_weights.safetensors");
  nn::UNet net(nn::UNetConfig::from_json(weights.metadata.at("config"), weights.path));
  net.load_state_dict(weights.tensors, weights.path);
  net.eval();
  const auto g = golden("diffusion_trajectory.safetensors");
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  std::vector<int64_t> steps;
  for (double k : g.at("traj.steps").to_vector()) steps.push_back(static_cast<int64_t>(k));
  ASSERT_EQ(steps, uniform_steps(1000, 10));
  NoGradGuard no_grad;
  Tensor x = g.at("traj.x_T");
  for (int64_t k = static_cast<int64_t>(steps.size()) - 1, n = 1; k >= 0; --k, ++n) {
    const Tensor out = net.forward(x, model_time(s, std::vector<int64_t>(x.size(0), steps[k])));
    x = ddim_step(x, out, Prediction::V, s, steps[k], k > 0 ? steps[k - 1] : -1, 0.0, Tensor(), true);
    expect_close(x.to_vector(), g.at("traj.x_after_step_" + std::to_string(n)).to_vector(), 0, 1e-5,
                 "state after step " + std::to_string(n));
  }
}

}  // namespace
}  // namespace diffkd::testing

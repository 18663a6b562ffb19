// SiD: the noise-level mapping, the loss in closed form, one generator update and one fake-score
// update against an independent PyTorch golden (tests/golden/make_sid_goldens.py), and a tiny run
// that samples in one step and resumes bit-identically.

#include "distill/sid.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "diffusion/generate.h"
#include "distill/common.h"
#include "tensor/philox.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;
using diffusion::NoiseSchedule;
using diffusion::Prediction;

TEST(Sid, NoiseLevelsSpanEdmsRangeAndMapToTheNearestTeacherStep) {
  EXPECT_NEAR(sid_sigma_of_draw(0, 800), kSidSigmaMin, 1e-15);
  EXPECT_NEAR(sid_sigma_of_draw(1, 1000), kSidSigmaMax, 1e-12);
  // t_max 800 caps the draws at (80^(1/7) + 0.2 (0.002^(1/7) - 80^(1/7)))^7.
  const double cap = std::pow(std::pow(80.0, 1 / 7.0) + 0.2 * (std::pow(0.002, 1 / 7.0) - std::pow(80.0, 1 / 7.0)), 7);
  EXPECT_NEAR(sid_sigma_of_draw(1, 800), cap, 1e-12 * cap);
  EXPECT_LT(sid_sigma_of_draw(0.3, 800), sid_sigma_of_draw(0.7, 800));
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  auto sigma = [&](int64_t t) { return std::sqrt((1 - s.alpha_bar(t)) / s.alpha_bar(t)); };
  for (int64_t t : {0, 1, 17, 500, 998, 999}) EXPECT_EQ(sid_step_of_sigma(s, sigma(t)), t) << t;
  // Between two steps the nearer in log sigma wins.
  const double between = std::sqrt(sigma(500) * sigma(501));
  EXPECT_EQ(sid_step_of_sigma(s, between * 0.999), 500);
  EXPECT_EQ(sid_step_of_sigma(s, between * 1.001), 501);
  EXPECT_EQ(sid_step_of_sigma(s, 1e-9), 0);
  EXPECT_EQ(sid_step_of_sigma(s, 1e9), 999);
  EXPECT_THROW(sid_step_of_sigma(s, 0), Error);
}

// The fake score trains at EDM's log-normal levels (SiD's fake-score loss is EDM's): median
// exp(-1.2), so far fewer tiny sigmas than the generator's rho-spaced draws.
TEST(Sid, FakeScoreLevelsAreEdmsLogNormal) {
  EXPECT_NEAR(sid_fake_sigma_of_draw(0), std::exp(-1.2), 1e-15);
  EXPECT_NEAR(sid_fake_sigma_of_draw(1), 1.0, 1e-15);  // -1.2 + 1.2
  EXPECT_NEAR(sid_fake_sigma_of_draw(-2), std::exp(-3.6), 1e-15);
  // Below sigma 0.01: 0.2% of EDM's draws (Phi(-2.84)) against 9% of the generator's at t_max 800.
  int64_t fake_low = 0, generator_low = 0;
  const int64_t n = 20000;
  for (int64_t i = 0; i < n; ++i) {
    fake_low += sid_fake_sigma_of_draw(philox::normal_at(7, 0, i)) < 0.01;
    generator_low += sid_sigma_of_draw(philox::uniform_at(7, 0, i), 800) < 0.01;
  }
  EXPECT_LT(fake_low, n / 100);
  EXPECT_GT(generator_low, n / 14);
  EXPECT_LT(generator_low, n / 9);
}

TEST(Sid, GeneratorLossInClosedForm) {
  // One sample of two pixels: d = (0.1, -0.3), f_phi - x_g = (-0.2, 0.3), w = mean |x_g - f_phi| = 0.25;
  // mean(d ((f_phi - x_g) - 1.2 d)) = (0.1 (-0.32) - 0.3 (0.66)) / 2 = -0.115, over w: -0.46.
  const Tensor x_g = from_vector({0.5, -0.2}, {1, 1, 1, 2}, DType::F64);
  const Tensor f_phi = from_vector({0.3, 0.1}, {1, 1, 1, 2}, DType::F64);
  const Tensor f_psi = from_vector({0.2, 0.4}, {1, 1, 1, 2}, DType::F64);
  EXPECT_NEAR(sid_generator_loss(x_g, f_phi, f_psi, 1.2).item(), -0.46, 1e-14);
  // The normaliser's gradient is stopped: d L / d x_g = -d / (n_pix w) exactly.
  Tensor x = x_g.clone_data().requires_grad_();
  sid_generator_loss(x, f_phi, f_psi, 1.2).backward();
  expect_all_close(x.grad().to_vector(), {-0.1 / 0.5, 0.3 / 0.5}, 1e-14, 0, "d loss / d x_g");
  // A fake denoiser equal to the teacher's: nothing to match, the loss is 0.
  EXPECT_EQ(sid_generator_loss(x_g, f_phi, f_phi, 1.2).item(), 0.0);
}

// The golden's three networks: the tiny "ddpm" UNet's weights as teacher and generator, and the
// fake score network's as those weights + 0.02 sin(0.5 k + 1) at flat index k of every tensor.
struct GoldenNets {
  std::unique_ptr<nn::UNet> teacher, fake, generator;
};

GoldenNets golden_nets() {
  const auto weights = distill_golden("unet_ddpm_weights.safetensors");
  const nn::UNetConfig config = nn::UNetConfig::from_json(weights.metadata.at("config"), weights.path);
  nn::NamedTensors perturbed;
  for (const auto& [name, w] : weights.tensors) {
    std::vector<double> v = w.to_vector();
    for (size_t k = 0; k < v.size(); ++k)
      v[k] = static_cast<float>(v[k] + 0.02 * std::sin(0.5 * static_cast<double>(k) + 1.0));
    perturbed.emplace_back(name, from_vector(v, w.shape(), DType::F32));
  }
  GoldenNets n{std::make_unique<nn::UNet>(config), std::make_unique<nn::UNet>(config),
               std::make_unique<nn::UNet>(config)};
  n.teacher->load_state_dict(weights.tensors, weights.path);
  n.generator->load_state_dict(weights.tensors, weights.path);
  n.fake->load_state_dict(perturbed, "the perturbed weights");
  return n;
}

std::vector<int64_t> mapped_steps(const NoiseSchedule& s, const Tensor& u) {
  std::vector<int64_t> t;
  for (double v : u.to_vector()) t.push_back(sid_step_of_sigma(s, sid_sigma_of_draw(v, 800)));
  return t;
}

// Each gradient within `rel` of its tensor's largest |value| (the f32-vs-f64 floor is in the README).
void expect_gradients_match(const nn::Module& net, const safetensors::Contents& g, double rel) {
  int checked = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    ASSERT_TRUE(g.contains("grad." + name)) << name;
    const std::vector<double> ref = g.at("grad." + name).to_vector();
    ASSERT_TRUE(p.grad().defined()) << name << " has no gradient";
    double scale = 0;
    for (double v : ref) scale = std::max(scale, std::abs(v));
    expect_all_close(p.grad().to_vector(), ref, 0, rel * scale + 1e-12, "grad." + name);
    ++checked;
  }
  EXPECT_GT(checked, 20);
}

TEST(SidGolden, OneGeneratorUpdateMatchesPyTorch) {
  const auto g = distill_golden("sid_generator.safetensors");
  GoldenNets n = golden_nets();
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  const int64_t t_init = sid_step_of_sigma(s, 2.5);
  EXPECT_EQ(t_init, static_cast<int64_t>(g.at("t_init").item()));
  const std::vector<int64_t> t = mapped_steps(s, g.at("u"));
  EXPECT_EQ(t, as_ints(g.at("t")));
  n.teacher->set_requires_grad(false);
  n.fake->set_requires_grad(false);
  const Tensor x_g = diffusion::one_step_image(*n.generator, "x0", Prediction::V, s, to_dtype(g.at("z"), DType::F32), t_init);
  expect_all_close(x_g.to_vector(), g.at("x_g").to_vector(), 0, 2e-5, "x_g");
  const Tensor x_t = diffusion::q_sample(x_g, to_dtype(g.at("eps"), DType::F32), diffusion::coefficients(s, t, x_g));
  const Tensor f_phi = sid_denoised(*n.teacher, Prediction::V, s, x_t, t);
  const Tensor f_psi = sid_denoised(*n.fake, Prediction::V, s, x_t, t);
  expect_all_close(f_phi.to_vector(), g.at("f_teacher").to_vector(), 0, 2e-5, "f_teacher");
  expect_all_close(f_psi.to_vector(), g.at("f_fake").to_vector(), 0, 2e-5, "f_fake");
  Tensor loss = sid_generator_loss(x_g, f_phi, f_psi, g.at("alpha").item());
  EXPECT_NEAR(loss.item(), g.at("loss").item(), 1e-5 * std::abs(g.at("loss").item()));
  loss.backward();
  expect_gradients_match(*n.generator, g, 2e-4);
  for (const auto& [name, p] : n.fake->named_parameters()) EXPECT_FALSE(p.grad().defined()) << "fake " << name;
}

TEST(SidGolden, OneFakeScoreUpdateMatchesPyTorch) {
  const auto g = distill_golden("sid_fake_score.safetensors");
  GoldenNets n = golden_nets();
  int perturbations_checked = 0;
  for (const auto& [key, value] : g.tensors) {  // the perturbation, as the golden made it
    if (key.rfind("psi_check.", 0) != 0) continue;
    const std::string name = key.substr(10);
    for (const auto& [pname, p] : n.fake->named_parameters()) {
      if (pname != name) continue;
      EXPECT_EQ(p.to_vector(), value.to_vector()) << name;
      ++perturbations_checked;
    }
  }
  EXPECT_EQ(perturbations_checked, 2);
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  const int64_t t_init = sid_step_of_sigma(s, 2.5);
  const std::vector<int64_t> t = mapped_steps(s, g.at("u"));
  EXPECT_EQ(t, as_ints(g.at("t")));
  Tensor x_g;
  {
    NoGradGuard no_grad;
    x_g = diffusion::one_step_image(*n.generator, "x0", Prediction::V, s, to_dtype(g.at("z"), DType::F32), t_init);
  }
  expect_all_close(x_g.to_vector(), g.at("x_g").to_vector(), 0, 2e-5, "x_g");
  Tensor loss = sid_fake_score_loss(*n.fake, Prediction::V, s, x_g, t, to_dtype(g.at("eps"), DType::F32));
  EXPECT_NEAR(loss.item(), g.at("loss").item(), 1e-5 * std::abs(g.at("loss").item()));
  loss.backward();
  expect_gradients_match(*n.fake, g, 2e-4);
}

SidOptions tiny_sid(const std::string& dir) {
  SidOptions o;
  o.teacher = tiny_teacher();
  o.run.dir = dir;
  o.batch_size = 4;
  o.steps = 6;
  o.lr = o.fake_lr = 1e-3;
  o.ema = 0.5;
  o.run.log_every = 1;
  o.run.checkpoint_every = 2;
  o.run.quiet = true;
  return o;
}

TEST(Sid, TinyRunSamplesInOneStepAndResumesBitIdentically) {
  const std::string straight = fresh_test_dir("sid_straight"), split = fresh_test_dir("sid_split");
  const SidResult r = sid_distillation(tiny_sid(straight));
  SidOptions b = tiny_sid(split);
  b.run.stop_after = 3;
  EXPECT_TRUE(sid_distillation(b).interrupted);
  b.run.stop_after = 0;
  b.run.resume = true;
  sid_distillation(b);
  expect_same_tensors(straight + "/generator.safetensors", split + "/generator.safetensors");

  diffusion::LoadedModel generator = diffusion::load_diffusion_model(r.model);
  EXPECT_EQ(generator.one_step, "x0");
  EXPECT_EQ(generator.one_step_time, r.t_init);
  EXPECT_EQ(r.t_init, sid_step_of_sigma(NoiseSchedule::cosine(1000), 2.5));
  const Tensor images = diffusion::generate(generator, diffusion::SamplerConfig(), 0, 4, 4, 3);
  EXPECT_EQ(images.shape(), (Shape{4, 1, 8, 8}));
  // It trained: its images differ from those of the generator it started as (the teacher).
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(tiny_teacher());
  teacher.one_step = "x0";
  teacher.one_step_time = r.t_init;
  const std::vector<double> a = images.to_vector(), b0 = diffusion::generate(teacher, {}, 0, 4, 4, 3).to_vector();
  double differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(std::isfinite(a[i]) && a[i] >= -1 && a[i] <= 1);
    differ = std::max(differ, std::abs(a[i] - b0[i]));
  }
  EXPECT_GT(differ, 1e-3);
}

// The message of the Error that `run` throws ("" when none).
template <typename F>
std::string refusal_of(F run) {
  try {
    run();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Sid, RefusesAOneStepTeacherAndBadSettings) {
  SidOptions o = tiny_sid(fresh_test_dir("sid_bad"));
  o.t_max = 1200;
  EXPECT_NE(refusal_of([&] { sid_distillation(o); }).find("--t-max 1200 is outside (0, 1000]"), std::string::npos);
  o = tiny_sid(fresh_test_dir("sid_bad_lr"));
  o.fake_lr = -1;
  EXPECT_NE(refusal_of([&] { sid_distillation(o); }).find("--lr and --fake-lr must be positive"), std::string::npos);
  o = tiny_sid(fresh_test_dir("sid_bad_sigma"));
  o.sigma_init = 0;
  EXPECT_NE(refusal_of([&] { sid_distillation(o); }).find("--sigma-init must be positive"), std::string::npos);
  o = tiny_sid(fresh_test_dir("sid_bad_levels"));
  o.fake_levels = "uniform";
  EXPECT_NE(refusal_of([&] { sid_distillation(o); }).find("--fake-levels 'uniform' is not lognormal or generator"),
            std::string::npos);
  o = tiny_sid(fresh_test_dir("sid_one_step"));
  o.teacher = sid_distillation(tiny_sid(fresh_test_dir("sid_first"))).model;
  try {
    sid_distillation(o);
    FAIL() << "a one-step generator is no teacher";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is a one-step generator, not a diffusion model"), std::string::npos) << e.what();
  }
}

TEST(Sid, AModelFileWithAOneStepTimeOutsideItsScheduleIsRefused) {
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(tiny_teacher());
  const std::string path = fresh_test_dir("sid_bad_time") + ".safetensors";
  save_distilled_model(path, *teacher.net, teacher.spec, "", {{"one_step", "x0"}, {"one_step_time", "1000"}});
  EXPECT_NE(refusal_of([&] { diffusion::load_diffusion_model(path); })
                .find("metadata one_step_time 1000 needs one_step x0 and a step in 0..999"),
            std::string::npos);
  save_distilled_model(path, *teacher.net, teacher.spec, "", {{"one_step", "residual"}, {"one_step_time", "5"}});
  EXPECT_NE(refusal_of([&] { diffusion::load_diffusion_model(path); }).find("needs one_step x0"), std::string::npos);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace diffkd::testing

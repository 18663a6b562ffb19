// SGD, clipping, LR schedules and EMA against hand-computed values (Adam/AdamW are checked
// against torch.optim in unet_golden_test.cpp), and one training step of every preset.

#include <gtest/gtest.h>

#include <cmath>

#include "nn/ema.h"
#include "nn/lr_schedule.h"
#include "nn/optim.h"
#include "nn/presets.h"
#include "nn/unet.h"
#include "tests/nn/tiny_unet.h"

namespace diffkd::testing {
namespace {

struct Scalar : nn::Module {
  Tensor w;
  explicit Scalar(std::vector<double> v) {
    w = from_vector(v, {static_cast<int64_t>(v.size())}, DType::F64);
    register_parameter("w", &w);
  }
};

TEST(Optim, SgdMomentumAndWeightDecayFollowPyTorch) {
  Scalar m({1.0, -2.0});
  nn::SGD sgd(m.named_parameters(), {/*lr=*/0.1, /*momentum=*/0.9, /*weight_decay=*/0.5});
  // loss = sum(w^2)/2: g = w. With decay g' = w + 0.5 w = 1.5 w.
  // step 1: b = 1.5 w0, w1 = w0 - 0.1 * 1.5 w0 = 0.85 w0
  // step 2: b = 0.9 * 1.5 w0 + 1.5 w1 = (1.35 + 1.275) w0, w2 = w1 - 0.1 b = 0.5875 w0
  for (int i = 0; i < 2; ++i) {
    sum(square(m.w) * 0.5).backward();
    sgd.step();
    sgd.zero_grad();
  }
  const std::vector<double> w = m.w.to_vector();
  EXPECT_NEAR(w[0], 0.5875, 1e-12);
  EXPECT_NEAR(w[1], -1.175, 1e-12);
  EXPECT_EQ(sgd.steps_taken(), 2);
}

TEST(Optim, ClipGradNormScalesToTheLimitAndReportsTheNorm) {
  Scalar m({3.0, 4.0});
  sum(square(m.w) * 0.5).backward();  // grad = (3, 4), norm 5
  EXPECT_NEAR(nn::clip_grad_norm(m.parameters(), 1.0), 5.0, 1e-12);
  const std::vector<double> g = m.w.grad().to_vector();
  EXPECT_NEAR(std::hypot(g[0], g[1]), 1.0, 1e-6);
  EXPECT_NEAR(g[0] / g[1], 0.75, 1e-12);
  EXPECT_NEAR(nn::clip_grad_norm(m.parameters(), 10.0), 1.0, 1e-6);  // under the limit: unchanged
  EXPECT_NEAR(m.w.grad().to_vector()[0], g[0], 1e-15);
}

// The norm is the f64 sum of the parameters' squared norms in parameter order, exactly (a resumed
// run's clipping must repeat bit for bit): checked against that sum done in doubles.
TEST(Optim, ClipGradNormIsTheOrderedF64SumExactly) {
  nn::UNet net(tiny_unet_config(), 4);
  Generator gen(8);
  sum(square(net.forward(randn({2, 1, 8, 8}, gen), from_vector({3, 500}, {2})))).backward();
  double total = 0;
  for (const Tensor& p : net.parameters())
    if (p.grad().defined()) total += sum(square(to_dtype(p.grad(), DType::F64))).item();
  EXPECT_EQ(nn::clip_grad_norm(net.parameters(), INFINITY), std::sqrt(total));
}

TEST(Optim, AdamStateRoundTripsAndResumesIdentically) {
  Scalar a({1.0, -2.0}), b({1.0, -2.0});
  AdamHyper h;
  h.lr = 0.1;
  nn::Adam opt_a(a.named_parameters(), h), opt_b(b.named_parameters(), h);
  auto step = [](Scalar& m, nn::Adam& opt) {
    sum(square(m.w) * m.w).backward();
    opt.step();
    opt.zero_grad();
  };
  step(a, opt_a);
  step(b, opt_b);
  // Restore b's optimiser into a fresh one and continue both.
  nn::Adam restored(b.named_parameters(), h);
  restored.load_state(opt_b.state(), opt_b.steps_taken(), "state");
  for (int i = 0; i < 3; ++i) {
    step(a, opt_a);
    step(b, restored);
  }
  EXPECT_EQ(a.w.to_vector(), b.w.to_vector());
}

TEST(LrSchedule, WarmupThenLinearOrCosine) {
  nn::LrSchedule s;
  s.base_lr = 1.0;
  s.warmup_steps = 10;
  s.total_steps = 110;
  EXPECT_DOUBLE_EQ(s.at(5), 0.5);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_DOUBLE_EQ(s.at(1000), 1.0);  // constant
  s.kind = nn::LrSchedule::Kind::Linear;
  EXPECT_DOUBLE_EQ(s.at(60), 0.5);
  EXPECT_DOUBLE_EQ(s.at(110), 0.0);
  s.kind = nn::LrSchedule::Kind::Cosine;
  s.min_lr = 0.1;
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);
  EXPECT_NEAR(s.at(110), 0.1, 1e-12);
  EXPECT_THROW(nn::LrSchedule::parse_kind("step"), Error);
}

TEST(Ema, CopiesBeforeTheStartStepThenAverages) {
  Scalar m({0.0});
  nn::Ema ema(m, /*decay=*/0.9, /*start_step=*/1);
  nn::assign(m.w, from_vector({10.0}, {1}, DType::F64));
  ema.update(m, 1);  // copy
  EXPECT_DOUBLE_EQ(ema.shadow()[0].second.item(), 10.0);
  nn::assign(m.w, from_vector({20.0}, {1}, DType::F64));
  ema.update(m, 2);  // 0.9 * 10 + 0.1 * 20
  EXPECT_NEAR(ema.shadow()[0].second.item(), 11.0, 1e-12);
  Scalar copy({0.0});
  ema.copy_to(copy);
  EXPECT_NEAR(copy.w.item(), 11.0, 1e-12);
}

// EDM's ramp-up: the half-life is capped at ratio x (steps taken), so early averages are short.
TEST(Ema, RampUpCapsTheHalfLifeAtAFractionOfTheStepsTaken) {
  Scalar m({0.0});
  nn::Ema ema(m, /*decay=*/0.99, /*start_step=*/0, /*rampup_ratio=*/0.5);
  EXPECT_DOUBLE_EQ(ema.decay_at(1), 0.0);               // nothing taken yet: a copy
  EXPECT_NEAR(ema.decay_at(3), 0.5, 1e-15);             // half-life 0.5 x 2 = 1 step
  EXPECT_NEAR(ema.decay_at(5), std::sqrt(0.5), 1e-15);  // half-life 2 steps
  EXPECT_DOUBLE_EQ(ema.decay_at(1000), 0.99);           // 0.5^(1/499.5) > 0.99: the decay rules
  nn::assign(m.w, from_vector({10.0}, {1}, DType::F64));
  ema.update(m, 1);
  EXPECT_DOUBLE_EQ(ema.shadow()[0].second.item(), 10.0);
  nn::assign(m.w, from_vector({20.0}, {1}, DType::F64));
  ema.update(m, 3);  // 0.5 * 10 + 0.5 * 20
  EXPECT_NEAR(ema.shadow()[0].second.item(), 15.0, 1e-12);
  nn::Ema plain(m, 0.99);
  EXPECT_DOUBLE_EQ(plain.decay_at(1), 0.99);
  EXPECT_THROW(nn::Ema(m, 0.99, 0, -0.1), Error);
}

// Every preset builds and takes one Adam step that gives a finite loss and moves its weights.
// The CIFAR-scale presets are heavy under the sanitizers and run in the Release build only.
class PresetStep : public ::testing::TestWithParam<std::string> {};

TEST_P(PresetStep, OneTrainingStepRuns) {
  const std::string name = GetParam();
#ifdef DIFFKD_SANITIZE_BUILD
  if (name.find("cifar") != std::string::npos || name.find("celebahq") != std::string::npos)
    GTEST_SKIP() << "CIFAR-scale preset: runs in the Release build only";
#endif
  if (nn::is_generator_config(name)) {  // Adv-KD's generator: every stage's head runs and trains
    nn::StagedGenerator g(nn::load_generator_config(name), 0);
    Generator gen(0);
    const Tensor z = randn({2, g.config().noise_channels, g.config().noise_size, g.config().noise_size}, gen);
    for (int64_t k = 0; k < g.config().stages(); ++k) {
      const int64_t r = g.config().resolutions[k];
      Tensor loss = mse_loss(g.forward(z, k), zeros({2, g.config().image_channels, r, r}));
      ASSERT_TRUE(std::isfinite(loss.item())) << k;
      g.zero_grad();
      loss.backward();
      const nn::NamedTensors trained = g.stage_parameters(k);
      EXPECT_TRUE(trained.back().second.grad().defined()) << k;  // the stage's own head learns
    }
    return;
  }
  const nn::UNetConfig c = nn::load_unet_config(name);
  nn::UNet net(c, 0);
  AdamHyper h;
  h.lr = 1e-4;
  nn::Adam adam(net.named_parameters(), h);
  Generator gen(0);
  const Tensor x = randn({2, c.in_channels, c.image_size, c.image_size}, gen);
  const Tensor target = randn({2, c.out_channels, c.image_size, c.image_size}, gen);
  const Tensor y = c.num_classes > 0 ? from_vector({0, 1}, {2}, DType::I64) : Tensor();
  Tensor loss = mse_loss(net.forward(x, from_vector({10, 700}, {2}), y), target);
  ASSERT_TRUE(std::isfinite(loss.item()));
  loss.backward();
  // The output conv's bias: the one parameter whose gradient is non-zero under both inits
  // (ADM's zeroed residual branches leave the rest at zero gradient on the first step).
  const Tensor out_bias = net.named_parameters().back().second;
  const std::vector<double> before = out_bias.to_vector();
  adam.step();
  EXPECT_NE(before, out_bias.to_vector());
}

INSTANTIATE_TEST_SUITE_P(Presets, PresetStep, ::testing::ValuesIn(nn::preset_names()),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n)
                             if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace diffkd::testing

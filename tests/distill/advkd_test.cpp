// Adv-KD end to end on the tiny teacher: the trajectory set holds the teacher's own samples, the
// WGAN-GP penalty and its weight gradient (a double backward) match finite differences, the
// discriminator learns within a stage (through one joint BatchNorm batch far better than through
// the official separate passes), the generator samples through `generate`, and a resumed
// run is bit-identical.

#include "distill/advkd.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "autograd/engine.h"
#include "diffusion/generate.h"
#include "nn/optim.h"
#include "tensor/creation.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

TEST(AdvKd, TrajectoryTargetsAreTheTeachersOwnSamples) {
  EXPECT_EQ(stage_target_step(0, 3, 6), 1);  // after the first step
  EXPECT_EQ(stage_target_step(1, 3, 6), 4);
  EXPECT_EQ(stage_target_step(2, 3, 6), 6);  // the final sample
  EXPECT_EQ(stage_target_step(6, 11, 1000), 601);  // the official: after t = 399
  EXPECT_EQ(stage_target_step(10, 11, 1000), 1000);
  const auto shard = safetensors::load(tiny_trajectories() + "/trajectories-0000.safetensors");
  EXPECT_EQ(shard.at("states").shape(), (Shape{20, 3, 1, 16, 16}));
  EXPECT_EQ(shard.at("condition").shape(), (Shape{20, 1, 4, 4}));
  // The last stage's target is `diffkd sample --sampler ddpm --steps 6` of the teacher for the same
  // (seed, i), padded with -1 and stored in 8 bits.
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(tiny_teacher());
  diffusion::SamplerConfig ddpm;
  ddpm.kind = diffusion::SamplerConfig::Kind::Ddpm;
  ddpm.steps = 6;
  const Tensor samples = diffusion::generate(teacher, ddpm, 0, 20, 20, 4);
  const Tensor last = nn::from_png_bytes(narrow(shard.at("states"), 1, 2, 1));
  const Tensor inner = narrow(narrow(reshape(last, {20, 1, 16, 16}), 2, 4, 8), 3, 4, 8);
  EXPECT_LE(max(abs(inner - samples)).item(), 1.0 / 255.0 + 1e-6);
  EXPECT_EQ(max(narrow(reshape(last, {20, 1, 16, 16}), 2, 0, 4)).item(), -1.0);  // the padding
}

TEST(AdvKd, GradientPenaltyAndItsWeightGradientMatchFiniteDifferences) {
  nn::DiscriminatorConfig c;
  c.resolution = 8;
  c.ndf = 2;
  c.max_channels = 4;
  c.hidden = 3;
  nn::ConditionalDiscriminator d(c, 5);
  d.to_dtype(DType::F64);
  d.train();
  Generator gen(6);
  const Tensor real = to_dtype(randn({3, 1, 8, 8}, gen), DType::F64), fake = to_dtype(randn({3, 1, 8, 8}, gen), DType::F64);
  const Tensor noise = to_dtype(randn({3, 1, 4, 4}, gen), DType::F64);
  const Tensor alpha = from_vector({0.2, 0.5, 0.9}, {3}, DType::F64);
  // The penalty's inner gradient: d sum D(x^) / d x^ against central differences.
  Tensor x_hat = (0.3 * real + 0.7 * fake).clone_data();
  x_hat.requires_grad_();
  const Tensor inner = grad({sum(d.forward(x_hat, noise))}, {x_hat})[0];
  const double h = 1e-6;
  for (int64_t i : {0, 17, 100, 191}) {
    std::vector<double> plus = x_hat.to_vector(), minus = plus;
    plus[i] += h;
    minus[i] -= h;
    const double fd = (sum(d.forward(from_vector(plus, x_hat.shape(), DType::F64), noise)).item() -
                       sum(d.forward(from_vector(minus, x_hat.shape(), DType::F64), noise)).item()) / (2 * h);
    EXPECT_NEAR(inner.to_vector()[i], fd, 1e-6 * std::max(1.0, std::abs(fd))) << i;
  }
  // d GP / d weight through the double backward, against central differences of GP itself.
  d.zero_grad();
  gradient_penalty(d, real, fake, noise, alpha).backward();
  Tensor weight;
  for (const auto& [name, t] : d.named_parameters())
    if (name == "image.0.weight") weight = t;
  const std::vector<double> analytic = weight.grad().to_vector();
  for (int64_t i : {0, 5, 31}) {
    const std::vector<double> w0 = weight.to_vector();
    auto gp_at = [&](double delta) {
      std::vector<double> w = w0;
      w[i] += delta;
      std::copy(w.begin(), w.end(), weight.data<double>());
      return gradient_penalty(d, real, fake, noise, alpha).item();
    };
    const double fd = (gp_at(h) - gp_at(-h)) / (2 * h);
    gp_at(0);
    EXPECT_NEAR(analytic[i], fd, 1e-5 * std::max(1.0, std::abs(fd))) << i;
  }
}

TEST(AdvKd, DiscriminatorLearnsAndTheGeneratorSamples) {
  const std::string dir = fresh_test_dir("advkd_learns");
  AdvKdOptions o = tiny_advkd(dir);
  o.epochs = 4;  // stage 0: 4 epochs of 6 batches
  const AdvKdResult r = train_advkd(o);
  const std::vector<double> stage1 = stage_losses(dir, 1);
  ASSERT_EQ(stage1.size(), 24u);
  const auto [early, late] = early_and_late(stage1, 6);
  EXPECT_LT(late, early);  // the discriminator's loss falls from its untrained start
  diffusion::LoadedModel g = diffusion::load_diffusion_model(r.model);
  ASSERT_TRUE(g.generator != nullptr);
  const Tensor images = diffusion::generate(g, diffusion::SamplerConfig{}, 0, 5, 5, 0);
  EXPECT_EQ(images.shape(), (Shape{5, 1, 8, 8}));  // the padded 16x16 output cropped to the teacher's 8
  EXPECT_LE(max(abs(images)).item(), 1.0);
}

// D alone, on a real and a fake batch that differ only by a shift of their brightness: the
// logistic part of L_D after `steps` Adam steps.
double logistic_loss_after_training(const std::string& d_batch, int steps) {
  nn::DiscriminatorConfig c;
  c.ndf = 4;
  c.max_channels = 8;
  c.hidden = 8;
  nn::ConditionalDiscriminator d(c, 3);
  d.train();
  AdamHyper hyper;
  hyper.lr = 1e-3;
  hyper.beta1 = 0.5;
  nn::Adam adam(d.named_parameters(), hyper);
  AdversarialOptions o;
  o.gp_weight = 0;
  o.clip = 0;
  o.d_batch = d_batch;
  Generator gen(5);
  DiscriminatorLossParts parts;
  for (int step = 0; step < steps; ++step) {
    const Tensor noise = randn({16, 1, 4, 4}, gen);
    const Tensor real = 0.3 * randn({16, 1, 8, 8}, gen) + 0.4, fake = 0.3 * randn({16, 1, 8, 8}, gen) - 0.4;
    Tensor loss = discriminator_loss(d, real, fake, noise, Tensor(), o, &parts);
    loss.backward();
    adam.step();
    adam.zero_grad();
  }
  return parts.real + parts.fake;
}

TEST(AdvKd, OneJointBatchLetsDSeparateWhatItsSeparateBatchNormPassesHide) {
  // With a BatchNorm pass per batch, D sees each batch normalised by its own statistics, so the
  // shift that tells the batches apart is gone and D stays at chance; through one joint pass it
  // learns the shift at once.
  const double separate = logistic_loss_after_training("separate", 150), joint = logistic_loss_after_training("joint", 150);
  EXPECT_LT(joint, 0.5) << joint;
  EXPECT_GT(separate, 1.3) << separate;  // 2 log 2 = 1.386 is chance
}

TEST(AdvKd, ResumedRunIsBitIdentical) {
  const std::string straight = fresh_test_dir("advkd_straight"), split = fresh_test_dir("advkd_split");
  AdvKdOptions a = tiny_advkd(straight);
  a.epochs = 1;  // stages of 6, 12 and 18 steps
  train_advkd(a);
  AdvKdOptions b = tiny_advkd(split);
  b.epochs = 1;
  b.run.stop_after = 9;  // mid stage 2
  train_advkd(b);
  // One stage of three trained: the generator refuses to sample from its untrained last stage.
  diffusion::LoadedModel partial = diffusion::load_diffusion_model(split + "/generator.safetensors");
  EXPECT_THROW(diffusion::generate(partial, diffusion::SamplerConfig{}, 0, 2, 2, 0), Error);
  b.run.stop_after = 0;
  b.run.resume = true;
  train_advkd(b);
  expect_same_tensors(straight + "/generator.safetensors", split + "/generator.safetensors");
}

// The official CelebA-HQ recipe lowers the batch at the last stages: each stage's epoch is then
// count / its batch steps, and a run resumed mid-stage keeps them.
TEST(AdvKd, PerStageBatchesSetEachStagesStepsAndResume) {
  const std::string straight = fresh_test_dir("advkd_stage_batches"), split = fresh_test_dir("advkd_stage_split");
  AdvKdOptions a = tiny_advkd(straight);
  a.epochs = 1;
  a.stage_batches = {8, 4, 16};  // 48 trajectories: 6, 12 and 3 steps an epoch; stage k runs k + 1 epochs
  train_advkd(a);
  EXPECT_EQ(stage_losses(straight, 1).size(), 6u);
  EXPECT_EQ(stage_losses(straight, 2).size(), 24u);
  EXPECT_EQ(stage_losses(straight, 3).size(), 9u);
  AdvKdOptions b = tiny_advkd(split);
  b.epochs = 1;
  b.stage_batches = a.stage_batches;
  b.run.stop_after = 17;  // mid stage 2
  train_advkd(b);
  b.run.stop_after = 0;
  b.run.resume = true;
  train_advkd(b);
  expect_same_tensors(straight + "/generator.safetensors", split + "/generator.safetensors");
  AdvKdOptions wrong = tiny_advkd(fresh_test_dir("advkd_stage_wrong"));
  wrong.stage_batches = {8, 8};
  try {
    train_advkd(wrong);
    FAIL() << "two batch sizes for three stages";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--stage-batches gives 2 batch sizes for the generator's 3 stages"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace diffkd::testing

// DKDM's objective and Adv-KD's discriminator losses (with the WGAN-GP penalty's double backward)
// against the independent PyTorch golden (tests/golden/make_distill2_goldens.py).

#include <gtest/gtest.h>

#include "distill/advkd.h"
#include "distill/dkdm.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

TEST(DkdmGolden, TeacherStepAndLossMatchPyTorch) {
  const auto g = distill_golden("distill_dkdm.safetensors");
  const diffusion::NoiseSchedule s = diffusion::NoiseSchedule::cosine(1000);
  const std::vector<int64_t> t = as_ints(g.at("t"));
  for (const bool learned : {true, false}) {
    // The teacher is an eps model whose outputs the golden gives (with its variance channels or not).
    const diffusion::ModelFn teacher = [&](const Tensor&, const Tensor&) {
      return learned ? concat({g.at("teacher_eps"), g.at("teacher_var")}, 1) : g.at("teacher_eps");
    };
    const TeacherStep step = dkdm_teacher_step(teacher, diffusion::Prediction::Eps, s, g.at("x_t"), t, g.at("z"));
    const std::string p = learned ? "" : "fixed.";
    expect_all_close(step.log_variance.to_vector(), g.at(p + "teacher_logvar").to_vector(), 1e-12, 1e-14, p + "logvar");
    if (learned) {
      expect_all_close(step.mean.to_vector(), g.at("teacher_mean").to_vector(), 1e-12, 1e-14, "teacher mean");
      expect_all_close(step.x_prev.to_vector(), g.at("teacher_x_prev").to_vector(), 1e-12, 1e-14, "teacher x_prev");
    }
    Tensor out = g.at("student_out").clone_data();
    out.requires_grad_();
    DkdmLossParts parts;
    Tensor loss = dkdm_loss(out, step, s, g.at("x_t"), t, &parts);
    loss.backward();
    expect_all_close({loss.item()}, {g.at(p + "loss").item()}, 1e-11, 1e-14, p + "loss");
    expect_all_close({parts.vb}, {g.at(p + "loss_vb").item()}, 1e-11, 1e-14, p + "vb");
    if (learned) expect_all_close({parts.mse}, {g.at("loss_mse").item()}, 1e-11, 1e-14, "mse");
    expect_all_close(out.grad().to_vector(), g.at(p + "grad_student_out").to_vector(), 1e-10, 1e-13, p + "grad");
  }
}

TEST(AdvKdGolden, DiscriminatorLossGradientPenaltyAndGeneratorLossMatchPyTorch) {
  const auto g = distill_golden("distill_advkd.safetensors");
  nn::DiscriminatorConfig config;
  config.resolution = 16;
  config.ndf = 2;
  config.max_channels = 4;
  config.hidden = 4;
  EXPECT_EQ(config.image_features(), 64);
  EXPECT_EQ(config.noise_features(), 16);
  nn::ConditionalDiscriminator d(config);
  d.to_dtype(DType::F64);
  nn::NamedTensors state = d.named_buffers();  // BatchNorm running statistics: unused in training mode
  for (const auto& [name, t] : d.named_parameters()) state.emplace_back(name, g.at("D." + name));
  d.load_state_dict(state, "distill_advkd");
  d.train();
  const Tensor real = g.at("real"), fake = g.at("fake"), noise = g.at("noise"), alpha = g.at("alpha");
  expect_all_close(d.forward(real, noise).to_vector(), g.at("d_real").to_vector(), 1e-11, 1e-13, "d_real");
  expect_all_close(d.forward(fake, noise).to_vector(), g.at("d_fake").to_vector(), 1e-11, 1e-13, "d_fake");

  const Tensor gp = gradient_penalty(d, real, fake, noise, alpha);
  expect_all_close({gp.item()}, {g.at("gp").item()}, 1e-10, 1e-13, "gp");
  d.zero_grad();
  gp.backward();
  for (const std::string name : {"image.0.weight", "head.1.weight"}) {
    Tensor param;
    for (const auto& [n, t] : d.named_parameters())
      if (n == name) param = t;
    expect_all_close(param.grad().to_vector(), g.at("grad_gp.D." + name).to_vector(), 1e-8, 1e-12, "grad gp " + name);
  }

  d.zero_grad();
  DiscriminatorLossParts parts;
  Tensor loss_d = discriminator_loss(d, real, fake, noise, alpha, AdversarialOptions{}, &parts);
  expect_all_close({loss_d.item()}, {g.at("loss_d").item()}, 1e-10, 1e-13, "loss_d");
  loss_d.backward();
  for (const auto& [name, t] : d.named_parameters())
    expect_all_close(t.grad().to_vector(), g.at("grad_loss_d.D." + name).to_vector(), 1e-8, 1e-12, "grad loss_d " + name);

  Tensor generated = fake.clone_data();
  generated.requires_grad_();
  Tensor loss_g = generator_loss(d, generated, noise, AdversarialOptions{});
  loss_g.backward();
  expect_all_close({loss_g.item()}, {g.at("loss_g").item()}, 1e-10, 1e-13, "loss_g");
  expect_all_close(generated.grad().to_vector(), g.at("grad_loss_g_fake").to_vector(), 1e-9, 1e-13, "grad loss_g");
}

TEST(AdvKd, DiscriminatorBranchesEndAt4x4WhateverTheStage) {
  // The official widths (ndf 32, max 128) at every MNIST stage resolution and at CelebA's 256.
  const std::vector<std::pair<int64_t, int64_t>> expected = {{8, 32 * 16}, {16, 64 * 16}, {32, 128 * 16},
                                                             {64, 128 * 16}, {256, 128 * 16}};
  for (const auto& [r, features] : expected) {
    nn::DiscriminatorConfig c;
    c.resolution = r;
    EXPECT_EQ(c.image_features(), features) << r;
    EXPECT_EQ(c.noise_features(), 64 * 2 * 2);
    nn::ConditionalDiscriminator d(c, 1);
    Generator gen(0);
    d.train();
    EXPECT_EQ(d.forward(randn({2, 1, r, r}, gen), randn({2, 1, 4, 4}, gen)).shape(), (Shape{2})) << r;
  }
}

}  // namespace
}  // namespace diffkd::testing

// The training losses: identities they must satisfy (PD's truncated SNR weighting, iDDPM's
// learned range and stop-gradient), and the discretised decoder likelihood being a distribution.

#include <gtest/gtest.h>

#include <cmath>

#include "diffusion/losses.h"

namespace diffkd::testing {
namespace {

using namespace diffusion;

struct Batch {
  NoiseSchedule s = NoiseSchedule::cosine(1000);
  std::vector<int64_t> t{0, 5, 300, 999};
  Tensor x0, eps, x_t;
  Coefficients c;
  Batch() {
    Generator gen(3);
    x0 = clamp(randn({4, 2, 3, 3}, gen, DType::F64), -1, 1);
    eps = randn({4, 2, 3, 3}, gen, DType::F64);
    c = coefficients(s, t, x0);
    x_t = q_sample(x0, eps, c);
  }
};

TEST(Losses, SnrTruncIsMaxOfSnrAndOneTimesXMse) {
  Batch b;
  Generator gen(4);
  const Tensor x0_hat = b.x0 + 0.1 * randn(b.x0.shape(), gen, DType::F64);
  const Tensor out = x0_hat;  // an x0-predicting network's output
  const double loss = diffusion_loss(LossKind::SnrTrunc, Prediction::X0, {out, b.x0, b.eps, b.x_t, b.c, nullptr, {}}).item();
  const std::vector<double> x_mse = mean(flatten(square(x0_hat - b.x0), 1), {1}).to_vector();
  double expected = 0;
  for (size_t i = 0; i < b.t.size(); ++i) {
    const double snr = b.s.alpha_bar(b.t[i]) / (1 - b.s.alpha_bar(b.t[i]));
    expected += std::max(snr, 1.0) * x_mse[i] / b.t.size();
  }
  EXPECT_NEAR(loss, expected, 1e-9 * expected);
}

// An MSE loss in another space than the network's output converts the output first: the x0-MSE
// of a v-network is the MSE of the x0 it implies, and each loss of a matching network is the
// plain MSE against its target.
TEST(Losses, MseLossesConvertTheOutputToTheirSpace) {
  Batch b;
  Generator gen(5);
  const Tensor v_out = prediction_target(Prediction::V, b.x0, b.eps, b.c) + 0.1 * randn(b.x0.shape(), gen, DType::F64);
  const Denoised d = denoise(v_out, Prediction::V, b.x_t, b.c);
  const LossInputs in{v_out, b.x0, b.eps, b.x_t, b.c, nullptr, {}};
  EXPECT_NEAR(diffusion_loss(LossKind::X0, Prediction::V, in).item(), mse_loss(d.x0, b.x0).item(), 1e-12);
  EXPECT_NEAR(diffusion_loss(LossKind::Eps, Prediction::V, in).item(), mse_loss(d.eps, b.eps).item(), 1e-12);
  const double v_mse = mse_loss(v_out, prediction_target(Prediction::V, b.x0, b.eps, b.c)).item();
  EXPECT_NEAR(diffusion_loss(LossKind::V, Prediction::V, in).item(), v_mse, 1e-12);
  // A v-loss of an eps-network: the v implied by its eps, against the true v.
  const Tensor eps_out = b.eps + 0.1 * randn(b.x0.shape(), gen, DType::F64);
  const Denoised e = denoise(eps_out, Prediction::Eps, b.x_t, b.c);
  const LossInputs in_eps{eps_out, b.x0, b.eps, b.x_t, b.c, nullptr, {}};
  EXPECT_NEAR(diffusion_loss(LossKind::V, Prediction::Eps, in_eps).item(),
              mse_loss(prediction_target(Prediction::V, e.x0, e.eps, b.c),
                       prediction_target(Prediction::V, b.x0, b.eps, b.c)).item(), 1e-12);
  EXPECT_GT(std::abs(diffusion_loss(LossKind::X0, Prediction::V, in).item() - mse_loss(v_out, b.x0).item()), 1e-3);
}

TEST(Losses, LearnedRangeSpansPosteriorVarianceToBeta) {
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  const std::vector<int64_t> t{10, 500};
  const std::vector<double> hi = learned_log_variance(ones({2, 1, 1, 1}, DType::F64), s, t).to_vector();
  const std::vector<double> lo = learned_log_variance(full({2, 1, 1, 1}, -1.0, DType::F64), s, t).to_vector();
  for (int i = 0; i < 2; ++i) {
    const int64_t step = t[i];
    EXPECT_NEAR(hi[i], std::log(s.betas[step]), 1e-12);
    const double tilde = s.betas[step] * (1 - s.alpha_bar(step - 1)) / (1 - s.alpha_bar(step));
    EXPECT_NEAR(lo[i], std::log(tilde), 1e-12);
  }
}

TEST(Losses, HybridVlbTrainsOnlyTheVarianceChannels) {
  Batch b;
  Generator gen(5);
  const Tensor out = randn({4, 4, 3, 3}, gen, DType::F64).requires_grad_();
  diffusion_loss(LossKind::Hybrid, Prediction::Eps, {out, b.x0, b.eps, b.x_t, b.c, &b.s, b.t}).backward();
  const Tensor g = out.grad();
  // The eps channels get exactly the gradient of the MSE term alone ...
  const Tensor eps_hat = narrow(out.detach(), 1, 0, 2).requires_grad_();
  mse_loss(eps_hat, b.eps).backward();
  EXPECT_LT(max(abs(narrow(g, 1, 0, 2) - eps_hat.grad())).item(), 1e-15);
  // ... and the variance channels get a gradient from the VLB term.
  EXPECT_GT(max(abs(narrow(g, 1, 2, 2))).item(), 1e-6);
}

TEST(Losses, DiscretisedLikelihoodSumsToOneOverThe256Levels) {
  std::vector<double> levels(256);
  for (int k = 0; k < 256; ++k) levels[k] = k / 127.5 - 1.0;
  const Tensor x = from_vector(levels, {256}, DType::F64);
  for (double mean : {-0.3, 0.0, 0.95})
    for (double log_scale : {-3.0, -1.0}) {
      const Tensor ll = discretized_gaussian_log_likelihood(x, full({256}, mean, DType::F64),
                                                            full({256}, log_scale, DType::F64));
      EXPECT_NEAR(sum(exp(ll)).item(), 1.0, 2e-3) << mean << " " << log_scale;  // tanh-approximate CDF
    }
}

TEST(Losses, KlOfEqualGaussiansIsZero) {
  const Tensor m = full({3}, 0.4, DType::F64), l = full({3}, -2.0, DType::F64);
  EXPECT_NEAR(sum(normal_kl(m, l, m, l)).item(), 0.0, 1e-15);
  EXPECT_NEAR(normal_kl(zeros({1}, DType::F64), zeros({1}, DType::F64), ones({1}, DType::F64), zeros({1}, DType::F64)).item(),
              0.5, 1e-15);
}

}  // namespace
}  // namespace diffkd::testing

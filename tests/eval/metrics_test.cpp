// Frechet distance and KID against NumPy (tests/golden/make_metric_goldens.py, written from the
// formulas independently of our code), and IS-proxy / fidelity on cases with known answers.
//
// Tolerances: 1e-9 relative for the full-rank cases (both sides are float64 eigendecompositions;
// measured agreement is ~1e-14); 1e-6 relative for the rank-deficient case, whose zero
// eigenvalues come out as +-1e-16 and contribute ~1e-8 square roots that depend on round-off;
// 1e-9 absolute where the exact value is 0.

#include <gtest/gtest.h>

#include <cmath>

#include "autograd/ops.h"
#include "eval/metrics.h"
#include "nn/safetensors.h"
#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

struct MetricCase {
  const char* name;
  double fid_tol_rel, kid_tol_rel;
};

class MetricGolden : public ::testing::TestWithParam<MetricCase> {};

TEST_P(MetricGolden, FrechetAndKidMatchNumPy) {
  const MetricCase c = GetParam();
  const auto f = safetensors::load(diffkd::testing::golden_dir() + "/metrics_" + c.name + ".safetensors");
  const eval::FeatureStats a = eval::feature_stats(f.at("a")), b = eval::feature_stats(f.at("b"));
  const std::vector<double> mu = f.at("mu_a").to_vector();
  for (size_t i = 0; i < mu.size(); ++i) ASSERT_NEAR(a.mean[i], mu[i], 1e-14);
  const std::vector<double> cov = f.at("cov_a").to_vector();
  for (size_t i = 0; i < cov.size(); ++i) ASSERT_NEAR(a.covariance[i], cov[i], 1e-12 * (1 + std::abs(cov[i])));
  const double fid = f.at("fid").item(), kid = f.at("kid").item();
  EXPECT_NEAR(eval::frechet_distance(a, b), fid, c.fid_tol_rel * std::abs(fid) + 1e-9) << c.name;
  EXPECT_NEAR(eval::kernel_inception_distance(f.at("a"), f.at("b")), kid, c.kid_tol_rel * std::abs(kid) + 1e-12) << c.name;
}

INSTANTIATE_TEST_SUITE_P(NumPy, MetricGolden,
                         ::testing::Values(MetricCase{"gauss_d8", 1e-9, 1e-9}, MetricCase{"correlated_d16", 1e-9, 1e-9},
                                           MetricCase{"rank_deficient_d32", 1e-6, 1e-9},
                                           MetricCase{"identical", 0, 1e-9}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(ClassStats, InceptionScoreIsOneForUniformAndKForConfidentBalancedPredictions) {
  EXPECT_NEAR(eval::class_stats(zeros({20, 10})).inception_score, 1.0, 1e-12);
  std::vector<double> logits(40 * 4, -50.0);
  for (int i = 0; i < 40; ++i) logits[i * 4 + i % 4] = 50.0;  // confident, all 4 classes equally
  const eval::ClassStats s = eval::class_stats(from_vector(logits, {40, 4}));
  EXPECT_NEAR(s.inception_score, 4.0, 1e-9);
  for (double f : s.class_fraction) EXPECT_DOUBLE_EQ(f, 0.25);
}

TEST(Fidelity, MseAndPsnrOfAKnownOffset) {
  const Tensor a = zeros({3, 1, 4, 4}), b = full({3, 1, 4, 4}, 0.2);
  const eval::Fidelity f = eval::fidelity(a, b);
  EXPECT_NEAR(f.mse, 0.04, 1e-8);  // 0.2 in f32 is 0.2 + 3e-9
  EXPECT_NEAR(f.psnr, 10 * std::log10(4 / 0.04), 1e-6);
}

}  // namespace
}  // namespace diffkd::testing

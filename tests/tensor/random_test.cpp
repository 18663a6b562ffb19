// The Philox4x32-10 generator: Random123's known-answer vectors, draws keyed by (seed, offset)
// that do not depend on how a draw is split, and the moments of the distributions.

#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>

#include "autograd/ops.h"
#include "tensor/philox.h"
#include "tensor/scalar_ops.h"

namespace diffkd {
namespace {

TEST(Philox, MatchesRandom123KnownAnswers) {
  using philox::Block;
  auto run = [](Block c, uint32_t k0, uint32_t k1) { return philox::philox4x32_10(c, k0, k1); };
  const Block a = run({{0, 0, 0, 0}}, 0, 0);
  EXPECT_EQ(a.v[0], 0x6627e8d5u);
  EXPECT_EQ(a.v[1], 0xe169c58du);
  EXPECT_EQ(a.v[2], 0xbc57ac4cu);
  EXPECT_EQ(a.v[3], 0x9b00dbd8u);
  const Block b = run({{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}}, 0xffffffffu, 0xffffffffu);
  EXPECT_EQ(b.v[0], 0x408f276du);
  EXPECT_EQ(b.v[3], 0x6d5451fdu);
  const Block c = run({{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}}, 0xa4093822u, 0x299f31d0u);
  EXPECT_EQ(c.v[0], 0xd16cfe09u);
  EXPECT_EQ(c.v[1], 0x94fdccebu);
  EXPECT_EQ(c.v[2], 0x5001e420u);
  EXPECT_EQ(c.v[3], 0x24126ea1u);
}

TEST(Random, DrawsDependOnlyOnSeedAndOffset) {
  // One draw of 4 images of 16 values equals four draws of one image at offsets i * 16 / 4.
  const Tensor batch = randn_at({4, 16}, 9, 100);
  for (int64_t i = 0; i < 4; ++i) {
    const Tensor one = randn_at({16}, 9, 100 + i * 4);
    EXPECT_EQ(one.to_vector(), narrow(batch, 0, i, 1).to_vector()) << "image " << i;
  }
  Generator a(5), b(5);
  EXPECT_EQ(randn({10}, a).to_vector(), randn({10}, b).to_vector());
  Generator other(6);
  EXPECT_NE(randn({10}, a).to_vector(), randn({10}, other).to_vector());
}

TEST(Random, ThreadCountDoesNotChangeTheNumbers) {
  const std::vector<double> many = randn_at({100000}, 1, 0).to_vector();
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const std::vector<double> single = randn_at({100000}, 1, 0).to_vector();
  omp_set_num_threads(threads);
  EXPECT_EQ(many, single);
}

TEST(Random, GeneratorAdvancesByConsumedBlocks) {
  Generator g(1);
  rand({10}, g);  // 10 values = 3 blocks of 4
  EXPECT_EQ(g.offset, 3u);
}

TEST(Random, MomentsOfUniformNormalAndBernoulli) {
  Generator g(3);
  const int64_t n = 200000;
  const std::vector<double> u = rand({n}, g, DType::F64).to_vector();
  const std::vector<double> z = randn({n}, g, DType::F64).to_vector();
  double su = 0, sz = 0, szz = 0, lo = 1, hi = 0;
  for (int64_t i = 0; i < n; ++i) {
    su += u[i];
    lo = std::min(lo, u[i]);
    hi = std::max(hi, u[i]);
    sz += z[i];
    szz += z[i] * z[i];
  }
  EXPECT_NEAR(su / n, 0.5, 0.005);
  EXPECT_GT(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(sz / n, 0.0, 0.01);
  EXPECT_NEAR(szz / n, 1.0, 0.01);
  Tensor kept = dropout(ones({n}), 0.25, true, g);
  const std::vector<double> k = kept.to_vector();
  double nonzero = 0;
  for (double v : k) {
    if (v != 0) {
      EXPECT_NEAR(v, 1.0 / 0.75, 1e-6);
      ++nonzero;
    }
  }
  EXPECT_NEAR(nonzero / n, 0.75, 0.005);
}

}  // namespace
}  // namespace diffkd

namespace diffkd::testing {
namespace {

// The kernels fill whole Philox blocks at once; every element must still be exactly the
// per-element formula (what a CUDA thread per element computes), partial last block included.
TEST(Random, BlockwiseKernelEqualsThePerElementFormula) {
  const uint64_t seed = 1234, offset = 77;
  const std::vector<double> normal = randn_at({4097}, seed, offset, DType::F64).to_vector();
  const std::vector<double> unif = rand_at({4099}, seed, offset, DType::F64).to_vector();
  for (uint64_t i = 0; i < normal.size(); ++i)
    ASSERT_EQ(normal[i], philox::normal_at(seed, offset, i)) << "normal element " << i;
  for (uint64_t i = 0; i < unif.size(); ++i)
    ASSERT_EQ(unif[i], philox::uniform_at(seed, offset, i)) << "uniform element " << i;
}


// The largest Philox output, 2^32 - 1, maps to u = 1 - 2^-33: in f32, a + (b - a) * u rounds to b.
// uniform_between keeps every f32 draw strictly below b (and f64 draws are unaffected).
TEST(Random, F32UniformStaysBelowTheUpperBound) {
  const double u_max = philox::to_unit(0xffffffffu);
  EXPECT_EQ(static_cast<float>(u_max), 1.0f);  // the rounding this guards against
  EXPECT_LT(scalar::uniform_between<float>(u_max, 0.0, 1.0), 1.0f);
  EXPECT_LT(scalar::uniform_between<float>(u_max, -1.0, 3.0), 3.0f);
  EXPECT_EQ(scalar::uniform_between<double>(u_max, 0.0, 1.0), u_max);
  EXPECT_EQ(scalar::uniform_between<float>(0.25, 0.0, 1.0), 0.25f);
  Generator gen(3);
  const std::vector<double> draws = rand({1 << 16}, gen, DType::F32).to_vector();
  for (double d : draws) ASSERT_TRUE(d > 0.0 && d < 1.0) << d;
}

}  // namespace
}  // namespace diffkd::testing

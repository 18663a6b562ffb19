// The packed-weight cache of the CPU convolutions: reused under no-grad while the weight is
// unchanged, repacked after any write to it (through data(), an optimiser step, a copy into it),
// never used while gradients are recorded, and emptied of weights that no longer exist.

#include <gtest/gtest.h>

#include "autograd/grad_mode.h"
#include "autograd/ops.h"
#include "nn/optim.h"
#include "tensor/backend.h"
#include "tensor/cpu/packed_weight_cache.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

using cpu_impl::packed_weight_cache;

class PackedWeightCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
#if !defined(__AVX512F__)
    GTEST_SKIP() << "the packed-weight cache serves the AVX-512 direct convolution, not built here";
#endif
    packed_weight_cache().clear();
  }
  void TearDown() override { packed_weight_cache().clear(); }

  const Conv2dOptions opt{{1, 1}, {1, 1}, {0, 0}};
  Generator gen{5};
  Tensor x = randn({2, 16, 6, 6}, gen);
  Tensor w = randn({32, 16, 3, 3}, gen);
  Tensor b = randn({32}, gen);

  // The same convolution with gradients recorded, which never consults the cache.
  Tensor reference() const { return conv2d(x, w, b, opt); }
};

TEST_F(PackedWeightCacheTest, ReusedUnderNoGradWhileTheWeightIsUnchanged) {
  NoGradGuard no_grad;
  const Tensor y1 = conv2d(x, w, b, opt);
  const Tensor y2 = conv2d(x, w, b, opt);
  const auto s = packed_weight_cache().stats();
  EXPECT_EQ(s.packs, 1);
  EXPECT_EQ(s.hits, 1);
  EXPECT_EQ(s.entries, 1);
  EXPECT_EQ(s.bytes, 32 * 16 * 9 * 4);
  DK_EXPECT_CLOSE(y2, y1, 0.0, 0.0, "second call");
}

TEST_F(PackedWeightCacheTest, AWriteThroughDataIsSeenByTheNextCall) {
  Tensor y_old;
  {
    NoGradGuard no_grad;
    y_old = conv2d(x, w, b, opt);
  }
  w.data<float>()[7] += 1.5f;  // one weight of output channel 0
  const Tensor expected = reference();
  NoGradGuard no_grad;
  const Tensor y = conv2d(x, w, b, opt);
  EXPECT_EQ(packed_weight_cache().stats().packs, 2);
  DK_EXPECT_CLOSE(y, expected, 0.0, 0.0, "after the write");
  EXPECT_GT(std::abs(y.to_vector()[0] - y_old.to_vector()[0]), 1e-3);
}

TEST_F(PackedWeightCacheTest, AnOptimiserStepAndACopyIntoTheWeightAreSeen) {
  Tensor wp = w.clone_data().requires_grad_();
  {
    NoGradGuard no_grad;
    conv2d(x, wp, b, opt);
  }
  nn::Adam adam({{"w", wp}}, AdamHyper{});
  sum(conv2d(x, wp, b, opt)).backward();
  adam.step();
  Tensor after_step;
  {
    NoGradGuard no_grad;
    after_step = conv2d(x, wp, b, opt);
  }
  DK_EXPECT_CLOSE(after_step, conv2d(x, wp.detach(), b, opt), 0.0, 0.0, "after an Adam step");
  backend(cpu()).copy(w, wp.detach());
  const Tensor expected = reference();
  NoGradGuard no_grad;
  DK_EXPECT_CLOSE(conv2d(x, wp, b, opt), expected, 0.0, 0.0, "after copying w into it");
  EXPECT_EQ(packed_weight_cache().stats().packs, 3);  // the first call, after the step, after the copy
}

TEST_F(PackedWeightCacheTest, NotUsedWhileGradientsAreRecorded) {
  reference();
  reference();
  EXPECT_EQ(packed_weight_cache().stats().packs, 0);
  EXPECT_EQ(packed_weight_cache().stats().entries, 0);
}

TEST_F(PackedWeightCacheTest, WeightsThatNoLongerExistAreDropped) {
  NoGradGuard no_grad;
  {
    const Tensor temporary = randn({32, 16, 3, 3}, gen);
    conv2d(x, temporary, b, opt);
  }
  EXPECT_EQ(packed_weight_cache().stats().entries, 1);
  conv2d(x, w, b, opt);  // a new weight sweeps the freed one
  EXPECT_EQ(packed_weight_cache().stats().entries, 1);
}

}  // namespace
}  // namespace diffkd

// The autograd engine: graph building, accumulation, retain_graph, NoGradGuard, deep graphs,
// grad() with create_graph, and the double-backward chains WGAN-GP needs.

#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"

namespace diffkd {
namespace {

Tensor vec(std::vector<double> v) { return from_vector(v, {static_cast<int64_t>(v.size())}, DType::F64); }

TEST(Engine, LeafGradientsAccumulateAcrossBackwardCalls) {
  Tensor x = vec({1, 2, 3}).requires_grad_();
  sum(x * x).backward();
  sum(x * 3.0).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{5, 7, 9}));  // 2x + 3
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Engine, InputUsedTwiceGetsSumOfBothPaths) {
  Tensor x = vec({2}).requires_grad_();
  Tensor y = x * x * x + x;  // dy/dx = 3x^2 + 1 = 13
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 13.0);
}

TEST(Engine, SecondBackwardWithoutRetainGraphThrows) {
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward();
  EXPECT_THROW(y.backward(), Error);
}

TEST(Engine, RetainGraphAllowsASecondBackward) {
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor y = sum(exp(x));
  y.backward(Tensor(), /*retain_graph=*/true);
  y.backward();
  const auto g = x.grad().to_vector();
  EXPECT_NEAR(g[0], 2 * std::exp(1.0), 1e-12);
  EXPECT_NEAR(g[1], 2 * std::exp(2.0), 1e-12);
}

TEST(Engine, NoGradGuardRecordsNothing) {
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor y;
  {
    NoGradGuard no_grad;
    y = x * 2.0;
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_THROW(sum(y).backward(), Error);
}

TEST(Engine, NonScalarBackwardNeedsExplicitGradient) {
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(), Error);
  y.backward(vec({1, 10}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 20}));
}

TEST(Engine, DetachCutsTheGraph) {
  Tensor x = vec({3}).requires_grad_();
  Tensor y = x * x.detach();  // d/dx = x (the detached factor is a constant)
  y.backward();
  EXPECT_DOUBLE_EQ(x.grad().item(), 3.0);
}

TEST(Engine, ChainOf100000OpsNeitherOverflowsTheStackNorLeaks) {
  Tensor x = scalar_tensor(1.0, DType::F64).requires_grad_();
  Tensor y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0000001;
  y.backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.0000001, 100000), 1e-9);
  // Dropping the last reference destroys the whole chain (iteratively) without recursion: the
  // first node of the chain, watched through a weak_ptr, is gone with it.
  Tensor z = x + 1.0;
  const std::weak_ptr<Node> first_node = z.grad_fn();
  for (int i = 0; i < 100000; ++i) z = z + 1.0;
  EXPECT_FALSE(first_node.expired());
  z = Tensor();
  EXPECT_TRUE(first_node.expired());
}

TEST(Engine, SavedTensorsAreFreedAfterBackward) {
  Tensor x = vec({1, 2, 3}).requires_grad_();
  Tensor big = ones({1000}, DType::F64);
  std::weak_ptr<Storage> big_storage = big.storage();
  Tensor y = sum(x * 2.0) + sum(big * sum(x));  // the mul node saves `big`
  big = Tensor();
  EXPECT_FALSE(big_storage.expired());
  y.backward();
  EXPECT_TRUE(big_storage.expired());  // released with the graph
}

TEST(Engine, GradReturnsGradientsWithoutTouchingLeaves) {
  Tensor x = vec({1, 2}).requires_grad_();
  Tensor w = vec({3, 4}).requires_grad_();
  Tensor y = sum(x * w);
  const TensorList g = grad({y}, {x});
  EXPECT_EQ(g[0].to_vector(), (std::vector<double>{3, 4}));
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
}

TEST(Engine, GradOfUnusedInputThrowsUnlessAllowed) {
  Tensor x = vec({1}).requires_grad_();
  Tensor unused = vec({1}).requires_grad_();
  Tensor y = sum(x * 2.0);
  EXPECT_THROW(grad({y}, {unused}, {}, true), Error);
  const TensorList g = grad({y}, {unused}, {}, false, false, /*allow_unused=*/true);
  EXPECT_FALSE(g[0].defined());
}

TEST(Engine, CreateGraphGivesSecondDerivatives) {
  Tensor x = vec({0.5, -1.5}).requires_grad_();
  Tensor y = sum(pow(x, 3.0));
  Tensor dx = grad({y}, {x}, {}, false, /*create_graph=*/true)[0];  // 3x^2
  Tensor d2x = grad({sum(dx)}, {x})[0];                                // 6x
  EXPECT_NEAR(d2x.to_vector()[0], 3.0, 1e-12);
  EXPECT_NEAR(d2x.to_vector()[1], -9.0, 1e-12);
}

TEST(Engine, BackwardThroughNonDifferentiableGradientThrowsClearly) {
  Generator gen(3);
  Tensor x = uniform({1, 1, 4, 4}, -1, 1, gen, DType::F64).requires_grad_();
  Tensor g = grad({sum(max_pool2d(x, 2))}, {x}, {}, true, /*create_graph=*/true)[0];
  EXPECT_THROW(grad({sum(g * g)}, {x}), Error);
}

// WGAN-GP (Gulrajani et al. 2017): penalty (||d D(x) / dx||_2 - 1)^2 needs gradients of an input
// gradient. The discriminator chain below uses every op the issue lists for double backward:
// conv2d, leaky_relu, batch_norm 2d, conv_transpose2d, concat, reshape/view, flatten,
// batch_norm 1d, linear, add/mul/sum/sqrt/pow.
TEST(Engine, GradientPenaltyOfADiscriminatorMatchesFiniteDifferences) {
  Generator gen(11);
  const Tensor w_conv = uniform({3, 2, 3, 3}, -0.5, 0.5, gen, DType::F64);
  const Tensor w_convt = uniform({3, 2, 2, 2}, -0.5, 0.5, gen, DType::F64);
  const Tensor w_lin = uniform({2, 32}, -0.5, 0.5, gen, DType::F64);
  const Tensor b_lin = uniform({2}, -0.5, 0.5, gen, DType::F64);
  const Tensor noise = uniform({3, 1, 4, 4}, -1, 1, gen, DType::F64);
  auto discriminator = [&](const Tensor& img, const Tensor& w_scale) {
    Tensor h = conv2d(img, w_conv * w_scale, Tensor(), {{2, 2}, {1, 1}, {0, 0}});  // [3,3,2,2]
    h = batch_norm(h, Tensor(), Tensor(), Tensor(), Tensor(), true);
    h = leaky_relu(h, 0.2);
    h = conv_transpose2d(h, w_convt, Tensor(), {{2, 2}, {0, 0}, {0, 0}});       // [3,2,4,4]
    h = concat({h, noise}, 1);                                                   // [3,3,4,4]
    h = view(narrow(h, 1, 0, 2), {3, 2, 16});
    h = flatten(h, 1);                                                           // [3,32]
    h = linear(h, w_lin, b_lin);
    h = batch_norm(h, Tensor(), Tensor(), Tensor(), Tensor(), true);
    return sum(h * h + h);
  };
  auto penalty = [&](const TensorList& xs) {
    GradModeGuard enable(true);
    Tensor d = discriminator(xs[0], xs[1]);
    Tensor g = grad({d}, {xs[0]}, {}, true, /*create_graph=*/true)[0];
    Tensor norms = sqrt(sum(pow(reshape(g, {3, -1}), 2.0), {1}) + 1e-12);
    return sum(pow(norms - 1.0, 2.0)) * 10.0;
  };
  Tensor img = uniform({3, 2, 4, 4}, -1, 1, gen, DType::F64).requires_grad_();
  Tensor scale = scalar_tensor(1.0, DType::F64).requires_grad_();
  const GradcheckResult r = gradcheck(penalty, {img, scale}, {1e-6, 1e-5, 1e-4});
  EXPECT_TRUE(r.ok) << r.message;
}

}  // namespace
}  // namespace diffkd

namespace diffkd {
namespace {

// grad() with respect to an intermediate tensor must stop there: the graph above it stays intact
// for a later backward.
TEST(Engine, GradWithRespectToAnIntermediateLeavesTheGraphAboveIt) {
  Tensor x = from_vector({1.5}, {1}, DType::F64).requires_grad_();
  Tensor h = x * 2.0;
  Tensor y = sum(h * h);
  const Tensor gh = grad({y}, {h}, {}, /*retain_graph=*/false)[0];
  EXPECT_DOUBLE_EQ(gh.item(), 6.0);  // 2h
  sum(h * 3.0).backward();           // h's own graph still works
  EXPECT_DOUBLE_EQ(x.grad().item(), 6.0);
}

}  // namespace
}  // namespace diffkd

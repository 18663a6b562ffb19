// The fused group_norm kernel (tensor/cpu/norm.cpp) against group_norm_composite: same values,
// same gradients, at a UNet-like f32 shape and with strided inputs.

#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

struct Results {
  Tensor y, gx, gw, gb;
};

// x_stored is the leaf; the op reads permute(x_stored, perm) (a non-contiguous view when perm is
// not the identity), and gx is returned in the op's layout.
Results run(bool fused, const Tensor& x_stored, const Tensor& w0, const Tensor& b0, const Tensor& gy,
            int64_t groups, const std::vector<int64_t>& perm = {0, 1, 2, 3}) {
  Tensor leaf = x_stored.clone_data().requires_grad_(), w = w0.clone_data().requires_grad_();
  Tensor b = b0.clone_data().requires_grad_();
  const Tensor x = permute(leaf, perm);
  Tensor y = fused ? group_norm(x, groups, w, b) : group_norm_composite(x, groups, w, b);
  y.backward(gy);
  return {y, permute(leaf.grad(), perm), w.grad(), b.grad()};
}

TEST(FusedGroupNorm, MatchesCompositeAtUnetShapeF32) {
  Generator gen(4);
  const Tensor x = randn({8, 32, 14, 14}, gen) * 3.0 + 1.0;
  const Tensor w = randn({32}, gen), b = randn({32}, gen), gy = randn({8, 32, 14, 14}, gen);
  const Results f = run(true, x, w, b, gy, 8), c = run(false, x, w, b, gy, 8);
  // f32, sums of 784 terms: agreement to a few ulps of the largest values.
  DK_EXPECT_CLOSE(f.y, c.y, 1e-5, 1e-4, "y");
  DK_EXPECT_CLOSE(f.gx, c.gx, 1e-5, 1e-3, "grad x");
  DK_EXPECT_CLOSE(f.gw, c.gw, 1e-4, 1e-4, "grad w");
  DK_EXPECT_CLOSE(f.gb, c.gb, 1e-4, 1e-4, "grad b");
}

TEST(FusedGroupNorm, MatchesCompositeOnPermutedF64Input) {
  Generator gen(5);
  const Tensor x_stored = randn({3, 4, 6, 5}, gen, DType::F64);  // read as [3,5,6,4]
  const std::vector<int64_t> perm = {0, 3, 2, 1};
  ASSERT_FALSE(permute(x_stored, perm).is_contiguous());
  const Tensor w = randn({5}, gen, DType::F64), b = randn({5}, gen, DType::F64);
  const Tensor gy = randn({3, 5, 6, 4}, gen, DType::F64);
  const Results f = run(true, x_stored, w, b, gy, 5, perm), c = run(false, x_stored, w, b, gy, 5, perm);
  DK_EXPECT_CLOSE(f.y, c.y, 1e-12, 1e-10, "y");
  DK_EXPECT_CLOSE(f.gx, c.gx, 1e-12, 1e-10, "grad x");
  DK_EXPECT_CLOSE(f.gw, c.gw, 1e-12, 1e-10, "grad w");
  DK_EXPECT_CLOSE(f.gb, c.gb, 1e-12, 1e-10, "grad b");
}

TEST(FusedGroupNorm, WithoutAffineParameters) {
  Generator gen(6);
  Tensor x = randn({2, 6, 3, 3}, gen, DType::F64).requires_grad_();
  const Tensor gy = randn({2, 6, 3, 3}, gen, DType::F64);
  group_norm(x, 3).backward(gy);
  const Tensor fused = x.grad();
  x.zero_grad();
  group_norm_composite(x, 3).backward(gy);
  DK_EXPECT_CLOSE(fused, x.grad(), 1e-12, 1e-10, "grad x");
}

}  // namespace
}  // namespace diffkd

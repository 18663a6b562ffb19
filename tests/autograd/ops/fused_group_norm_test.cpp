// The fused group_norm and group_norm_silu kernels (tensor/cpu/norm.cpp) against their
// composites: same values, same gradients, at a UNet-like f32 shape and with strided inputs; and
// the CPU's fused group_norm_silu against the Backend's default composition (what CUDA runs).

#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "tensor/cpu/cpu_backend.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

struct Results {
  Tensor y, gx, gw, gb;
};

// x_stored is the leaf; the op reads permute(x_stored, perm) (a non-contiguous view when perm is
// not the identity), and gx is returned in the op's layout.
Results run(bool fused, const Tensor& x_stored, const Tensor& w0, const Tensor& b0, const Tensor& gy,
            int64_t groups, const std::vector<int64_t>& perm = {0, 1, 2, 3}, bool with_silu = false) {
  Tensor leaf = x_stored.clone_data().requires_grad_(), w = w0.clone_data().requires_grad_();
  Tensor b = b0.clone_data().requires_grad_();
  const Tensor x = permute(leaf, perm);
  Tensor y;
  if (with_silu) y = fused ? group_norm_silu(x, groups, w, b) : silu(group_norm_composite(x, groups, w, b));
  else y = fused ? group_norm(x, groups, w, b) : group_norm_composite(x, groups, w, b);
  y.backward(gy);
  return {y, permute(leaf.grad(), perm), w.grad(), b.grad()};
}

// f32 (sums of up to ~800 terms): agreement to a few ulps of the largest values; f64: to rounding.
void expect_results_close(const Results& f, const Results& c) {
  const bool f32 = f.y.dtype() == DType::F32;
  DK_EXPECT_CLOSE(f.y, c.y, f32 ? 1e-5 : 1e-12, f32 ? 1e-4 : 1e-10, "y");
  DK_EXPECT_CLOSE(f.gx, c.gx, f32 ? 1e-5 : 1e-12, f32 ? 1e-3 : 1e-10, "grad x");
  DK_EXPECT_CLOSE(f.gw, c.gw, f32 ? 1e-4 : 1e-12, f32 ? 1e-4 : 1e-10, "grad w");
  DK_EXPECT_CLOSE(f.gb, c.gb, f32 ? 1e-4 : 1e-12, f32 ? 1e-4 : 1e-10, "grad b");
}

TEST(FusedGroupNorm, MatchesCompositeAtUnetShapeF32) {
  Generator gen(4);
  const Tensor x = randn({8, 32, 14, 14}, gen) * 3.0 + 1.0;
  const Tensor w = randn({32}, gen), b = randn({32}, gen), gy = randn({8, 32, 14, 14}, gen);
  const Results f = run(true, x, w, b, gy, 8), c = run(false, x, w, b, gy, 8);
  expect_results_close(f, c);
}

TEST(FusedGroupNorm, MatchesCompositeOnPermutedF64Input) {
  Generator gen(5);
  const Tensor x_stored = randn({3, 4, 6, 5}, gen, DType::F64);  // read as [3,5,6,4]
  const std::vector<int64_t> perm = {0, 3, 2, 1};
  ASSERT_FALSE(permute(x_stored, perm).is_contiguous());
  const Tensor w = randn({5}, gen, DType::F64), b = randn({5}, gen, DType::F64);
  const Tensor gy = randn({3, 5, 6, 4}, gen, DType::F64);
  const Results f = run(true, x_stored, w, b, gy, 5, perm), c = run(false, x_stored, w, b, gy, 5, perm);
  expect_results_close(f, c);
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

TEST(FusedGroupNormSilu, MatchesCompositeAtUnetShapeF32) {
  Generator gen(7);
  const Tensor x = randn({4, 64, 8, 8}, gen) * 2.0 - 0.5;
  const Tensor w = randn({64}, gen), b = randn({64}, gen), gy = randn({4, 64, 8, 8}, gen);
  const Results f = run(true, x, w, b, gy, 32, {0, 1, 2, 3}, true);
  const Results c = run(false, x, w, b, gy, 32, {0, 1, 2, 3}, true);
  expect_results_close(f, c);
}

TEST(FusedGroupNormSilu, MatchesCompositeOnPermutedF64Input) {
  Generator gen(8);
  const Tensor x_stored = randn({2, 6, 5, 4}, gen, DType::F64);  // read as [2,4,5,6]
  const std::vector<int64_t> perm = {0, 3, 2, 1};
  const Tensor w = randn({4}, gen, DType::F64), b = randn({4}, gen, DType::F64);
  const Tensor gy = randn({2, 4, 5, 6}, gen, DType::F64);
  const Results f = run(true, x_stored, w, b, gy, 2, perm, true);
  const Results c = run(false, x_stored, w, b, gy, 2, perm, true);
  expect_results_close(f, c);
}

TEST(FusedGroupNormSilu, AffineGradientsWithoutInputGradient) {
  // x not requiring grad: the kernel keeps gz in its own scratch instead of gx's memory.
  Generator gen(9);
  const Tensor x = randn({3, 8, 4, 4}, gen, DType::F64), gy = randn({3, 8, 4, 4}, gen, DType::F64);
  Tensor w = randn({8}, gen, DType::F64).requires_grad_(), b = randn({8}, gen, DType::F64).requires_grad_();
  group_norm_silu(x, 4, w, b).backward(gy);
  const Tensor gw = w.grad(), gb = b.grad();
  w.zero_grad();
  b.zero_grad();
  silu(group_norm_composite(x, 4, w, b)).backward(gy);
  DK_EXPECT_CLOSE(gw, w.grad(), 1e-12, 1e-10, "grad w");
  DK_EXPECT_CLOSE(gb, b.grad(), 1e-12, 1e-10, "grad b");
}

TEST(FusedGroupNormSilu, CpuKernelsMatchTheBackendDefaultComposition) {
  Generator gen(10);
  const Tensor x = randn({2, 12, 5, 5}, gen, DType::F64), gy = randn({2, 12, 5, 5}, gen, DType::F64);
  const Tensor w = randn({12}, gen, DType::F64), b = randn({12}, gen, DType::F64);
  CpuBackend& cpu = cpu_backend();
  auto outputs = [&] {
    return std::vector<Tensor>{Tensor::empty(x.shape(), DType::F64), Tensor::empty({2, 3}, DType::F64),
                               Tensor::empty({2, 3}, DType::F64), Tensor::empty(x.shape(), DType::F64),
                               Tensor::empty({12}, DType::F64), Tensor::empty({12}, DType::F64)};
  };
  std::vector<Tensor> fused = outputs(), composed = outputs();
  cpu.group_norm_silu(x, w, b, 3, 1e-5, fused[0], fused[1], fused[2]);
  cpu.group_norm_silu_backward(gy, x, w, b, fused[1], fused[2], 3, 1e-5, fused[3], fused[4], fused[5]);
  cpu.Backend::group_norm_silu(x, w, b, 3, 1e-5, composed[0], composed[1], composed[2]);
  cpu.Backend::group_norm_silu_backward(gy, x, w, b, composed[1], composed[2], 3, 1e-5, composed[3],
                                        composed[4], composed[5]);
  const char* names[] = {"y", "mean", "rstd", "grad x", "grad w", "grad b"};
  for (size_t i = 0; i < fused.size(); ++i) DK_EXPECT_CLOSE(fused[i], composed[i], 1e-12, 1e-10, names[i]);
}

}  // namespace
}  // namespace diffkd

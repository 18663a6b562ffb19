// The CPU GEMM kernel in f32 (packed AVX-512 path for large products, Eigen for small ones)
// against the same product in f64, for every transpose combination, strided operands,
// alpha/beta, and sizes that are not multiples of the 12 x 32 register tile.

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

struct GemmCase {
  int64_t m, n, k;
  bool ta, tb;
  double alpha, beta;
};

class GemmF32 : public ::testing::TestWithParam<GemmCase> {};

Tensor to(const Tensor& t, DType d) {
  Tensor out = Tensor::empty(t.shape(), d);
  backend(cpu()).copy(t, out);
  return out;
}

TEST_P(GemmF32, MatchesF64) {
  const GemmCase& g = GetParam();
  Generator gen(31);
  // Operands stored transposed when the flag is set, and read through a strided slice.
  Tensor a64 = randn({1, g.ta ? g.k : g.m, 2 * (g.ta ? g.m : g.k)}, gen, DType::F64);
  Tensor b64 = randn({1, g.tb ? g.n : g.k, 2 * (g.tb ? g.k : g.n)}, gen, DType::F64);
  a64 = slice(a64, 2, 0, a64.size(2), 2);
  b64 = slice(b64, 2, 0, b64.size(2), 2);
  const Tensor c_init = randn({1, g.m, g.n}, gen, DType::F64);
  Tensor c64 = c_init.clone_data(), c32 = to(c_init, DType::F32);
  backend(cpu()).gemm(g.ta, g.tb, g.alpha, a64, b64, g.beta, c64);
  backend(cpu()).gemm(g.ta, g.tb, g.alpha, to(a64, DType::F32), to(b64, DType::F32), g.beta, c32);
  // f32 dot products of length k of N(0,1) values: error ~ sqrt(k) * 6e-8 * |terms|.
  DK_EXPECT_CLOSE(c32, c64, 1e-4 * std::sqrt(static_cast<double>(g.k)), 1e-4, "gemm");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, GemmF32,
    ::testing::Values(GemmCase{130, 150, 140, false, false, 1.0, 0.0},
                      GemmCase{130, 150, 140, true, false, 0.5, 1.0},
                      GemmCase{130, 150, 140, false, true, 1.0, 2.0},
                      GemmCase{131, 129, 257, true, true, -1.0, 0.0},
                      GemmCase{7, 5, 3, false, false, 1.0, 0.0},
                      GemmCase{33, 17, 64, true, true, 2.0, 0.5}),
    [](const ::testing::TestParamInfo<GemmCase>& info) {
      const GemmCase& g = info.param;
      std::ostringstream name;
      name << "m" << g.m << "_n" << g.n << "_k" << g.k << (g.ta ? "_ta" : "") << (g.tb ? "_tb" : "")
           << (g.beta != 0 ? "_beta" : "");
      return name.str();
    });

// Operand views that are not BLAS layouts must be copied, and those that are must be read with the
// right leading dimension: row vectors, column vectors, expanded (stride-0) rows and columns,
// overlapping rows and a batch broadcast with stride 0. Checked against a naive triple loop in f64.
Tensor naive_product(const Tensor& a, const Tensor& b) {
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  const std::vector<double> av = a.to_vector(), bv = b.to_vector();  // row-major
  std::vector<double> c(batch * m * n, 0.0);
  for (int64_t i = 0; i < batch; ++i)
    for (int64_t r = 0; r < m; ++r)
      for (int64_t j = 0; j < n; ++j)
        for (int64_t p = 0; p < k; ++p)
          c[(i * m + r) * n + j] += av[(i * m + r) * k + p] * bv[(i * k + p) * n + j];
  return from_vector(c, {batch, m, n}, DType::F64);
}

// The same view (shape, strides, offset) over an f32 copy of the whole storage.
Tensor same_view_in(const Tensor& view, DType dtype) {
  const int64_t elements = static_cast<int64_t>(view.storage()->nbytes() / sizeof(double));
  const Tensor whole = view.as_strided({elements}, {1}, 0);
  return to_dtype(whole, dtype).as_strided(view.shape(), view.strides(), view.offset());
}

TEST(GemmLayouts, NonBlasViewsAreCopiedAndBlasViewsAreNot) {
  Generator gen(5);
  const Tensor base = randn({2, 6, 5}, gen, DType::F64);
  const Tensor row = randn({2, 1, 5}, gen, DType::F64);
  const Tensor column = randn({2, 6, 1}, gen, DType::F64);
  const Tensor one = randn({1, 6, 5}, gen, DType::F64);
  struct Case {
    const char* name;
    Tensor a, b;
  };
  const Tensor flat = randn({40}, gen, DType::F64);
  const std::vector<Case> cases = {
      {"plain", base, transpose(base, 1, 2)},
      {"expanded rows", expand(row, {2, 4, 5}), transpose(base, 1, 2)},
      {"expanded columns", expand(column, {2, 6, 3}), narrow(base, 1, 0, 3)},
      {"expanded batch", expand(one, {2, 6, 5}), transpose(base, 1, 2)},
      {"overlapping rows", flat.as_strided({2, 4, 5}, {3, 2, 1}, 0), transpose(base, 1, 2)},
      {"overlapping columns", flat.as_strided({2, 5, 4}, {3, 1, 2}, 0), narrow(base, 1, 0, 4)},
      {"column vector", narrow(base, 2, 1, 1), narrow(row, 2, 0, 1)},
      {"row vector", narrow(row, 2, 0, 4), narrow(base, 1, 0, 4)},
  };
  for (const Case& c : cases) {
    const Tensor expected = naive_product(c.a, c.b);
    for (DType dtype : {DType::F64, DType::F32}) {
      // to_dtype copies into a contiguous f32 tensor: rebuild the same view layout over it.
      const Tensor a = dtype == DType::F64 ? c.a : same_view_in(c.a, dtype);
      const Tensor b = dtype == DType::F64 ? c.b : same_view_in(c.b, dtype);
      Tensor out = zeros(expected.shape(), dtype);
      backend(cpu()).gemm(false, false, 1.0, a, b, 0.0, out);
      DK_EXPECT_CLOSE(to_dtype(out, DType::F64), expected, 1e-5, 1e-5, c.name);
    }
  }
}

// The gradient of sum(linear(x, w)) with one output unit is an expanded ones tensor: the
// backward GEMMs must read it as such.
TEST(GemmLayouts, GradientOfSummedSingleOutputLinear) {
  Generator gen(9);
  Tensor x = randn({4, 3}, gen, DType::F64).requires_grad_(true);
  Tensor w = randn({1, 3}, gen, DType::F64).requires_grad_(true);
  sum(linear(x, w)).backward();
  const std::vector<double> xv = x.to_vector(), wv = w.to_vector();
  const std::vector<double> gx = x.grad().to_vector(), gw = w.grad().to_vector();
  for (int64_t j = 0; j < 3; ++j) {
    double column_sum = 0;
    for (int64_t i = 0; i < 4; ++i) column_sum += xv[i * 3 + j];
    EXPECT_NEAR(gw[j], column_sum, 1e-12);
    for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(gx[i * 3 + j], wv[j], 1e-12);
  }
}

}  // namespace
}  // namespace diffkd

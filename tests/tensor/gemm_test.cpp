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

}  // namespace
}  // namespace diffkd

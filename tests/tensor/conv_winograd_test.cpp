// Winograd F(2x2, 3x3) (tensor/cpu/conv_winograd.h): its tile transforms against the direct
// 2x2 correlation they stand for, and the whole kernel against the f64 convolution at shapes
// that reach every edge: odd output sizes (half tiles), padding 0 to 2, output channels that are
// not multiples of the 12-row block, tile counts that are not multiples of the 32-column panel,
// batches cut into several chunks, and the flipped, transposed kernel of the input gradient.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "tensor/backend.h"
#include "tensor/cpu/conv_winograd.h"
#include "tensor/cpu/packed_gemm.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

using namespace cpu_impl::conv;

TEST(Winograd, TileTransformsComputeTheTwoByTwoCorrelation) {
  Generator gen(3);
  const std::vector<double> dv = randn({16}, gen, DType::F64).to_vector(), gv = randn({9}, gen, DType::F64).to_vector();
  float d[16], v[16], m[16], y[4];
  double g[9], u[16];
  for (int i = 0; i < 16; ++i) d[i] = static_cast<float>(dv[i]);
  for (int i = 0; i < 9; ++i) g[i] = static_cast<float>(gv[i]);
  winograd_input_tile(d, v);
  winograd_weight_tile(g, u);
  for (int i = 0; i < 16; ++i) m[i] = static_cast<float>(u[i] * v[i]);
  winograd_output_tile(m, y);
  for (int r = 0; r < 2; ++r)
    for (int c = 0; c < 2; ++c) {
      double expected = 0;
      for (int i = 0; i < 3; ++i)
        for (int j = 0; j < 3; ++j) expected += static_cast<double>(d[(r + i) * 4 + c + j]) * g[i * 3 + j];
      EXPECT_NEAR(y[r * 2 + c], expected, 1e-5) << r << "," << c;
    }
}

struct WinogradCase {
  std::string name;
  int64_t n, c, h, w, o, pad;
  bool flip_transpose;  // the input gradient's kernel, read from a weight [c, o, 3, 3]
};

class WinogradKernel : public ::testing::TestWithParam<WinogradCase> {};

TEST_P(WinogradKernel, MatchesTheF64Convolution) {
  if (!cpu_impl::packed::available()) GTEST_SKIP() << "built without the packed GEMM (AVX-512 or AVX2 + FMA)";
  const WinogradCase& k = GetParam();
  Generator gen(31);
  const Tensor x64 = randn({k.n, k.c, k.h, k.w}, gen, DType::F64);
  const Shape w_shape = k.flip_transpose ? Shape{k.c, k.o, 3, 3} : Shape{k.o, k.c, 3, 3};
  const Tensor w64 = randn(w_shape, gen, DType::F64), b64 = randn({k.o}, gen, DType::F64);
  // The f64 reference: the same convolution through the backend (im2col + Eigen in f64); the
  // flipped, transposed kernel built explicitly.
  std::vector<double> wv = w64.to_vector(), kernel(k.o * k.c * 9);
  for (int64_t o = 0; o < k.o; ++o)
    for (int64_t c = 0; c < k.c; ++c)
      for (int64_t i = 0; i < 9; ++i)
        kernel[(o * k.c + c) * 9 + i] = k.flip_transpose ? wv[(c * k.o + o) * 9 + 8 - i] : wv[(o * k.c + c) * 9 + i];
  const Tensor kernel64 = from_vector(kernel, {k.o, k.c, 3, 3}, DType::F64);
  const int64_t oh = k.h + 2 * k.pad - 2, ow = k.w + 2 * k.pad - 2;
  const Tensor ref = Tensor::empty({k.n, k.o, oh, ow}, DType::F64);
  backend(cpu()).conv2d_forward(x64, kernel64, b64, ref, {1, 1, k.pad, k.pad});

  std::vector<float> x32, w32, b32;
  for (double v : x64.to_vector()) x32.push_back(static_cast<float>(v));
  for (double v : wv) w32.push_back(static_cast<float>(v));
  for (double v : b64.to_vector()) b32.push_back(static_cast<float>(v));
  std::vector<float> packed(winograd_weight_size(k.o, k.c)), y(k.n * k.o * oh * ow, NAN);
  pack_weight_winograd(w32.data(), k.o, k.c, k.flip_transpose, packed.data());
  conv2d_winograd(x32.data(), packed.data(), b32.data(), y.data(), {k.n, k.c, k.h, k.w, k.o, k.pad, k.pad});
  // Sums of 9 C products of N(0, 1) values (magnitude ~ 3 sqrt(C)); the transforms' rounding
  // stays within 1e-5 of that scale (measured: at most 1.1e-6 at these shapes).
  const std::vector<double> r = ref.to_vector();
  const double scale = 3.0 * std::sqrt(static_cast<double>(k.c));
  for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(y[i], r[i], 1e-5 * scale) << k.name << " [" << i << "]";
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, WinogradKernel,
    ::testing::Values(WinogradCase{"n1_c8_h8_w8_o16_p1", 1, 8, 8, 8, 16, 1, false},
                      WinogradCase{"n2_c5_h7_w9_o13_p1", 2, 5, 7, 9, 13, 1, false},
                      WinogradCase{"n3_c3_h6_w11_o7_p0", 3, 3, 6, 11, 7, 0, false},
                      WinogradCase{"n2_c4_h5_w5_o20_p2", 2, 4, 5, 5, 20, 2, false},
                      WinogradCase{"n1_c32_h32_w32_o33_p1", 1, 32, 32, 32, 33, 1, false},
                      WinogradCase{"n1_c16_h1_w1_o12_p1", 1, 16, 1, 1, 12, 1, false},
                      WinogradCase{"n70_c16_h16_w16_o24_p1_chunks", 70, 16, 16, 16, 24, 1, false},
                      WinogradCase{"n2_c24_h7_w7_o17_p1_flipped", 2, 24, 7, 7, 17, 1, true}),
    [](const ::testing::TestParamInfo<WinogradCase>& info) { return info.param.name; });

}  // namespace
}  // namespace diffkd

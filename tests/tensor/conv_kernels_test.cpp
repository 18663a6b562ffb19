// The f32 convolution kernels (packed AVX-512 paths where built: shifted-grid stride-1 forward,
// panel im2col for other strides, grouped backward-weight) against the same convolution in f64
// (the Eigen path), on geometries that exercise every edge: channel counts that are not
// multiples of the 12-row tile, pixel counts that are not multiples of the 32-column panel,
// strides 1 and 2 (the direct kernels at both), 1x1 and 4x4 kernels, padding 0 to 2, and the
// shapes conv.cpp sends to Winograd.

#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "tensor/backend.h"
#include "tests/golden/golden_file.h"

namespace diffkd {
namespace {

struct ConvShape {
  std::string name;
  Shape x, w;
  int64_t stride, pad;
};

class ConvKernelsF32 : public ::testing::TestWithParam<ConvShape> {};

TEST_P(ConvKernelsF32, MatchF64Reference) {
  const ConvShape& s = GetParam();
  Generator gen(21);
  const Tensor x64 = randn(s.x, gen, DType::F64), w64 = randn(s.w, gen, DType::F64);
  const Tensor b64 = randn({s.w[0]}, gen, DType::F64);
  const Conv2dOptions opt{{s.stride, s.stride}, {s.pad, s.pad}, {0, 0}};
  auto run = [&](DType dt) {
    Tensor x = Tensor::empty(s.x, dt), w = Tensor::empty(s.w, dt), b = Tensor::empty({s.w[0]}, dt);
    backend(cpu()).copy(x64, x);
    backend(cpu()).copy(w64, w);
    backend(cpu()).copy(b64, b);
    x.requires_grad_();
    w.requires_grad_();
    b.requires_grad_();
    Tensor y = conv2d(x, w, b, opt);
    Generator g2(22);
    y.backward(randn(y.shape(), g2, dt));
    return std::vector<Tensor>{y, x.grad(), w.grad(), b.grad()};
  };
  const auto f32 = run(DType::F32), f64 = run(DType::F64);
  // f32 sums of up to C*kh*kw (or N*OH*OW for the weight gradient) products of N(0,1) values:
  // errors of a few 1e-6 relative to the magnitude of the sums.
  const char* names[] = {"output", "grad input", "grad weight", "grad bias"};
  for (int i = 0; i < 4; ++i) DK_EXPECT_CLOSE(f32[i], f64[i], 2e-4, 2e-4, s.name << " " << names[i]);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvKernelsF32,
    ::testing::Values(ConvShape{"n3_c5_h9_w7_o13_k3_s1_p1", {3, 5, 9, 7}, {13, 5, 3, 3}, 1, 1},
                      ConvShape{"n2_c16_h14_w14_o24_k3_s1_p1", {2, 16, 14, 14}, {24, 16, 3, 3}, 1, 1},
                      ConvShape{"n5_c8_h7_w7_o12_k3_s1_p1", {5, 8, 7, 7}, {12, 8, 3, 3}, 1, 1},
                      ConvShape{"n2_c3_h6_w11_o7_k3_s1_p0", {2, 3, 6, 11}, {7, 3, 3, 3}, 1, 0},
                      ConvShape{"n2_c4_h8_w8_o5_k5_s1_p2", {2, 4, 8, 8}, {5, 4, 5, 5}, 1, 2},
                      ConvShape{"n3_c6_h5_w5_o4_k1_s1_p0", {3, 6, 5, 5}, {4, 6, 1, 1}, 1, 0},
                      ConvShape{"n2_c5_h9_w8_o14_k3_s2_p1", {2, 5, 9, 8}, {14, 5, 3, 3}, 2, 1},
                      ConvShape{"n2_c3_h8_w8_o6_k4_s2_p1", {2, 3, 8, 8}, {6, 3, 4, 4}, 2, 1},
                      // The direct kernels (O >= 16; input gradient C >= 16): tiles of 1 and 2
                      // rows, odd row counts, strips of 14, 11/11/10 and 10/9 columns, partial
                      // 32-channel blocks, 1x1 and 5x5 kernels, padding 0, a 1x1 map, batch 1.
                      ConvShape{"n1_c32_h4_w4_o64_k3_s1_p1", {1, 32, 4, 4}, {64, 32, 3, 3}, 1, 1},
                      ConvShape{"n2_c17_h7_w7_o48_k3_s1_p1", {2, 17, 7, 7}, {48, 17, 3, 3}, 1, 1},
                      ConvShape{"n3_c8_h32_w32_o32_k3_s1_p1", {3, 8, 32, 32}, {32, 8, 3, 3}, 1, 1},
                      ConvShape{"n2_c16_h28_w28_o16_k3_s1_p1", {2, 16, 28, 28}, {16, 16, 3, 3}, 1, 1},
                      ConvShape{"n1_c20_h5_w19_o40_k3_s1_p1", {1, 20, 5, 19}, {40, 20, 3, 3}, 1, 1},
                      ConvShape{"n2_c24_h6_w6_o33_k1_s1_p0", {2, 24, 6, 6}, {33, 24, 1, 1}, 1, 0},
                      ConvShape{"n2_c16_h9_w9_o20_k5_s1_p2", {2, 16, 9, 9}, {20, 16, 5, 5}, 1, 2},
                      ConvShape{"n2_c18_h1_w1_o32_k3_s1_p1", {2, 18, 1, 1}, {32, 18, 3, 3}, 1, 1},
                      ConvShape{"n2_c16_h6_w11_o32_k3_s1_p0", {2, 16, 6, 11}, {32, 16, 3, 3}, 1, 0},
                      ConvShape{"n4_c64_h8_w8_o96_k3_s1_p1", {4, 64, 8, 8}, {96, 64, 3, 3}, 1, 1},
                      // Stride 2 on the direct forward and weight gradient: 16x16 output (two
                      // strips of 8), odd output rows and columns, a 14-column strip, 1x1 and
                      // 4x4 kernels, a partial channel block.
                      ConvShape{"n1_c32_h32_w32_o32_k3_s2_p1", {1, 32, 32, 32}, {32, 32, 3, 3}, 2, 1},
                      // Winograd F(2x2, 3x3) (forward and input gradient; >= 128 channels, >= 64
                      // tiles): 64 tiles of one image; 90 tiles over 3 images with channel counts
                      // off the 12-row block.
                      ConvShape{"n1_c128_h16_w16_o128_k3_s1_p1", {1, 128, 16, 16}, {128, 128, 3, 3}, 1, 1},
                      ConvShape{"n3_c130_h10_w12_o140_k3_s1_p1", {3, 130, 10, 12}, {140, 130, 3, 3}, 1, 1},
                      ConvShape{"n2_c16_h9_w8_o20_k3_s2_p1", {2, 16, 9, 8}, {20, 16, 3, 3}, 2, 1},
                      ConvShape{"n2_c24_h8_w8_o48_k3_s2_p1", {2, 24, 8, 8}, {48, 24, 3, 3}, 2, 1},
                      ConvShape{"n1_c20_h30_w30_o32_k3_s2_p0", {1, 20, 30, 30}, {32, 20, 3, 3}, 2, 0},
                      ConvShape{"n2_c16_h7_w7_o33_k1_s2_p0", {2, 16, 7, 7}, {33, 16, 1, 1}, 2, 0},
                      ConvShape{"n2_c8_h8_w8_o16_k4_s2_p1", {2, 8, 8, 8}, {16, 8, 4, 4}, 2, 1}),
    [](const ::testing::TestParamInfo<ConvShape>& info) { return info.param.name; });

}  // namespace
}  // namespace diffkd

#pragma once
// f32 3x3 stride-1 convolution by Winograd's minimal filtering F(2x2, 3x3) (Lavin & Gray 2016,
// "Fast Algorithms for Convolutional Neural Networks"): each 2x2 output tile is
//   Y = A^T [ (G g G^T) .* (B^T d B) ] A
// for the 4x4 input patch d under it and the 3x3 kernel g, so the channel sum becomes 16
// independent products U_xi V_xi (xi = one of the 4x4 transformed positions), each a GEMM
// [O x C] x [C x tiles]: 16 multiplies per tile and channel pair where the direct convolution
// spends 36 (2.25x fewer). The transforms add rounding: results differ from the direct path by a
// few ulps of the channel sum (tests/tensor/conv_winograd_test.cpp states the tolerance).
// conv.cpp chooses it per shape (winograd_applies).

#include <cstdint>

namespace diffkd::cpu_impl::conv {

// A 3x3 stride-1 convolution: input [N, C, H, W], weight [O, C, 3, 3], zero padding (ph, pw) < 3;
// output [N, O, H + 2 ph - 2, W + 2 pw - 2].
struct WinogradShape {
  int64_t n, c, h, w;
  int64_t o;
  int64_t ph, pw;
};

// Floats of the transformed, packed weight (16 matrices U_xi, each packed as a GEMM's A).
int64_t winograd_weight_size(int64_t o, int64_t c);
// U_xi = (G g G^T)_xi of w [O, C, 3, 3], packed. When `flip_transpose`, w is [C_out_of_w, O, 3, 3]
// read as the input gradient's kernel (channels swapped, flipped in space), as pack_weight_direct.
void pack_weight_winograd(const float* w, int64_t o, int64_t c, bool flip_transpose, float* packed);

// y = conv(x, w) + bias (bias may be null), with the weight packed by pack_weight_winograd.
void conv2d_winograd(const float* x, const float* packed_weight, const float* bias, float* y,
                     const WinogradShape& s);

// The transforms of one tile, exposed for the tests: B^T d B of a 4x4 patch (row-major), G g G^T
// of a 3x3 kernel, and A^T m A of a transformed 4x4 product.
void winograd_input_tile(const float (&d)[16], float (&v)[16]);
void winograd_weight_tile(const double (&g)[9], double (&u)[16]);
void winograd_output_tile(const float (&m)[16], float (&y)[4]);

}  // namespace diffkd::cpu_impl::conv

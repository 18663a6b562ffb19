#pragma once
// f32 direct convolution (stride 1 or 2) with output channels in the AVX-512 vector lanes
// (conv_direct.cpp says how it is blocked). conv.cpp chooses it per shape.

#include <cstdint>

#include "tensor/cpu/conv_common.h"

namespace diffkd::cpu_impl::conv {

constexpr int64_t kDirectBlock = 32;  // output channels per register tile
// Below this many multiply-adds (or copied elements) a direct-conv loop runs on one thread: at
// batch 1 the maps are small enough that waking the second thread costs more than it saves.
constexpr int64_t kDirectParallelGrain = 1 << 18;

// A convolution: input [N, C, H, W], weight [O, C, kh, kw], zero padding (ph, pw), the same
// stride s (1 or 2) along both axes;
// output [N, O, (H + 2 ph - kh) / s + 1, (W + 2 pw - kw) / s + 1].
struct DirectShape {
  int64_t n, c, h, w;
  int64_t o, kh, kw;
  int64_t ph, pw;
  int64_t stride = 1;
};

// x [nc planes of h x w] into [nc, h + 2 ph, w + 2 pw] with zero borders.
void pad_images(const float* x, int64_t nc, int64_t h, int64_t w, int64_t ph, int64_t pw,
                float* xpad);

// Floats pack_weight_direct writes: O rounded up to 32, times C kh kw.
inline int64_t packed_weight_direct_size(int64_t o, int64_t c, int64_t kh, int64_t kw) {
  return (o + kDirectBlock - 1) / kDirectBlock * kDirectBlock * c * kh * kw;
}

#if defined(__AVX512F__)
// w [O, C, kh, kw] into blocks of 32 output channels, [O/32][C][kh][kw][32] (zeros past O). With
// flip_transpose, w is read as [C, O, kh, kw] and packed as the kernel of its input gradient:
// packed[o][c][i][j] = w[c][o][kh-1-i][kw-1-j] (o < O = w.size(1), c < C = w.size(0)).
// Kernels of at most 16 taps.
void pack_weight_direct(const float* w, int64_t o, int64_t c, int64_t kh, int64_t kw,
                        bool flip_transpose, float* packed);

// y = conv(x, w) + bias with w packed by pack_weight_direct; bias may be null.
void conv2d_direct(const float* x, const float* packed_weight, const float* bias, float* y,
                   const DirectShape& s);

bool conv2d_weight_direct_supports(int64_t kh, int64_t kw);
// gw [O, C, kh, kw] = sum over the batch of the correlation of gy [N, O, OH, OW] with x.
void conv2d_weight_direct(const float* x, const float* gy, float* gw, const DirectShape& s);
#endif

}  // namespace diffkd::cpu_impl::conv

#pragma once
// Source coordinates of nearest and bilinear resampling (PyTorch's conventions), shared by the CPU
// and CUDA backends (DK_HOST_DEVICE) so a CPU test checks the indexing a GPU kernel uses.

#include <cstdint>

#include "tensor/host_device.h"

namespace diffkd::resample {

// Nearest (mode='nearest'): output index dst of `out` reads input floor(dst * in / out).
DK_HOST_DEVICE inline int64_t nearest_source(int64_t dst, int64_t in, int64_t out) {
  const int64_t s = dst * in / out;
  return s < in - 1 ? s : in - 1;
}

// Bilinear with align_corners=False: half-pixel centres, src = (dst + 0.5) in / out - 0.5,
// clamped at 0; the two taps i0 <= i1 and their weights.
struct BilinearTap {
  int64_t i0, i1;
  double w0, w1;
};

DK_HOST_DEVICE inline BilinearTap bilinear_tap(int64_t dst, int64_t in, int64_t out) {
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  double src = scale * (static_cast<double>(dst) + 0.5) - 0.5;
  if (src < 0) src = 0;
  const int64_t i0 = static_cast<int64_t>(src);
  const int64_t i1 = i0 < in - 1 ? i0 + 1 : i0;
  const double l1 = src - static_cast<double>(i0);
  return {i0, i1, 1.0 - l1, l1};
}

}  // namespace diffkd::resample

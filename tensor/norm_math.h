#pragma once
// Per-group math of group normalisation, shared by the CPU and CUDA backends (DK_HOST_DEVICE), so
// a CPU test checks the coefficients a GPU kernel applies.
//
// Forward, for a group with mean mu and rstd r = 1 / sqrt(var + eps), channel weight w and bias b:
//   y = (x - mu) r w + b = a x + shift,   a = r w,   shift = b - mu a.
// Backward (Wu & He 2018; the gradient of the above through mu and r), with per-group sums over
// its d = C/G * HW elements m1 = sum_i w_c(i) gy_i and m2 = sum_i w_c(i) gy_i (x_i - mu):
//   gx_i = r w_c(i) gy_i + slope x_i + shift,
//   slope = -r^3 m2 / d,   shift = -r m1 / d + r^3 m2 mu / d.

#include "tensor/host_device.h"

namespace diffkd::norm_math {

struct Affine {
  double a, shift;
};

DK_HOST_DEVICE inline Affine group_norm_affine(double mu, double r, double w, double b) {
  const double a = r * w;
  return {a, b - mu * a};
}

struct BackwardLine {
  double slope, shift;  // gx = r w gy + slope x + shift
};

DK_HOST_DEVICE inline BackwardLine group_norm_backward_line(double mu, double r, double m1, double m2, double d) {
  const double m1d = m1 / d, m2d = m2 * r / d;
  return {-r * r * m2d, -r * m1d + r * r * m2d * mu};
}

}  // namespace diffkd::norm_math

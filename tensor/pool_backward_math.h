#pragma once
// Pooling and resampling backward passes as gathers: the gradient of ONE input element from the
// output gradients that read it, for a GPU kernel that runs a thread per input element (instead of
// a thread per plane scattering serially). Each gather visits the outputs in row-major order, the
// order in which the CPU backend's scatter adds into that element, so both give the same sum bit
// for bit. DK_HOST_DEVICE: tests/tensor/pool_backward_math_test.cpp checks every element of these
// against the CPU backend.

#include <cstdint>

#include "tensor/host_device.h"
#include "tensor/resample_math.h"

namespace diffkd::pool_math {

DK_HOST_DEVICE inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

// The outputs [lo, hi) of a pooling axis (kernel k, stride s, padding p, `out` outputs) whose
// window o s - p .. o s - p + k - 1 holds input index i.
struct Range {
  int64_t lo, hi;
};
DK_HOST_DEVICE inline Range pool_outputs_reading(int64_t i, int64_t k, int64_t s, int64_t p, int64_t out) {
  int64_t lo = -floor_div(-(i + p - k + 1), s), hi = floor_div(i + p, s) + 1;  // ceil, floor + 1
  if (lo < 0) lo = 0;
  if (hi > out) hi = out;
  return {lo, hi};
}

// Geometry of one (n, c) plane: input H x W, output OH x OW.
struct PlaneShape {
  int64_t H, W, OH, OW;
};
struct PoolWindow {
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
};

// avg_pool2d (count_include_pad): d x[ih, iw] = (sum over windows holding it of gy) / (kh kw),
// summed first and divided once, so no product sits inside the sum for a compiler to fuse.
template <typename T>
DK_HOST_DEVICE T avg_pool_input_grad(const T* gy, PlaneShape s, PoolWindow w, int64_t ih, int64_t iw) {
  const T inv = T(1) / static_cast<T>(w.kernel_h * w.kernel_w);
  const Range rh = pool_outputs_reading(ih, w.kernel_h, w.stride_h, w.pad_h, s.OH);
  const Range rw = pool_outputs_reading(iw, w.kernel_w, w.stride_w, w.pad_w, s.OW);
  T acc = T(0);
  for (int64_t oh = rh.lo; oh < rh.hi; ++oh)
    for (int64_t ow = rw.lo; ow < rw.hi; ++ow) acc += gy[oh * s.OW + ow];
  return acc * inv;
}

// max_pool2d: the output gradients whose recorded argmax (an index into the plane) is this element.
template <typename T>
DK_HOST_DEVICE T max_pool_input_grad(const T* gy, const int64_t* argmax, PlaneShape s, PoolWindow w, int64_t ih,
                                     int64_t iw) {
  const Range rh = pool_outputs_reading(ih, w.kernel_h, w.stride_h, w.pad_h, s.OH);
  const Range rw = pool_outputs_reading(iw, w.kernel_w, w.stride_w, w.pad_w, s.OW);
  const int64_t self = ih * s.W + iw;
  T acc = T(0);
  for (int64_t oh = rh.lo; oh < rh.hi; ++oh)
    for (int64_t ow = rw.lo; ow < rw.hi; ++ow)
      if (argmax[oh * s.OW + ow] == self) acc += gy[oh * s.OW + ow];
  return acc;
}

// The outputs [lo, hi) of a nearest axis whose source floor(o in / out) is i: ceil(i out / in) ..
DK_HOST_DEVICE inline Range nearest_outputs_reading(int64_t i, int64_t in, int64_t out) {
  return {(i * out + in - 1) / in, ((i + 1) * out + in - 1) / in < out ? ((i + 1) * out + in - 1) / in : out};
}

template <typename T>
DK_HOST_DEVICE T nearest_input_grad(const T* gy, PlaneShape s, int64_t ih, int64_t iw) {
  const Range rh = nearest_outputs_reading(ih, s.H, s.OH), rw = nearest_outputs_reading(iw, s.W, s.OW);
  T acc = T(0);
  for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
    if (resample::nearest_source(oh, s.H, s.OH) != ih) continue;
    for (int64_t ow = rw.lo; ow < rw.hi; ++ow)
      if (resample::nearest_source(ow, s.W, s.OW) == iw) acc += gy[oh * s.OW + ow];
  }
  return acc;
}

// Outputs that may tap input i in bilinear resizing (src = (o + 0.5) in / out - 0.5 within
// [i - 1, i + 1)), widened by one on each side; the caller checks each output's taps exactly.
// The first outputs' src < 0 is clamped to 0, so they tap inputs 0 and 1 (the latter with weight
// 0, still added, as the scatter does): their range starts at output 0.
DK_HOST_DEVICE inline Range bilinear_outputs_near(int64_t i, int64_t in, int64_t out) {
  const double ratio = static_cast<double>(out) / static_cast<double>(in);
  int64_t lo = static_cast<int64_t>((static_cast<double>(i) - 0.5) * ratio - 0.5) - 1;
  int64_t hi = static_cast<int64_t>((static_cast<double>(i) + 1.5) * ratio - 0.5) + 2;
  if (lo < 0 || i <= 1) lo = 0;
  if (hi > out) hi = out;
  return {lo, hi};
}

// resize_bilinear (align_corners=False): every output tap on this element, in the scatter's
// order (outputs row-major, then the taps (i0, j0), (i0, j1), (i1, j0), (i1, j1)).
template <typename T>
DK_HOST_DEVICE T bilinear_input_grad(const T* gy, PlaneShape s, int64_t ih, int64_t iw) {
  const Range rh = bilinear_outputs_near(ih, s.H, s.OH), rw = bilinear_outputs_near(iw, s.W, s.OW);
  T acc = T(0);
  for (int64_t oh = rh.lo; oh < rh.hi; ++oh) {
    const resample::BilinearTap a = resample::bilinear_tap(oh, s.H, s.OH);
    if (a.i0 != ih && a.i1 != ih) continue;
    for (int64_t ow = rw.lo; ow < rw.hi; ++ow) {
      const resample::BilinearTap b = resample::bilinear_tap(ow, s.W, s.OW);
      const T g = gy[oh * s.OW + ow];
      if (a.i0 == ih && b.i0 == iw) acc += static_cast<T>(a.w0 * b.w0) * g;
      if (a.i0 == ih && b.i1 == iw) acc += static_cast<T>(a.w0 * b.w1) * g;
      if (a.i1 == ih && b.i0 == iw) acc += static_cast<T>(a.w1 * b.w0) * g;
      if (a.i1 == ih && b.i1 == iw) acc += static_cast<T>(a.w1 * b.w1) * g;
    }
  }
  return acc;
}

}  // namespace diffkd::pool_math

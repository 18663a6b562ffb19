// The GPU's gather form of the pooling and resampling backward passes (tensor/pool_backward_math.h)
// against the CPU backend's scatter, element by element and bit for bit, at shapes where windows
// overlap, leave gaps, pad, and resample by non-integer ratios both ways.

#include "tensor/pool_backward_math.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "tensor/backend.h"
#include "tensor/creation.h"

namespace diffkd {
namespace {

using pool_math::PlaneShape;
using pool_math::PoolWindow;

// Every element of gx (N, C, H, W) equals at(plane, ih, iw) exactly.
template <typename T>
void expect_every_element(const Tensor& gx, const std::function<T(int64_t, int64_t, int64_t)>& at,
                          const std::string& what) {
  const int64_t planes = gx.size(0) * gx.size(1), H = gx.size(2), W = gx.size(3);
  const T* expected = gx.data<T>();
  int64_t wrong = 0;
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t ih = 0; ih < H; ++ih)
      for (int64_t iw = 0; iw < W; ++iw) {
        const T got = at(pl, ih, iw), want = expected[(pl * H + ih) * W + iw];
        if (std::memcmp(&got, &want, sizeof(T)) != 0 && ++wrong <= 3)
          ADD_FAILURE() << what << ": plane " << pl << " (" << ih << ", " << iw << "): gather " << got << ", scatter "
                        << want;
      }
  EXPECT_EQ(wrong, 0) << what;
}

template <typename T>
void check_pools(const Shape& x_shape, const Pool2dParams& p) {
  const DType dtype = std::is_same_v<T, float> ? DType::F32 : DType::F64;
  Generator gen(3);
  const Tensor x = randn(x_shape, gen, dtype);
  const int64_t H = x_shape[2], W = x_shape[3];
  const int64_t OH = (H + 2 * p.pad_h - p.kernel_h) / p.stride_h + 1;
  const int64_t OW = (W + 2 * p.pad_w - p.kernel_w) / p.stride_w + 1;
  const Shape y_shape{x_shape[0], x_shape[1], OH, OW};
  const Tensor gy = randn(y_shape, gen, dtype), gx = Tensor::empty(x_shape, dtype);
  const PlaneShape s{H, W, OH, OW};
  const PoolWindow w{p.kernel_h, p.kernel_w, p.stride_h, p.stride_w, p.pad_h, p.pad_w};
  const std::string what = "k " + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " s " +
                           std::to_string(p.stride_h) + " p " + std::to_string(p.pad_h);
  Backend& cpu_backend = backend(cpu());
  cpu_backend.avg_pool2d_backward(gy, gx, p);
  expect_every_element<T>(gx, [&](int64_t pl, int64_t ih, int64_t iw) {
    return pool_math::avg_pool_input_grad(gy.data<T>() + pl * OH * OW, s, w, ih, iw);
  }, "avg_pool2d " + what);
  const Tensor y = Tensor::empty(y_shape, dtype), argmax = Tensor::empty(y_shape, DType::I64);
  cpu_backend.max_pool2d(x, y, argmax, p);
  cpu_backend.max_pool2d_backward(gy, argmax, gx, p);
  expect_every_element<T>(gx, [&](int64_t pl, int64_t ih, int64_t iw) {
    return pool_math::max_pool_input_grad(gy.data<T>() + pl * OH * OW, argmax.data<int64_t>() + pl * OH * OW, s, w,
                                          ih, iw);
  }, "max_pool2d " + what);
}

template <typename T>
void check_resampling(const Shape& x_shape, int64_t OH, int64_t OW) {
  const DType dtype = std::is_same_v<T, float> ? DType::F32 : DType::F64;
  Generator gen(5);
  const Shape y_shape{x_shape[0], x_shape[1], OH, OW};
  const Tensor gy = randn(y_shape, gen, dtype), gx = Tensor::empty(x_shape, dtype);
  const PlaneShape s{x_shape[2], x_shape[3], OH, OW};
  const std::string what = std::to_string(s.H) + "x" + std::to_string(s.W) + " -> " + std::to_string(OH) + "x" +
                           std::to_string(OW);
  Backend& cpu_backend = backend(cpu());
  cpu_backend.upsample_nearest_backward(gy, gx);
  expect_every_element<T>(gx, [&](int64_t pl, int64_t ih, int64_t iw) {
    return pool_math::nearest_input_grad(gy.data<T>() + pl * OH * OW, s, ih, iw);
  }, "nearest " + what);
  cpu_backend.resize_bilinear_backward(gy, gx);
  expect_every_element<T>(gx, [&](int64_t pl, int64_t ih, int64_t iw) {
    return pool_math::bilinear_input_grad(gy.data<T>() + pl * OH * OW, s, ih, iw);
  }, "bilinear " + what);
}

TEST(PoolBackwardGather, MatchesTheCpuScatterBitForBit) {
  for (const Pool2dParams& p : {Pool2dParams{2, 2, 2, 2}, Pool2dParams{3, 3, 2, 2, 1, 1},
                                Pool2dParams{3, 2, 1, 1, 1, 0}, Pool2dParams{2, 2, 3, 3},
                                Pool2dParams{5, 5, 1, 1, 2, 2}}) {
    check_pools<float>({2, 3, 11, 9}, p);
    check_pools<double>({1, 2, 8, 10}, p);
  }
  for (const auto& [oh, ow] : std::vector<std::pair<int64_t, int64_t>>{{14, 18}, {5, 4}, {7, 9}, {29, 3}, {1, 1}}) {
    check_resampling<float>({2, 3, 7, 9}, oh, ow);
    check_resampling<double>({1, 2, 7, 9}, oh, ow);
  }
  check_resampling<float>({1, 2, 2, 3}, 17, 40);  // upsampling by 8 and more: the clamped first outputs
}

TEST(PoolBackwardGather, OutputRangesAreExact) {
  // Brute force: the outputs whose window holds input i.
  for (int64_t k : {1, 2, 3, 5})
    for (int64_t s : {1, 2, 3})
      for (int64_t p = 0; p <= k / 2; ++p) {
        const int64_t in = 13, out = (in + 2 * p - k) / s + 1;
        for (int64_t i = 0; i < in; ++i) {
          const pool_math::Range r = pool_math::pool_outputs_reading(i, k, s, p, out);
          for (int64_t o = 0; o < out; ++o) {
            const bool reads = o * s - p <= i && i <= o * s - p + k - 1;
            EXPECT_EQ(reads, o >= r.lo && o < r.hi)
                << "k " << k << " s " << s << " p " << p << " i " << i << " o " << o;
          }
        }
      }
}

}  // namespace
}  // namespace diffkd

// Fused group normalisation on the CPU (Wu & He 2018). For each (n, group) of D = C/G * HW
// elements: mean mu, rstd r = 1/sqrt(var + eps) (biased variance, two passes in f64), and per
// channel y = x * (r w_c) + (b_c - mu r w_c), one multiply-add per element.
//
// Backward, with x^ = (x - mu) r and per-(n, c) sums ds_c = sum_hw gy x, db_c = sum_hw gy:
//   m1 = (1/D) sum_c w_c db_c                      = mean over the group of gy w
//   m2 = (1/D) r sum_c w_c (ds_c - mu db_c)        = mean over the group of gy w x^
//   gx = r w_c gy - r m1 - r^2 m2 (x - mu)
//   gw_c = sum_n r (ds_c - mu db_c),   gb_c = sum_n db_c
// (n, group) pairs run in parallel; gw and gb add over n in order afterwards (deterministic).
//
// group_norm_silu applies y = silu(z), z = x * (r w_c) + shift, to each group while it is in
// cache; its backward recomputes z the same way, so gz = gy * silu'(z) replaces gy above and no
// activation-sized intermediate is stored between forward and backward.

#include <cmath>
#include <cstdint>
#include <vector>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/vector_math.h"
#include "tensor/norm_math.h"

namespace diffkd {

namespace {

// Sums in f64 with 8 interleaved accumulators: vectorisable (a single accumulator would chain
// every add on the previous one) and in a fixed order, hence deterministic.
template <typename T, typename F>
double lane_sum(int64_t n, F term) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) lanes[k] += term(i + k);
  for (; i < n; ++i) lanes[i % 8] += term(i);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

template <bool kSilu>
void group_norm_impl(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps,
                     const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  DK_CHECK(x.is_contiguous() && y.is_contiguous(), "group_norm: kernel needs contiguous tensors");
  if (x.numel() == 0) return;  // an empty batch
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / (n * c), cg = c / groups;
  dispatch_float(x.dtype(), "group_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    T* yp = y.data<T>();
    T* mp = mean.data<T>();
    T* rp = rstd.data<T>();
#pragma omp parallel for schedule(static)
    for (int64_t ng = 0; ng < n * groups; ++ng) {
      const T* xg = xp + ng * cg * hw;
      const int64_t d = cg * hw;
      const double mu = lane_sum<T>(d, [&](int64_t i) { return static_cast<double>(xg[i]); }) / d;
      const double ss = lane_sum<T>(d, [&](int64_t i) {
        const double v = xg[i] - mu;
        return v * v;
      });
      const double r = 1.0 / std::sqrt(ss / d + eps);
      mp[ng] = static_cast<T>(mu);
      rp[ng] = static_cast<T>(r);
      const int64_t g = ng % groups;
      for (int64_t k = 0; k < cg; ++k) {
        const int64_t ch = g * cg + k;
        // From the stored (rounded) statistics, as the fused backward recomputes z: the same
        // bits on both sides, whatever the build contracts (hence the explicit fma).
        const norm_math::Affine f =
            norm_math::group_norm_affine(mp[ng], rp[ng], wp ? wp[ch] : T(1), bp ? bp[ch] : T(0));
        const T a = static_cast<T>(f.a);
        const T shift = static_cast<T>(f.shift);
        const T* in = xg + k * hw;
        T* out = yp + ng * d + k * hw;
        for (int64_t i = 0; i < hw; ++i) out[i] = std::fma(in[i], a, shift);
      }
      // Over the whole group at once: per-row calls would pay Eigen's scalar head and tail on
      // every row (a third of a 7x7 row).
      if constexpr (kSilu) cpu_impl::vector_unary<T>(UnaryOp::Silu, yp + ng * d, yp + ng * d, d);
    }
  });
}

// b is read only when kSilu (to recompute the pre-activation z; rstd already holds eps).
template <bool kSilu>
void group_norm_backward_impl(const Tensor& gy_in, const Tensor& x, const Tensor& w, const Tensor& b,
                              const Tensor& mean, const Tensor& rstd, int64_t groups,
                              const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  if (x.numel() == 0) {  // an empty batch: no gradient for the affine parameters
    if (gw.defined()) cpu_backend().fill(gw, 0.0);
    if (gb.defined()) cpu_backend().fill(gb, 0.0);
    return;
  }
  const Tensor gy = gy_in.is_contiguous() ? gy_in : gy_in.clone_data();
  DK_CHECK(x.is_contiguous(), "group_norm_backward: kernel needs contiguous tensors");
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / (n * c), cg = c / groups;
  dispatch_float(x.dtype(), "group_norm_backward", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xp = x.data<T>();
    const T* gyp = gy.data<T>();
    const T* wp = w.defined() ? w.data<T>() : nullptr;
    const T* bp = b.defined() ? b.data<T>() : nullptr;
    const T* mp = mean.data<T>();
    const T* rp = rstd.data<T>();
    T* gxp = gx.defined() ? gx.data<T>() : nullptr;
    std::vector<double> ds(n * c), db(n * c);  // per (n, c)
#pragma omp parallel
    {
      // kSilu: z and sigmoid(z) of one group, and its gz when gx is not wanted (otherwise gz is
      // written where gx goes and overwritten by it in the second pass). 64-byte aligned: Eigen
      // peels scalar (std::exp) iterations up to the output's alignment, so an address that
      // varied from call to call would vary the last bit.
      constexpr int64_t kLane = 64 / sizeof(T);
      const int64_t padded = (cg * hw + kLane - 1) / kLane * kLane;
      std::vector<T> storage(kSilu ? 3 * padded + kLane : 0);
      T* scratch = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
#pragma omp for schedule(static)
      for (int64_t ng = 0; ng < n * groups; ++ng) {
        const int64_t g = ng % groups, d = cg * hw;
        const double mu = mp[ng], r = rp[ng];
        T* gz = nullptr;  // kSilu: gy * silu'(z), the gradient that reaches the normalisation
        if constexpr (kSilu) {
          T* z = scratch;
          T* sig = z + padded;
          gz = gxp ? gxp + ng * d : sig + padded;
          for (int64_t k = 0; k < cg; ++k) {  // z from the stored mean and rstd
            const int64_t ch = g * cg + k;
            const norm_math::Affine f =
                norm_math::group_norm_affine(mu, r, wp ? wp[ch] : T(1), bp ? bp[ch] : T(0));
            const T a = static_cast<T>(f.a), shift = static_cast<T>(f.shift);
            const T* xs = xp + ng * d + k * hw;
            for (int64_t i = 0; i < hw; ++i) z[k * hw + i] = std::fma(xs[i], a, shift);
          }
          cpu_impl::vector_unary<T>(UnaryOp::Sigmoid, z, sig, d);
          const T* gyg = gyp + ng * d;
          // silu'(z) = s (1 + z (1 - s)), tensor/scalar_ops.h
          for (int64_t i = 0; i < d; ++i) gz[i] = gyg[i] * sig[i] * (T(1) + z[i] * (T(1) - sig[i]));
        }
        double m1 = 0, m2 = 0;
        for (int64_t k = 0; k < cg; ++k) {
          const int64_t ch = g * cg + k;
          const T* xs = xp + ng * d + k * hw;
          const T* gs = kSilu ? gz + k * hw : gyp + ng * d + k * hw;
          const double sx =
              lane_sum<T>(hw, [&](int64_t i) { return static_cast<double>(gs[i]) * xs[i]; });
          const double sg = lane_sum<T>(hw, [&](int64_t i) { return static_cast<double>(gs[i]); });
          ds[ng * cg + k] = sx;  // ng * cg + k == n_index * c + ch
          db[ng * cg + k] = sg;
          const double wc = wp ? wp[ch] : 1.0;
          m1 += wc * sg;
          m2 += wc * (sx - mu * sg);
        }
        if (gxp == nullptr) continue;
        const norm_math::BackwardLine line =
            norm_math::group_norm_backward_line(mu, r, m1, m2, static_cast<double>(d));
        const T shift = static_cast<T>(line.shift);
        const T slope = static_cast<T>(line.slope);
        for (int64_t k = 0; k < cg; ++k) {
          const int64_t ch = g * cg + k;
          const T a = static_cast<T>(r * (wp ? wp[ch] : T(1)));
          const T* xs = xp + ng * d + k * hw;
          T* out = gxp + ng * d + k * hw;
          const T* gs = kSilu ? out : gyp + ng * d + k * hw;  // gz is in place when kSilu
          for (int64_t i = 0; i < hw; ++i) out[i] = a * gs[i] + slope * xs[i] + shift;
        }
      }
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      double sw = 0, sb = 0;
      for (int64_t i = 0; i < n; ++i) {
        const int64_t ng = i * groups + ch / cg;
        sw += rp[ng] * (ds[i * c + ch] - mp[ng] * db[i * c + ch]);
        sb += db[i * c + ch];
      }
      if (gw.defined()) gw.data<T>()[ch] = static_cast<T>(sw);
      if (gb.defined()) gb.data<T>()[ch] = static_cast<T>(sb);
    }
  });
}

}  // namespace

void CpuBackend::group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                            double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  group_norm_impl<false>(x, w, b, groups, eps, y, mean, rstd);
}

void CpuBackend::group_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& w,
                                     const Tensor& mean, const Tensor& rstd, int64_t groups,
                                     const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  group_norm_backward_impl<false>(gy, x, w, Tensor(), mean, rstd, groups, gx, gw, gb);
}

void CpuBackend::group_norm_silu(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                                 double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  group_norm_impl<true>(x, w, b, groups, eps, y, mean, rstd);
}

void CpuBackend::group_norm_silu_backward(const Tensor& gy, const Tensor& x, const Tensor& w,
                                          const Tensor& b, const Tensor& mean, const Tensor& rstd,
                                          int64_t groups, double /*eps: rstd holds it*/,
                                          const Tensor& gx, const Tensor& gw, const Tensor& gb) {
  group_norm_backward_impl<true>(gy, x, w, b, mean, rstd, groups, gx, gw, gb);
}

}  // namespace diffkd

#pragma once
// Per-element optimiser updates, shared by every backend (DK_HOST_DEVICE).
//
// Adam (Kingma & Ba 2015, Algorithm 1) in the exact order of operations of PyTorch 1.13's
// single-tensor implementation, so our parameters track torch.optim.Adam/AdamW to f32 rounding:
//   g <- g + wd * p               (Adam's L2 weight decay), or p <- p * (1 - lr * wd)  (AdamW)
//   m <- beta1 m + (1 - beta1) g
//   v <- beta2 v + (1 - beta2) g^2
//   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"

namespace diffkd {

struct AdamHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // AdamW
  int64_t step = 1;                     // 1 on the first update (bias correction)
};

// The scalars of one Adam step, computed once per tensor in double.
struct AdamStepScalars {
  double step_size;             // lr / (1 - beta1^t)
  double bias_correction2_sqrt; // sqrt(1 - beta2^t)
  double decay_factor;          // 1 - lr * wd for AdamW, else 1
  double l2;                    // wd for Adam's L2 decay, else 0
};

inline AdamStepScalars adam_step_scalars(const AdamHyper& h) {
  const double t = static_cast<double>(h.step);
  AdamStepScalars s;
  s.step_size = h.lr / (1.0 - std::pow(h.beta1, t));
  s.bias_correction2_sqrt = std::sqrt(1.0 - std::pow(h.beta2, t));
  s.decay_factor = h.decoupled_weight_decay ? 1.0 - h.lr * h.weight_decay : 1.0;
  s.l2 = h.decoupled_weight_decay ? 0.0 : h.weight_decay;
  return s;
}

template <typename T>
DK_HOST_DEVICE inline void adam_element(T& p, T g, T& m, T& v, T beta1, T beta2, T eps,
                                        T step_size, T bias_correction2_sqrt, T decay_factor,
                                        T l2) {
  if (l2 != T(0)) g = g + l2 * p;
  if (decay_factor != T(1)) p = p * decay_factor;
  m = m * beta1 + (T(1) - beta1) * g;
  v = v * beta2 + (T(1) - beta2) * g * g;
  const T denom = std::sqrt(v) / bias_correction2_sqrt + eps;
  p = p - step_size * (m / denom);
}

// y <- a * x + b * y: EMA of weights (a = 1 - decay, b = decay) and SGD's momentum buffer.
template <typename T>
DK_HOST_DEVICE inline T axpby_element(T a, T x, T b, T y) {
  return a * x + b * y;
}

}  // namespace diffkd

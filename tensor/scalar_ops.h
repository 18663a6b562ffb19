#pragma once
// Per-element math of the elementwise kernels, one functor per op, usable on host and device:
// the CPU backend runs them in its strided loops and the CUDA backend in its kernels, so a CPU
// test of these functors covers the arithmetic of both.

#include <cmath>

#include "tensor/philox.h"  // DK_HOST_DEVICE

namespace diffkd::scalar {

// --- unary: f(x; a, b) ------------------------------------------------------------------------
struct Neg { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return -x; } };
struct Exp { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return std::exp(x); } };
struct Log { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return std::log(x); } };
struct Sqrt { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return std::sqrt(x); } };
struct Rsqrt {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return T(1) / std::sqrt(x); }
};
struct Abs { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return std::abs(x); } };
struct Sign {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const {
    return static_cast<T>((x > T(0)) - (x < T(0)));
  }
};
struct Square { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return x * x; } };
struct Reciprocal {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return T(1) / x; }
};
struct Relu {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return x > T(0) ? x : T(0); }
};
struct Sigmoid {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const {
    return T(1) / (T(1) + std::exp(-x));
  }
};
struct Tanh { template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return std::tanh(x); } };
// silu(x) = x * sigmoid(x)
struct Silu {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const {
    return x / (T(1) + std::exp(-x));
  }
};
// softplus(x) = log(1 + e^x), written to stay finite for large |x|: max(x, 0) + log1p(e^-|x|).
struct Softplus {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const {
    return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::abs(x)));
  }
};
struct LeakyRelu {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T slope, T) const {
    return x > T(0) ? x : slope * x;
  }
};
struct Affine {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T a, T b) const { return a * x + b; }
};
struct Pow {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T p, T) const {
    if (p == T(2)) return x * x;
    if (p == T(1)) return x;
    return std::pow(x, p);
  }
};
struct Clamp {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T lo, T hi) const {
    return x < lo ? lo : (x > hi ? hi : x);
  }
};
struct InRange {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T lo, T hi) const {
    return (x >= lo && x <= hi) ? T(1) : T(0);
  }
};
struct Positive {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T, T) const { return x > T(0) ? T(1) : T(0); }
};

// --- binary: f(a, b) --------------------------------------------------------------------------
struct Add { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a + b; } };
struct Sub { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a - b; } };
struct Mul { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a * b; } };
struct Div { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a / b; } };
struct PowT {
  template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return std::pow(a, b); }
};
struct Maximum {
  template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a > b ? a : b; }
};
struct Minimum {
  template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a < b ? a : b; }
};
struct Eq { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a == b ? T(1) : T(0); } };
struct Lt { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a < b ? T(1) : T(0); } };
struct Gt { template <typename T> DK_HOST_DEVICE T operator()(T a, T b) const { return a > b ? T(1) : T(0); } };

// silu'(x) = s (1 + x (1 - s)), s = sigmoid(x); applied to the upstream gradient g.
struct SiluBackward {
  template <typename T> DK_HOST_DEVICE T operator()(T x, T g) const {
    const T s = T(1) / (T(1) + std::exp(-x));
    return g * s * (T(1) + x * (T(1) - s));
  }
};

// --- random ----------------------------------------------------------------------------------
// a + (b - a) * u for u in (0, 1), rounded to T and kept inside [a, b): in f32 a u within 2^-25 of
// 1 would otherwise round to b itself.
template <typename T>
DK_HOST_DEVICE T uniform_between(double u, double a, double b) {
  const T value = static_cast<T>(a + (b - a) * u);
  const T upper = static_cast<T>(b);
  return (b > a && !(value < upper)) ? std::nextafter(upper, static_cast<T>(a)) : value;
}

}  // namespace diffkd::scalar

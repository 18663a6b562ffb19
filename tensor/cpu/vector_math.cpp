#include "tensor/cpu/vector_math.h"

#include <Eigen/Core>

namespace diffkd::cpu_impl {

template <typename T>
bool vector_unary(UnaryOp op, const T* in_ptr, T* out_ptr, int64_t n) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const Array> x(in_ptr, n);
  Eigen::Map<Array> y(out_ptr, n);
  switch (op) {
    case UnaryOp::Exp: y = x.exp(); return true;
    case UnaryOp::Log: y = x.log(); return true;
    case UnaryOp::Tanh: y = x.tanh(); return true;
    case UnaryOp::Sigmoid: y = T(1) / (T(1) + (-x).exp()); return true;
    case UnaryOp::Silu: y = x / (T(1) + (-x).exp()); return true;
    default: return false;
  }
}

template <typename T>
bool vector_binary(BinaryOp op, const T* a_ptr, const T* b_ptr, T* out_ptr, int64_t n) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Eigen::Map<const Array> a(a_ptr, n), b(b_ptr, n);
  Eigen::Map<Array> y(out_ptr, n);
  switch (op) {
    case BinaryOp::SiluBackward: {  // a = x, b = g: g * s * (1 + x (1 - s))
      const Array s = T(1) / (T(1) + (-a).exp());
      y = b * s * (T(1) + a * (T(1) - s));
      return true;
    }
    default: return false;
  }
}

template <typename T>
void softmax_rows(const T* x_ptr, T* y_ptr, int64_t rows, int64_t len, bool log) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
#pragma omp parallel for schedule(static) if (rows * len > 32768)
  for (int64_t r = 0; r < rows; ++r) {
    Eigen::Map<const Array> x(x_ptr + r * len, len);
    Eigen::Map<Array> y(y_ptr + r * len, len);
    const T m = x.maxCoeff();
    y = (x - m).exp();
    // The normaliser in f64 for accuracy; row order fixed, so deterministic.
    double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i = 0; i < len; ++i) lanes[i % 8] += y[i];
    const double s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
                     ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    if (log) y = x - (m + static_cast<T>(std::log(s)));
    else y *= static_cast<T>(1.0 / s);
  }
}

template bool vector_unary<float>(UnaryOp, const float*, float*, int64_t);
template bool vector_unary<double>(UnaryOp, const double*, double*, int64_t);
template bool vector_binary<float>(BinaryOp, const float*, const float*, float*, int64_t);
template bool vector_binary<double>(BinaryOp, const double*, const double*, double*, int64_t);
template void softmax_rows<float>(const float*, float*, int64_t, int64_t, bool);
template void softmax_rows<double>(const double*, double*, int64_t, int64_t, bool);

}  // namespace diffkd::cpu_impl

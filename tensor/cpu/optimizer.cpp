// Optimiser updates on the CPU: flat OpenMP loops over contiguous parameters, the per-element
// math from tensor/optimizer_math.h. Elementwise and independent, so any thread count gives
// the same bits.

#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {

void check_operand(const char* op, const Tensor& ref, const Tensor& t, const char* what) {
  DK_CHECK(t.defined(), op, ": ", what, " is undefined");
  DK_CHECK(t.shape() == ref.shape(), op, ": ", what, " has shape ", shape_str(t.shape()),
           ", expected ", shape_str(ref.shape()));
  DK_CHECK(t.dtype() == ref.dtype(), op, ": ", what, " is ", dtype_name(t.dtype()), ", expected ",
           dtype_name(ref.dtype()));
  DK_CHECK(t.is_contiguous(), op, ": ", what, " ", shape_str(t.shape()), " must be contiguous");
}

}  // namespace

void CpuBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                             const Tensor& exp_avg_sq, const AdamHyper& h) {
  check_operand("adam_update", param, param, "param");
  check_operand("adam_update", param, grad, "grad");
  check_operand("adam_update", param, exp_avg, "exp_avg");
  check_operand("adam_update", param, exp_avg_sq, "exp_avg_sq");
  const AdamStepScalars s = adam_step_scalars(h);
  dispatch_float(param.dtype(), "adam_update", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = param.data<T>();
    const T* g = grad.data<T>();
    T* m = exp_avg.data<T>();
    T* v = exp_avg_sq.data<T>();
    const int64_t n = param.numel();
    const T b1 = T(h.beta1), b2 = T(h.beta2), eps = T(h.eps), step_size = T(s.step_size),
            bc2 = T(s.bias_correction2_sqrt), decay = T(s.decay_factor), l2 = T(s.l2);
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i)
      adam_element<T>(p[i], g[i], m[i], v[i], b1, b2, eps, step_size, bc2, decay, l2);
  });
}

void CpuBackend::axpby(double a, const Tensor& x, double b, const Tensor& y) {
  check_operand("axpby", y, y, "y");
  check_operand("axpby", y, x, "x");
  dispatch_float(y.dtype(), "axpby", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* xs = x.data<T>();
    T* ys = y.data<T>();
    const int64_t n = y.numel();
    const T ta = T(a), tb = T(b);
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (int64_t i = 0; i < n; ++i) ys[i] = axpby_element<T>(ta, xs[i], tb, ys[i]);
  });
}

}  // namespace diffkd

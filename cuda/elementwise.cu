// Elementwise CUDA kernels: device-to-device copy (any strides, converting dtype), fill, arange,
// Philox random draws, unary and broadcast binary maps, where, and the optimiser updates. One
// grid-stride kernel shape for all; the per-element functors are the CPU backend's
// (tensor/scalar_ops.h, tensor/philox.h, tensor/optimizer_math.h).

#include "cuda/cuda_backend.h"
#include "cuda/launch.cuh"
#include "cuda/runtime.h"
#include "cuda/strided.cuh"
#include "tensor/optimizer_math.h"
#include "tensor/philox.h"
#include "tensor/scalar_ops.h"

namespace diffkd::cuda {

namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& out) {
  DK_CHECK(a.shape() == out.shape(), op, ": operand shape ", shape_str(a.shape()), " differs from output shape ",
           shape_str(out.shape()));
}

template <typename D, typename S>
__global__ void copy_kernel(StridedIndex<2> index, int64_t n, D* dst, const S* src) {
  DK_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    index.offsets(i, off);
    dst[off[0]] = static_cast<D>(src[off[1]]);
  }
}

template <typename T>
__global__ void fill_kernel(StridedIndex<1> index, int64_t n, T* dst, T value) {
  DK_GRID_STRIDE_LOOP(i, n) {
    int64_t off[1];
    index.offsets(i, off);
    dst[off[0]] = value;
  }
}

template <typename T>
__global__ void arange_kernel(int64_t n, T* dst, double start, double step) {
  DK_GRID_STRIDE_LOOP(i, n) dst[i] = static_cast<T>(start + step * static_cast<double>(i));
}

// One thread per Philox block: four consecutive elements, exactly as the CPU backend draws them.
template <typename T>
__global__ void random_kernel(int64_t n, T* dst, RandomKind kind, uint64_t seed, uint64_t offset, double a, double b) {
  DK_GRID_STRIDE_LOOP(j, (n + 3) / 4) {
    double v[4];
    T r[4];
    if (kind == RandomKind::Normal) {
      philox::normal_block(seed, offset, j, v);
      for (int lane = 0; lane < 4; ++lane) r[lane] = static_cast<T>(a + b * v[lane]);
    } else {
      philox::uniform_block(seed, offset, j, v);
      for (int lane = 0; lane < 4; ++lane)
        r[lane] = kind == RandomKind::Uniform ? scalar::uniform_between<T>(v[lane], a, b)
                                              : static_cast<T>(v[lane] < a ? 1 : 0);
    }
    const int64_t first = 4 * j;
    for (int64_t lane = 0; lane < 4 && first + lane < n; ++lane) dst[first + lane] = r[lane];
  }
}

template <typename T, typename F>
__global__ void unary_kernel(StridedIndex<2> index, int64_t n, T* out, const T* x, F f, T a, T b) {
  DK_GRID_STRIDE_LOOP(i, n) {
    int64_t off[2];
    index.offsets(i, off);
    out[off[0]] = f(x[off[1]], a, b);
  }
}

template <typename T, typename F>
__global__ void binary_kernel(StridedIndex<3> index, int64_t n, T* out, const T* a, const T* b, F f) {
  DK_GRID_STRIDE_LOOP(i, n) {
    int64_t off[3];
    index.offsets(i, off);
    out[off[0]] = f(a[off[1]], b[off[2]]);
  }
}

template <typename T>
__global__ void where_kernel(StridedIndex<4> index, int64_t n, T* out, const T* cond, const T* a, const T* b) {
  DK_GRID_STRIDE_LOOP(i, n) {
    int64_t off[4];
    index.offsets(i, off);
    out[off[0]] = cond[off[1]] != T(0) ? a[off[2]] : b[off[3]];
  }
}

template <typename T>
__global__ void adam_kernel(int64_t n, T* p, const T* g, T* m, T* v, T b1, T b2, T eps, T step_size, T bc2, T decay,
                            T l2) {
  DK_GRID_STRIDE_LOOP(i, n) adam_element<T>(p[i], g[i], m[i], v[i], b1, b2, eps, step_size, bc2, decay, l2);
}

template <typename T>
__global__ void axpby_kernel(int64_t n, T a, const T* x, T b, T* y) {
  DK_GRID_STRIDE_LOOP(i, n) y[i] = axpby_element<T>(a, x[i], b, y[i]);
}

template <typename T, typename F>
void launch_unary(const Tensor& x, const Tensor& out, F f, T a, T b) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto index = strided_index<2>("unary", out.shape(), {&out.strides(), &x.strides()});
  unary_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(index, n, out.data<T>(), x.data<T>(), f, a, b);
  DK_CUDA_CHECK_LAUNCH();
}

template <typename T, typename F>
void launch_binary(const Tensor& a, const Tensor& b, const Tensor& out, F f) {
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto index = strided_index<3>("binary", out.shape(), {&out.strides(), &a.strides(), &b.strides()});
  binary_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(index, n, out.data<T>(), a.data<T>(), b.data<T>(), f);
  DK_CUDA_CHECK_LAUNCH();
}

void check_operand(const char* op, const Tensor& ref, const Tensor& t, const char* name) {
  DK_CHECK(t.is_contiguous() && t.shape() == ref.shape() && t.dtype() == ref.dtype() && t.device() == ref.device(), op,
           ": ", name, " must be contiguous with shape ", shape_str(ref.shape()), ", ", dtype_name(ref.dtype()), " on ",
           ref.device().str(), " (got ", shape_str(t.shape()), ", ", dtype_name(t.dtype()), " on ", t.device().str(), ")");
}

}  // namespace

Tensor contiguous_on_device(const Tensor& t) {
  if (t.is_contiguous()) return t;
  Tensor c = Tensor::empty(t.shape(), t.dtype(), t.device());
  copy_on_device(t, c);
  return c;
}

// Both on this GPU; cuda_backend.cpp routes host<->device copies through cudaMemcpy first.
void copy_on_device(const Tensor& src, const Tensor& dst) {
  check_same_shape("copy", src, dst);
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto index = strided_index<2>("copy", dst.shape(), {&dst.strides(), &src.strides()});
  dispatch_all(dst.dtype(), "copy", [&](auto dtag) {
    using D = typename decltype(dtag)::type;
    dispatch_all(src.dtype(), "copy", [&](auto stag) {
      using S = typename decltype(stag)::type;
      copy_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(index, n, dst.data<D>(), src.data<S>());
      DK_CUDA_CHECK_LAUNCH();
    });
  });
}

void CudaBackend::fill(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const auto index = strided_index<1>("fill", dst.shape(), {&dst.strides()});
  dispatch_all(dst.dtype(), "fill", [&](auto tag) {
    using T = typename decltype(tag)::type;
    fill_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(index, n, dst.data<T>(), static_cast<T>(value));
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::arange(const Tensor& dst, double start, double step) {
  DK_CHECK(dst.is_contiguous(), "arange: output must be contiguous");
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_all(dst.dtype(), "arange", [&](auto tag) {
    using T = typename decltype(tag)::type;
    arange_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(n, dst.data<T>(), start, step);
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::random(const Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a, double b) {
  DK_CHECK(dst.is_contiguous(), "random: output must be contiguous");
  const int64_t n = dst.numel();
  if (n == 0) return;
  dispatch_float(dst.dtype(), "random", [&](auto tag) {
    using T = typename decltype(tag)::type;
    random_kernel<<<blocks_for((n + 3) / 4, kThreads), kThreads, 0, stream()>>>(n, dst.data<T>(), kind, seed, offset, a, b);
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  check_same_shape("unary", x, out);
  dispatch_float(out.dtype(), "unary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T ta = static_cast<T>(a), tb = static_cast<T>(b);
    switch (op) {
      case UnaryOp::Neg: return launch_unary<T>(x, out, scalar::Neg{}, ta, tb);
      case UnaryOp::Exp: return launch_unary<T>(x, out, scalar::Exp{}, ta, tb);
      case UnaryOp::Log: return launch_unary<T>(x, out, scalar::Log{}, ta, tb);
      case UnaryOp::Sqrt: return launch_unary<T>(x, out, scalar::Sqrt{}, ta, tb);
      case UnaryOp::Rsqrt: return launch_unary<T>(x, out, scalar::Rsqrt{}, ta, tb);
      case UnaryOp::Abs: return launch_unary<T>(x, out, scalar::Abs{}, ta, tb);
      case UnaryOp::Sign: return launch_unary<T>(x, out, scalar::Sign{}, ta, tb);
      case UnaryOp::Square: return launch_unary<T>(x, out, scalar::Square{}, ta, tb);
      case UnaryOp::Reciprocal: return launch_unary<T>(x, out, scalar::Reciprocal{}, ta, tb);
      case UnaryOp::Relu: return launch_unary<T>(x, out, scalar::Relu{}, ta, tb);
      case UnaryOp::Sigmoid: return launch_unary<T>(x, out, scalar::Sigmoid{}, ta, tb);
      case UnaryOp::Tanh: return launch_unary<T>(x, out, scalar::Tanh{}, ta, tb);
      case UnaryOp::Silu: return launch_unary<T>(x, out, scalar::Silu{}, ta, tb);
      case UnaryOp::Softplus: return launch_unary<T>(x, out, scalar::Softplus{}, ta, tb);
      case UnaryOp::LeakyRelu: return launch_unary<T>(x, out, scalar::LeakyRelu{}, ta, tb);
      case UnaryOp::Affine: return launch_unary<T>(x, out, scalar::Affine{}, ta, tb);
      case UnaryOp::Pow: return launch_unary<T>(x, out, scalar::Pow{}, ta, tb);
      case UnaryOp::Clamp: return launch_unary<T>(x, out, scalar::Clamp{}, ta, tb);
      case UnaryOp::InRange: return launch_unary<T>(x, out, scalar::InRange{}, ta, tb);
      case UnaryOp::Positive: return launch_unary<T>(x, out, scalar::Positive{}, ta, tb);
    }
  });
}

void CudaBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_shape("binary", a, out);
  check_same_shape("binary", b, out);
  dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using T = typename decltype(tag)::type;
    switch (op) {
      case BinaryOp::Add: return launch_binary<T>(a, b, out, scalar::Add{});
      case BinaryOp::Sub: return launch_binary<T>(a, b, out, scalar::Sub{});
      case BinaryOp::Mul: return launch_binary<T>(a, b, out, scalar::Mul{});
      case BinaryOp::Div: return launch_binary<T>(a, b, out, scalar::Div{});
      case BinaryOp::Pow: return launch_binary<T>(a, b, out, scalar::PowT{});
      case BinaryOp::Maximum: return launch_binary<T>(a, b, out, scalar::Maximum{});
      case BinaryOp::Minimum: return launch_binary<T>(a, b, out, scalar::Minimum{});
      case BinaryOp::Eq: return launch_binary<T>(a, b, out, scalar::Eq{});
      case BinaryOp::Lt: return launch_binary<T>(a, b, out, scalar::Lt{});
      case BinaryOp::Gt: return launch_binary<T>(a, b, out, scalar::Gt{});
      case BinaryOp::SiluBackward: return launch_binary<T>(a, b, out, scalar::SiluBackward{});
    }
  });
}

void CudaBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_shape("where", cond, out);
  DK_CHECK(cond.dtype() == out.dtype(), "where: condition is ", dtype_name(cond.dtype()), ", expected ",
           dtype_name(out.dtype()), " (a 0/1 mask)");
  const int64_t n = out.numel();
  if (n == 0) return;
  const auto index =
      strided_index<4>("where", out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()});
  dispatch_float(out.dtype(), "where", [&](auto tag) {
    using T = typename decltype(tag)::type;
    where_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(index, n, out.data<T>(), cond.data<T>(),
                                                                     a.data<T>(), b.data<T>());
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                              const AdamHyper& h) {
  check_operand("adam_update", param, grad, "grad");
  check_operand("adam_update", param, exp_avg, "exp_avg");
  check_operand("adam_update", param, exp_avg_sq, "exp_avg_sq");
  DK_CHECK(param.is_contiguous(), "adam_update: param must be contiguous");
  const AdamStepScalars s = adam_step_scalars(h);
  const int64_t n = param.numel();
  if (n == 0) return;
  dispatch_float(param.dtype(), "adam_update", [&](auto tag) {
    using T = typename decltype(tag)::type;
    adam_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(
        n, param.data<T>(), grad.data<T>(), exp_avg.data<T>(), exp_avg_sq.data<T>(), T(h.beta1), T(h.beta2), T(h.eps),
        T(s.step_size), T(s.bias_correction2_sqrt), T(s.decay_factor), T(s.l2));
    DK_CUDA_CHECK_LAUNCH();
  });
}

void CudaBackend::axpby(double a, const Tensor& x, double b, const Tensor& y) {
  check_operand("axpby", y, x, "x");
  DK_CHECK(y.is_contiguous(), "axpby: y must be contiguous");
  const int64_t n = y.numel();
  if (n == 0) return;
  dispatch_float(y.dtype(), "axpby", [&](auto tag) {
    using T = typename decltype(tag)::type;
    axpby_kernel<<<blocks_for(n, kThreads), kThreads, 0, stream()>>>(n, T(a), x.data<T>(), T(b), y.data<T>());
    DK_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace diffkd::cuda

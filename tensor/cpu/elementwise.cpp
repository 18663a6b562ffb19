// Elementwise CPU kernels: copy, fill, arange, random draws, unary and broadcast binary maps.
// All run through for_each_run (strided_loop.h); the inner lambdas have a contiguous fast path
// that the compiler vectorises and a strided fallback.

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/strided_loop.h"
#include "tensor/cpu/vector_math.h"
#include "tensor/philox.h"
#include "tensor/scalar_ops.h"

namespace diffkd {

using cpu_impl::for_each_run;

namespace {

void check_same_shape(const char* op, const Tensor& a, const Tensor& out) {
  DK_CHECK(a.shape() == out.shape(), op, ": operand shape ", shape_str(a.shape()),
           " differs from output shape ", shape_str(out.shape()));
}

template <typename T, typename F>
void unary_loop(const Tensor& x, const Tensor& out, F f, T a, T b) {
  for_each_run<T, 2>(out.shape(), {&out.strides(), &x.strides()}, {out.data<T>(), x.data<T>()},
                     [&](const std::array<T*, 2>& p, const std::array<int64_t, 2>& s, int64_t n) {
                       T* o = p[0];
                       const T* in = p[1];
                       if (s[0] == 1 && s[1] == 1) {
                         for (int64_t i = 0; i < n; ++i) o[i] = f(in[i], a, b);
                       } else {
                         for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(in[i * s[1]], a, b);
                       }
                     });
}

template <typename T, typename F>
void binary_loop(const Tensor& x, const Tensor& y, const Tensor& out, F f) {
  for_each_run<T, 3>(
      out.shape(), {&out.strides(), &x.strides(), &y.strides()},
      {out.data<T>(), x.data<T>(), y.data<T>()},
      [&](const std::array<T*, 3>& p, const std::array<int64_t, 3>& s, int64_t n) {
        T* o = p[0];
        const T* a = p[1];
        const T* b = p[2];
        if (s[0] == 1 && s[1] == 1 && s[2] == 1) {
          for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], b[i]);
        } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {  // tensor op broadcast scalar
          const T bv = *b;
          for (int64_t i = 0; i < n; ++i) o[i] = f(a[i], bv);
        } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {
          const T av = *a;
          for (int64_t i = 0; i < n; ++i) o[i] = f(av, b[i]);
        } else {
          for (int64_t i = 0; i < n; ++i) o[i * s[0]] = f(a[i * s[1]], b[i * s[2]]);
        }
      });
}

}  // namespace

void CpuBackend::copy(const Tensor& src, const Tensor& dst) {
  check_same_shape("copy", src, dst);
  // Byte strides let one loop serve every (src dtype, dst dtype) pair.
  const int64_t is = itemsize(src.dtype()), id = itemsize(dst.dtype());
  Shape sb = src.strides(), db = dst.strides();
  for (auto& s : sb) s *= is;
  for (auto& s : db) s *= id;
  char* d0 = static_cast<char*>(dst.raw_data());
  char* s0 = static_cast<char*>(src.raw_data());
  dispatch_all(dst.dtype(), "copy", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using dst_t = scalar_t;
    dispatch_all(src.dtype(), "copy", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
      using src_t = scalar_t;
      for_each_run<char, 2>(dst.shape(), {&db, &sb}, {d0, s0},
                            [&](const std::array<char*, 2>& p, const std::array<int64_t, 2>& s,
                                int64_t n) {
                              if (s[0] == id && s[1] == is) {
                                dst_t* o = reinterpret_cast<dst_t*>(p[0]);
                                const src_t* in = reinterpret_cast<const src_t*>(p[1]);
                                for (int64_t i = 0; i < n; ++i) o[i] = static_cast<dst_t>(in[i]);
                              } else {
                                for (int64_t i = 0; i < n; ++i)
                                  *reinterpret_cast<dst_t*>(p[0] + i * s[0]) = static_cast<dst_t>(
                                      *reinterpret_cast<const src_t*>(p[1] + i * s[1]));
                              }
                            });
    });
  });
}

void CpuBackend::fill(const Tensor& dst, double value) {
  dispatch_all(dst.dtype(), "fill", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    const scalar_t v = static_cast<scalar_t>(value);
    for_each_run<scalar_t, 1>(dst.shape(), {&dst.strides()}, {dst.data<scalar_t>()},
                              [&](const std::array<scalar_t*, 1>& p,
                                  const std::array<int64_t, 1>& s, int64_t n) {
                                for (int64_t i = 0; i < n; ++i) p[0][i * s[0]] = v;
                              });
  });
}

void CpuBackend::arange(const Tensor& dst, double start, double step) {
  DK_CHECK(dst.is_contiguous(), "arange: output must be contiguous");
  dispatch_all(dst.dtype(), "arange", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    scalar_t* o = dst.data<scalar_t>();
    for (int64_t i = 0; i < dst.numel(); ++i) o[i] = static_cast<scalar_t>(start + step * i);
  });
}

void CpuBackend::random(const Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset,
                        double a, double b) {
  DK_CHECK(dst.is_contiguous(), "random: output must be contiguous");
  dispatch_float(dst.dtype(), "random", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    scalar_t* o = dst.data<scalar_t>();
    const int64_t n = dst.numel();
    // Element i is a pure function of (seed, offset, i): any split across threads is exact.
    // Whole Philox blocks (four elements) at a time; the last block may be partial.
    const int64_t blocks = static_cast<int64_t>(philox::blocks_for(static_cast<uint64_t>(n)));
#pragma omp parallel for schedule(static) if (n > 4096)
    for (int64_t j = 0; j < blocks; ++j) {
      double v[4];
      scalar_t r[4];
      if (kind == RandomKind::Normal) {
        philox::normal_block(seed, offset, j, v);
        for (int lane = 0; lane < 4; ++lane) r[lane] = static_cast<scalar_t>(a + b * v[lane]);
      } else {
        philox::uniform_block(seed, offset, j, v);
        for (int lane = 0; lane < 4; ++lane)
          r[lane] = kind == RandomKind::Uniform ? scalar::uniform_between<scalar_t>(v[lane], a, b)
                                                : static_cast<scalar_t>(v[lane] < a ? 1 : 0);
      }
      const int64_t first = 4 * j, count = std::min<int64_t>(4, n - first);
      for (int64_t lane = 0; lane < count; ++lane) o[first + lane] = r[lane];
    }
  });
}

void CpuBackend::unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) {
  check_same_shape("unary", x, out);
  if (x.is_contiguous() && out.is_contiguous() && x.dtype() == out.dtype()) {
    // Transcendentals over contiguous memory: Eigen's vectorised versions, in parallel chunks.
    const bool done = dispatch_float(out.dtype(), "unary", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* in = x.data<T>();
      T* o = out.data<T>();
      const int64_t n = x.numel();
      bool handled = true;
      constexpr int64_t kChunk = 16384;
#pragma omp parallel for schedule(static) if (n > 2 * kChunk) reduction(&& : handled)
      for (int64_t start = 0; start < n; start += kChunk)
        handled = handled && cpu_impl::vector_unary<T>(op, in + start, o + start,
                                                       std::min(kChunk, n - start));
      return handled;
    });
    if (done) return;
  }
  dispatch_float(out.dtype(), "unary", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T ta = static_cast<T>(a), tb = static_cast<T>(b);
    switch (op) {
      case UnaryOp::Neg: return unary_loop<T>(x, out, scalar::Neg{}, ta, tb);
      case UnaryOp::Exp: return unary_loop<T>(x, out, scalar::Exp{}, ta, tb);
      case UnaryOp::Log: return unary_loop<T>(x, out, scalar::Log{}, ta, tb);
      case UnaryOp::Sqrt: return unary_loop<T>(x, out, scalar::Sqrt{}, ta, tb);
      case UnaryOp::Rsqrt: return unary_loop<T>(x, out, scalar::Rsqrt{}, ta, tb);
      case UnaryOp::Abs: return unary_loop<T>(x, out, scalar::Abs{}, ta, tb);
      case UnaryOp::Sign: return unary_loop<T>(x, out, scalar::Sign{}, ta, tb);
      case UnaryOp::Square: return unary_loop<T>(x, out, scalar::Square{}, ta, tb);
      case UnaryOp::Reciprocal: return unary_loop<T>(x, out, scalar::Reciprocal{}, ta, tb);
      case UnaryOp::Relu: return unary_loop<T>(x, out, scalar::Relu{}, ta, tb);
      case UnaryOp::Sigmoid: return unary_loop<T>(x, out, scalar::Sigmoid{}, ta, tb);
      case UnaryOp::Tanh: return unary_loop<T>(x, out, scalar::Tanh{}, ta, tb);
      case UnaryOp::Silu: return unary_loop<T>(x, out, scalar::Silu{}, ta, tb);
      case UnaryOp::Softplus: return unary_loop<T>(x, out, scalar::Softplus{}, ta, tb);
      case UnaryOp::LeakyRelu: return unary_loop<T>(x, out, scalar::LeakyRelu{}, ta, tb);
      case UnaryOp::Affine: return unary_loop<T>(x, out, scalar::Affine{}, ta, tb);
      case UnaryOp::Pow: return unary_loop<T>(x, out, scalar::Pow{}, ta, tb);
      case UnaryOp::Clamp: return unary_loop<T>(x, out, scalar::Clamp{}, ta, tb);
      case UnaryOp::InRange: return unary_loop<T>(x, out, scalar::InRange{}, ta, tb);
      case UnaryOp::Positive: return unary_loop<T>(x, out, scalar::Positive{}, ta, tb);
    }
  });
}

void CpuBackend::binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_shape("binary", a, out);
  check_same_shape("binary", b, out);
  if (op == BinaryOp::SiluBackward && a.is_contiguous() && b.is_contiguous() &&
      out.is_contiguous()) {
    // Transcendental: Eigen's vectorised exp, in parallel chunks.
    dispatch_float(out.dtype(), "binary", [&](auto tag) {
      using T = typename decltype(tag)::type;
      const int64_t n = out.numel();
      constexpr int64_t kChunk = 16384;
#pragma omp parallel for schedule(static) if (n > 2 * kChunk)
      for (int64_t start = 0; start < n; start += kChunk)
        cpu_impl::vector_binary<T>(op, a.data<T>() + start, b.data<T>() + start,
                                   out.data<T>() + start, std::min(kChunk, n - start));
    });
    return;
  }
  dispatch_float(out.dtype(), "binary", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    switch (op) {
      case BinaryOp::Add: return binary_loop<T>(a, b, out, scalar::Add{});
      case BinaryOp::Sub: return binary_loop<T>(a, b, out, scalar::Sub{});
      case BinaryOp::Mul: return binary_loop<T>(a, b, out, scalar::Mul{});
      case BinaryOp::Div: return binary_loop<T>(a, b, out, scalar::Div{});
      case BinaryOp::Pow: return binary_loop<T>(a, b, out, scalar::PowT{});
      case BinaryOp::Maximum: return binary_loop<T>(a, b, out, scalar::Maximum{});
      case BinaryOp::Minimum: return binary_loop<T>(a, b, out, scalar::Minimum{});
      case BinaryOp::Eq: return binary_loop<T>(a, b, out, scalar::Eq{});
      case BinaryOp::Lt: return binary_loop<T>(a, b, out, scalar::Lt{});
      case BinaryOp::Gt: return binary_loop<T>(a, b, out, scalar::Gt{});
      case BinaryOp::SiluBackward: return binary_loop<T>(a, b, out, scalar::SiluBackward{});
    }
  });
}

void CpuBackend::where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  check_same_shape("where", cond, out);
  DK_CHECK(cond.dtype() == out.dtype(), "where: condition is ", dtype_name(cond.dtype()),
           ", expected ", dtype_name(out.dtype()), " (a 0/1 mask)");
  dispatch_float(out.dtype(), "where", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    for_each_run<T, 4>(out.shape(), {&out.strides(), &cond.strides(), &a.strides(), &b.strides()},
                       {out.data<T>(), cond.data<T>(), a.data<T>(), b.data<T>()},
                       [&](const std::array<T*, 4>& p, const std::array<int64_t, 4>& s,
                           int64_t n) {
                         for (int64_t i = 0; i < n; ++i)
                           p[0][i * s[0]] = p[1][i * s[1]] != T(0) ? p[2][i * s[2]] : p[3][i * s[3]];
                       });
  });
}

}  // namespace diffkd

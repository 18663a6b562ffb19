// Reductions (sum / max / min over any set of dims) and softmax on the CPU.
//
// Determinism: the reduced index space of each output element is cut into fixed chunks of
// kChunk elements; each chunk is summed in order with 8 interleaved accumulators, and the chunk
// results are added in order. The arithmetic is therefore the same whatever the thread count and
// whichever loop (over outputs or over chunks) is parallel. Sums of f32 accumulate in f64.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "tensor/cpu/cpu_backend.h"
#include "tensor/cpu/vector_math.h"

namespace diffkd {

namespace {

constexpr int64_t kChunk = 16384;

struct Dims {
  std::vector<int64_t> size, stride;
};

// Merges adjacent dims whose strides chain (stride[d] == stride[d+1] * size[d+1]).
Dims merged(const Dims& in) {
  Dims out;
  for (size_t d = 0; d < in.size.size(); ++d) {
    if (in.size[d] == 1) continue;
    if (!out.size.empty() && out.stride.back() == in.stride[d] * in.size[d]) {
      out.size.back() *= in.size[d];
      out.stride.back() = in.stride[d];
    } else {
      out.size.push_back(in.size[d]);
      out.stride.push_back(in.stride[d]);
    }
  }
  if (out.size.empty()) {
    out.size.push_back(1);
    out.stride.push_back(0);
  }
  return out;
}

template <typename T, typename Acc>
struct SumPolicy {
  static Acc init() { return Acc(0); }
  static Acc combine(Acc a, Acc b) { return a + b; }
};
template <typename T, typename Acc>
struct MaxPolicy {
  static Acc init() { return -std::numeric_limits<Acc>::infinity(); }
  static Acc combine(Acc a, Acc b) { return (a > b || std::isnan(a)) ? a : b; }
};
template <typename T, typename Acc>
struct MinPolicy {
  static Acc init() { return std::numeric_limits<Acc>::infinity(); }
  static Acc combine(Acc a, Acc b) { return (a < b || std::isnan(a)) ? a : b; }
};

// Reduces linear positions [begin, end) of the inner (reduced) space starting at base.
template <typename T, typename Acc, typename P>
Acc reduce_range(const T* base, const Dims& inner, int64_t begin, int64_t end) {
  const int64_t nd = static_cast<int64_t>(inner.size.size());
  std::vector<int64_t> idx(nd);
  int64_t rem = begin;
  for (int64_t d = nd - 1; d >= 0; --d) {
    idx[d] = rem % inner.size[d];
    rem /= inner.size[d];
  }
  Acc lanes[8];
  for (auto& l : lanes) l = P::init();
  int64_t lane = 0;
  int64_t pos = begin;
  const int64_t last_stride = inner.stride[nd - 1];
  while (pos < end) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) off += idx[d] * inner.stride[d];
    const T* p = base + off;
    const int64_t n = std::min(inner.size[nd - 1] - idx[nd - 1], end - pos);
    int64_t i = 0;
    if (last_stride == 1 && lane == 0) {
      for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) lanes[k] = P::combine(lanes[k], static_cast<Acc>(p[i + k]));
    }
    for (; i < n; ++i) {
      lanes[lane] = P::combine(lanes[lane], static_cast<Acc>(p[i * last_stride]));
      lane = (lane + 1) & 7;
    }
    pos += n;
    idx[nd - 1] += n;
    for (int64_t d = nd - 1; d > 0 && idx[d] == inner.size[d]; --d) {
      idx[d] = 0;
      ++idx[d - 1];
    }
  }
  Acc acc = P::init();
  for (auto l : lanes) acc = P::combine(acc, l);
  return acc;
}

template <typename T, typename Acc, typename P>
void reduce_impl(const Tensor& x, const std::vector<bool>& reduced, const Tensor& out) {
  Dims outer_x, outer_o, inner;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (reduced[d]) {
      inner.size.push_back(x.size(d));
      inner.stride.push_back(x.stride(d));
    } else {
      outer_x.size.push_back(x.size(d));
      outer_x.stride.push_back(x.stride(d));
      outer_o.stride.push_back(out.stride(d));
    }
  }
  const Dims in = merged(inner);
  const int64_t inner_n = numel_of(in.size);
  const int64_t outer_n = numel_of(outer_x.size);
  const int64_t chunks = std::max<int64_t>(1, (inner_n + kChunk - 1) / kChunk);
  const T* xp = x.data<T>();
  T* op = out.data<T>();

  auto offsets = [&](int64_t o, int64_t& xo, int64_t& oo) {
    xo = 0;
    oo = 0;
    for (int64_t d = static_cast<int64_t>(outer_x.size.size()) - 1; d >= 0; --d) {
      const int64_t i = o % outer_x.size[d];
      o /= outer_x.size[d];
      xo += i * outer_x.stride[d];
      oo += i * outer_o.stride[d];
    }
  };
  auto chunk_value = [&](const T* base, int64_t c) {
    return reduce_range<T, Acc, P>(base, in, c * kChunk, std::min(inner_n, (c + 1) * kChunk));
  };

  if (outer_n >= omp_get_max_threads() * 4 || chunks == 1) {
#pragma omp parallel for schedule(static) if (outer_n * inner_n > 32768)
    for (int64_t o = 0; o < outer_n; ++o) {
      int64_t xo, oo;
      offsets(o, xo, oo);
      Acc acc = P::init();
      for (int64_t c = 0; c < chunks; ++c) acc = P::combine(acc, chunk_value(xp + xo, c));
      op[oo] = static_cast<T>(acc);
    }
  } else {
    // Few outputs, long reductions: parallel over chunks, partials combined in chunk order.
    std::vector<Acc> partial(outer_n * chunks);
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t o = 0; o < outer_n; ++o)
      for (int64_t c = 0; c < chunks; ++c) {
        int64_t xo, oo;
        offsets(o, xo, oo);
        partial[o * chunks + c] = chunk_value(xp + xo, c);
      }
    for (int64_t o = 0; o < outer_n; ++o) {
      int64_t xo, oo;
      offsets(o, xo, oo);
      Acc acc = P::init();
      for (int64_t c = 0; c < chunks; ++c) acc = P::combine(acc, partial[o * chunks + c]);
      op[oo] = static_cast<T>(acc);
    }
  }
}

}  // namespace

void CpuBackend::reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                        const Tensor& out) {
  std::vector<bool> reduced(x.dim(), false);
  for (int64_t d : dims) reduced[x.wrap_dim(d)] = true;
  for (int64_t d = 0; d < x.dim(); ++d)
    DK_CHECK(out.size(d) == (reduced[d] ? 1 : x.size(d)), "reduce: output shape ",
             shape_str(out.shape()), " does not match input ", shape_str(x.shape()));
  if (x.numel() == 0) {
    DK_CHECK(op == ReduceOp::Sum, "reduce: max/min of an empty tensor ", shape_str(x.shape()));
    fill(out, 0.0);
    return;
  }
  dispatch_float(x.dtype(), "reduce", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    switch (op) {
      case ReduceOp::Sum: return reduce_impl<T, double, SumPolicy<T, double>>(x, reduced, out);
      case ReduceOp::Max: return reduce_impl<T, T, MaxPolicy<T, T>>(x, reduced, out);
      case ReduceOp::Min: return reduce_impl<T, T, MinPolicy<T, T>>(x, reduced, out);
    }
  });
}

void CpuBackend::softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) {
  dim = x.wrap_dim(dim);
  DK_CHECK(out.is_contiguous() && out.shape() == x.shape(), "softmax: bad output");
  const int64_t len = x.size(dim);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= x.size(d);
  for (int64_t d = dim + 1; d < x.dim(); ++d) inner *= x.size(d);
  const Tensor xc = x.is_contiguous() ? x : x.clone_data();
  if (inner == 1) {  // softmax over contiguous rows: the vectorised path
    dispatch_float(x.dtype(), "softmax", [&](auto tag) {
      using T = typename decltype(tag)::type;
      cpu_impl::softmax_rows<T>(xc.data<T>(), out.data<T>(), outer, len, log);
    });
    return;
  }
  dispatch_float(x.dtype(), "softmax", [&](auto tag) {
    using scalar_t = typename decltype(tag)::type;
    using T = scalar_t;
    const T* xp = xc.data<T>();
    T* op = out.data<T>();
#pragma omp parallel for collapse(2) schedule(static) if (x.numel() > 32768)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const T* row = xp + o * len * inner + i;
        T* orow = op + o * len * inner + i;
        T m = -std::numeric_limits<T>::infinity();
        for (int64_t k = 0; k < len; ++k) m = std::max(m, row[k * inner]);
        double s = 0;
        for (int64_t k = 0; k < len; ++k) {
          const T e = std::exp(row[k * inner] - m);
          s += e;
          if (!log) orow[k * inner] = e;
        }
        if (log) {
          const T lse = m + static_cast<T>(std::log(s));
          for (int64_t k = 0; k < len; ++k) orow[k * inner] = row[k * inner] - lse;
        } else {
          const T inv = static_cast<T>(1.0 / s);
          for (int64_t k = 0; k < len; ++k) orow[k * inner] *= inv;
        }
      }
  });
}

}  // namespace diffkd

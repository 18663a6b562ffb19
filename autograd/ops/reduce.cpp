// Reductions over dims: sum, mean, max (amax), var, and sum_to (the adjoint of broadcasting).
//   sum:  gx = expand(g)                      mean: gx = expand(g) / n
//   max:  gx = expand(g) * [x == max] / #ties  (PyTorch's amax rule)
//   var = mean((x - mean(x))^2) * n / (n - 1): composed, so its gradient comes for free.
// An empty dims list reduces over every dim.

#include <algorithm>

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

std::vector<int64_t> normalize_dims(const Tensor& x, const std::vector<int64_t>& dims) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < x.dim(); ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(x.wrap_dim(d));
  std::sort(out.begin(), out.end());
  DK_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), "reduce: repeated dim in ",
           shape_str(dims), " for tensor ", shape_str(x.shape()));
  return out;
}

Shape kept_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s = x.shape();
  for (int64_t d : dims) s[d] = 1;
  return s;
}

Shape dropped_shape(const Tensor& x, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d = 0; d < x.dim(); ++d)
    if (!std::binary_search(dims.begin(), dims.end(), d)) s.push_back(x.size(d));
  return s;
}

// Runs the reduce kernel; returns the result in keepdim form.
Tensor reduce_keep(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor out = empty_as(kept_shape(x, dims), x);
  be(x).reduce(op, x, dims, out);
  return out;
}

Tensor drop_dims_raw(const Tensor& kept, const Shape& shape) {
  return kept.as_strided(shape, contiguous_strides(shape), kept.offset());
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const auto dims = normalize_dims(x, dims_in);
  Tensor kept = reduce_keep(ReduceOp::Sum, x, dims);
  Tensor out = keepdim ? kept : drop_dims_raw(kept, dropped_shape(x, dims));
  return record("sum", {x}, out, [xs = x.shape(), ks = kept.shape()](const GradContext& c) {
    return TensorList{expand(reshape(c.grad, ks), xs)};
  });
}

Tensor sum(const Tensor& x) { return sum(x, {}, false); }

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const auto dims = normalize_dims(x, dims_in);
  int64_t n = 1;
  for (int64_t d : dims) n *= x.size(d);
  DK_CHECK(n > 0, "mean: reducing ", shape_str(x.shape()), " over an empty dim");
  return sum(x, dims, keepdim) * (1.0 / static_cast<double>(n));
}

Tensor mean(const Tensor& x) { return mean(x, {}, false); }

Tensor max(const Tensor& x, const std::vector<int64_t>& dims_in, bool keepdim) {
  const auto dims = normalize_dims(x, dims_in);
  DK_CHECK(x.numel() > 0, "max: empty tensor ", shape_str(x.shape()));
  Tensor kept = reduce_keep(ReduceOp::Max, x, dims);
  Tensor out = keepdim ? kept : drop_dims_raw(kept, dropped_shape(x, dims));
  return record("max", {x}, out, [x, kept, dims](const GradContext& c) {
    Tensor share;
    {
      NoGradGuard no_grad;
      Tensor ties = eq(x, expand(kept, x.shape()));
      share = div(ties, sum(ties, dims, true));
    }
    return TensorList{mul(expand(reshape(c.grad, kept.shape()), x.shape()), share)};
  });
}

Tensor max(const Tensor& x) { return max(x, {}, false); }

Tensor var(const Tensor& x, const std::vector<int64_t>& dims_in, bool unbiased, bool keepdim) {
  const auto dims = normalize_dims(x, dims_in);
  int64_t n = 1;
  for (int64_t d : dims) n *= x.size(d);
  DK_CHECK(n > (unbiased ? 1 : 0), "var: ", n, " elements in the reduced dims of ",
           shape_str(x.shape()), " are too few");
  Tensor centred = x - mean(x, dims, true);
  return sum(square(centred), dims, keepdim) * (1.0 / static_cast<double>(unbiased ? n - 1 : n));
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t extra = x.dim() - static_cast<int64_t>(shape.size());
  DK_CHECK(extra >= 0, "sum_to: cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < extra) {
      dims.push_back(d);
    } else if (shape[d - extra] == 1 && x.size(d) != 1) {
      dims.push_back(d);
    } else {
      DK_CHECK(shape[d - extra] == x.size(d), "sum_to: cannot reduce ", shape_str(x.shape()),
               " to ", shape_str(shape));
    }
  }
  if (dims.empty()) return reshape(x, shape);
  return reshape(sum(x, dims, true), shape);
}

}  // namespace diffkd

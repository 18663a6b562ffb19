// Joining and padding: concat, stack, constant pad.
//   concat: each input's gradient is its narrow of g     stack = unsqueeze + concat
//   pad:    gx = the interior slice of g (padding gets no gradient)

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor concat(const TensorList& xs, int64_t dim) {
  DK_CHECK(!xs.empty(), "concat: no tensors");
  const Tensor& first = xs[0];
  dim = first.wrap_dim(dim);
  Shape shape = first.shape();
  shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    check_compatible("concat", first, xs[i]);
    DK_CHECK(xs[i].dim() == first.dim(), "concat: tensor ", i, " has shape ",
             shape_str(xs[i].shape()), ", expected rank ", first.dim());
    for (int64_t d = 0; d < first.dim(); ++d)
      DK_CHECK(d == dim || xs[i].size(d) == first.size(d), "concat: tensor ", i, " has shape ",
               shape_str(xs[i].shape()), ", incompatible with ", shape_str(first.shape()),
               " along dim ", d);
    shape[dim] += xs[i].size(dim);
  }
  Tensor out = empty_as(shape, first);
  std::vector<int64_t> starts;
  int64_t start = 0;
  for (const Tensor& x : xs) {
    starts.push_back(start);
    Shape window = shape;
    window[dim] = x.size(dim);
    be(x).copy(x, out.as_strided(window, out.strides(), start * out.stride(dim)));
    start += x.size(dim);
  }
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) sizes.push_back(x.size(dim));
  return record("concat", xs, out, [dim, starts, sizes](const GradContext& c) {
    TensorList grads;
    for (size_t i = 0; i < starts.size(); ++i)
      grads.push_back(c.needs_grad(i) ? narrow(c.grad, dim, starts[i], sizes[i]) : Tensor());
    return grads;
  });
}

Tensor stack(const TensorList& xs, int64_t dim) {
  DK_CHECK(!xs.empty(), "stack: no tensors");
  TensorList expanded;
  for (const Tensor& x : xs) {
    DK_CHECK(x.shape() == xs[0].shape(), "stack: shapes differ: ", shape_str(x.shape()), " vs ",
             shape_str(xs[0].shape()));
    expanded.push_back(unsqueeze(x, dim));
  }
  return concat(expanded, dim);  // unsqueeze put the new dim where `dim` names it
}

Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value) {
  DK_CHECK(pads.size() % 2 == 0 && static_cast<int64_t>(pads.size()) / 2 <= x.dim(),
           "pad: ", pads.size(), " pad values for a tensor of shape ", shape_str(x.shape()),
           " (expected pairs, at most 2 per dim)");
  Shape shape = x.shape();
  int64_t offset = 0;
  Tensor out;
  std::vector<std::pair<int64_t, int64_t>> per_dim;  // (dim, low pad)
  for (size_t i = 0; i < pads.size() / 2; ++i) {
    const int64_t d = x.dim() - 1 - static_cast<int64_t>(i);
    DK_CHECK(pads[2 * i] >= 0 && pads[2 * i + 1] >= 0, "pad: negative padding ",
             shape_str(pads), " is not supported");
    shape[d] += pads[2 * i] + pads[2 * i + 1];
    per_dim.emplace_back(d, pads[2 * i]);
  }
  out = full(shape, value, x.dtype(), x.device());
  for (auto [d, lo] : per_dim) offset += lo * out.stride(d);
  be(x).copy(x, out.as_strided(x.shape(), out.strides(), offset));
  return record("pad", {x}, out, [per_dim, xs = x.shape()](const GradContext& c) {
    Tensor g = c.grad;
    for (auto [d, lo] : per_dim) g = narrow(g, d, lo, xs[d]);
    return TensorList{g};
  });
}

}  // namespace diffkd

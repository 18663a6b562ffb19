// View ops: reshape/view, flatten, squeeze/unsqueeze, permute/transpose, narrow/slice, expand,
// and contiguous. Views share storage and only change shape/strides/offset.
//   reshape:  gx = reshape(g, x.shape)          permute: gx = permute(g, inverse)
//   expand:   gx = sum_to(g, x.shape)           contiguous: gx = g
//   slice:    gx = zeros(x.shape) with g written into the slice (slice_backward below, whose
//             own backward is slice again, so higher-order gradients flow).

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Shape infer_shape(const Tensor& x, Shape shape) {
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      DK_CHECK(infer < 0, "reshape: more than one -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      DK_CHECK(shape[i] >= 0, "reshape: negative size in ", shape_str(shape));
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    DK_CHECK(known > 0 && x.numel() % known == 0, "reshape: cannot view ", shape_str(x.shape()),
             " as ", shape_str(shape));
    shape[infer] = x.numel() / known;
  }
  DK_CHECK(numel_of(shape) == x.numel(), "reshape: shape ", shape_str(shape), " has ",
           numel_of(shape), " elements, input ", shape_str(x.shape()), " has ", x.numel());
  return shape;
}

// Strides that view x's memory as `shape`, if any (the algorithm of PyTorch's computeStride:
// each run of dims that is contiguous in memory may be re-split freely).
bool view_strides(const Tensor& x, const Shape& shape, Shape& strides) {
  strides.assign(shape.size(), 0);
  if (x.numel() == 0 || x.dim() == 0) {
    strides = contiguous_strides(shape);
    return true;
  }
  const Shape& old = x.shape();
  const Shape& old_strides = x.strides();
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = x.dim() - 1; d >= 0; --d) {
    tensor_numel *= old[d];
    if (d == 0 || (old[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return false;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  return view_d == -1;
}

Tensor record_reshape(const Tensor& x, Tensor out) {
  return record("reshape", {x}, out,
                [xs = x.shape()](const GradContext& c) { return TensorList{reshape(c.grad, xs)}; });
}

// Adjoint of slice: zeros of `shape` with g written at [start : : step] along dim.
Tensor slice_backward(const Tensor& g, const Shape& shape, int64_t dim, int64_t start,
                      int64_t step) {
  Tensor out = zeros(shape, g.dtype(), g.device());
  Shape strides = out.strides();
  strides[dim] *= step;
  const Tensor window = out.as_strided(g.shape(), strides, start * out.stride(dim));
  be(g).copy(g, window);
  return record("slice_backward", {g}, out, [dim, start, step, len = g.size(dim)](const GradContext& c) {
    return TensorList{slice(c.grad, dim, start, start + len * step, step)};
  });
}

}  // namespace

Tensor reshape(const Tensor& x, const Shape& shape_in) {
  const Shape shape = infer_shape(x, shape_in);
  Shape strides;
  if (view_strides(x, shape, strides)) return record_reshape(x, x.as_strided(shape, strides, x.offset()));
  Tensor copy = x.clone_data();
  return record_reshape(x, copy.as_strided(shape, contiguous_strides(shape), 0));
}

Tensor view(const Tensor& x, const Shape& shape_in) {
  const Shape shape = infer_shape(x, shape_in);
  Shape strides;
  DK_CHECK(view_strides(x, shape, strides), "view: cannot view ", shape_str(x.shape()),
           " with strides ", shape_str(x.strides()), " as ", shape_str(shape),
           " without a copy; use reshape");
  return record_reshape(x, x.as_strided(shape, strides, x.offset()));
}

Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.dim() == 0) return reshape(x, {1});
  start_dim = x.wrap_dim(start_dim);
  end_dim = x.wrap_dim(end_dim);
  DK_CHECK(start_dim <= end_dim, "flatten: start_dim ", start_dim, " after end_dim ", end_dim);
  Shape shape(x.shape().begin(), x.shape().begin() + start_dim);
  int64_t n = 1;
  for (int64_t d = start_dim; d <= end_dim; ++d) n *= x.size(d);
  shape.push_back(n);
  shape.insert(shape.end(), x.shape().begin() + end_dim + 1, x.shape().end());
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  dim = x.wrap_dim(dim);
  if (x.size(dim) != 1) return x;
  Shape shape = x.shape();
  shape.erase(shape.begin() + dim);
  return reshape(x, shape);
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  DK_CHECK(dim >= -x.dim() - 1 && dim <= x.dim(), "unsqueeze: dim ", dim,
           " out of range for shape ", shape_str(x.shape()));
  if (dim < 0) dim += x.dim() + 1;
  Shape shape = x.shape();
  shape.insert(shape.begin() + dim, 1);
  return reshape(x, shape);
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  DK_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(),
           " dims for a tensor of shape ", shape_str(x.shape()));
  Shape shape(dims.size()), strides(dims.size());
  std::vector<int64_t> inverse(dims.size(), -1);
  for (size_t i = 0; i < dims.size(); ++i) {
    const int64_t d = x.wrap_dim(dims[i]);
    DK_CHECK(inverse[d] < 0, "permute: dim ", d, " repeated in ", shape_str(dims));
    inverse[d] = static_cast<int64_t>(i);
    shape[i] = x.size(d);
    strides[i] = x.stride(d);
  }
  return record("permute", {x}, x.as_strided(shape, strides, x.offset()),
                [inverse](const GradContext& c) { return TensorList{permute(c.grad, inverse)}; });
}

Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  std::vector<int64_t> dims(x.dim());
  for (int64_t d = 0; d < x.dim(); ++d) dims[d] = d;
  std::swap(dims[x.wrap_dim(dim0)], dims[x.wrap_dim(dim1)]);
  return permute(x, dims);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  dim = x.wrap_dim(dim);
  DK_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = x.size(dim);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = x.shape(), strides = x.strides();
  shape[dim] = (end - start + step - 1) / step;
  strides[dim] *= step;
  Tensor out = x.as_strided(shape, strides, x.offset() + start * x.stride(dim));
  return record("slice", {x}, out, [xs = x.shape(), dim, start, step](const GradContext& c) {
    return TensorList{slice_backward(c.grad, xs, dim, start, step)};
  });
}

Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length) {
  const int64_t d = x.wrap_dim(dim);
  DK_CHECK(start >= 0 && length >= 0 && start + length <= x.size(d), "narrow: [", start, ", ",
           start + length, ") out of range for dim ", d, " of ", shape_str(x.shape()));
  return slice(x, d, start, start + length, 1);
}

Tensor expand(const Tensor& x, const Shape& shape_in) {
  DK_CHECK(static_cast<int64_t>(shape_in.size()) >= x.dim(), "expand: cannot expand ",
           shape_str(x.shape()), " to ", shape_str(shape_in));
  Shape shape = shape_in;
  const int64_t extra = static_cast<int64_t>(shape.size()) - x.dim();
  for (int64_t d = 0; d < extra; ++d)  // new leading dims: -1 has no size to keep
    DK_CHECK(shape[d] >= 0, "expand: new dim ", d, " of ", shape_str(shape_in),
             " must be a size >= 0");
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (shape[extra + d] == -1) shape[extra + d] = x.size(d);
    DK_CHECK(shape[extra + d] >= 0 && (x.size(d) == shape[extra + d] || x.size(d) == 1),
             "expand: cannot expand ", shape_str(x.shape()), " to ", shape_str(shape_in));
  }
  if (shape == x.shape()) return x;
  return record("expand", {x}, expand_raw(x, shape),
                [xs = x.shape()](const GradContext& c) { return TensorList{sum_to(c.grad, xs)}; });
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return record("contiguous", {x}, x.clone_data(),
                [](const GradContext& c) { return TensorList{c.grad}; });
}

}  // namespace diffkd

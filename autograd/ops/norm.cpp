// Normalisation layers, composed from differentiable ops (their gradients, of any order, come
// from the pieces; a fused kernel may replace a composition only behind a test against it).
//   group_norm (Wu & He 2018):  x [N, C, *] in G groups; y = (x - mu_g) / sqrt(var_g + eps) * w + b
//   group_norm_silu: silu(group_norm(x)), fused
//   layer_norm (Ba et al. 2016): statistics over the trailing normalized_shape dims
//   batch_norm (Ioffe & Szegedy 2015): statistics over all dims but C; in training the running
//     statistics move by momentum (running_var with the unbiased variance, as PyTorch)
//   normalize: x / max(||x||_2, eps) along dim
// Variances are biased (divide by n) inside the normalisation, as in all three papers.

#include <functional>

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

// Shape [1, C, 1, ..., 1] for per-channel parameters of an x of rank `rank`.
Shape channel_shape(int64_t channels, int64_t rank) {
  Shape s(rank, 1);
  s[1] = channels;
  return s;
}

Tensor scale_shift(Tensor y, const Tensor& weight, const Tensor& bias, const Shape& param_shape) {
  if (weight.defined()) y = y * reshape(weight, param_shape);
  if (bias.defined()) y = y + reshape(bias, param_shape);
  return y;
}

void check_param(const char* op, const Tensor& p, int64_t n, const char* name) {
  if (p.defined())
    DK_CHECK(p.numel() == n, op, ": ", name, " ", shape_str(p.shape()), " should have ", n,
             " elements");
}

void check_group_norm_args(const Tensor& x, int64_t groups, const Tensor& weight,
                           const Tensor& bias) {
  DK_CHECK(x.dim() >= 2, "group_norm: expected [N, C, ...], got ", shape_str(x.shape()));
  const int64_t c = x.size(1);
  DK_CHECK(groups > 0 && c % groups == 0, "group_norm: ", c, " channels of ",
           shape_str(x.shape()), " do not split into ", groups, " groups");
  check_param("group_norm", weight, c, "weight");
  check_param("group_norm", bias, c, "bias");
  if (weight.defined()) check_compatible("group_norm", x, weight);
  if (bias.defined()) check_compatible("group_norm", x, bias);
}

}  // namespace

Tensor group_norm_composite(const Tensor& x, int64_t groups, const Tensor& weight,
                            const Tensor& bias, double eps) {
  check_group_norm_args(x, groups, weight, bias);
  const int64_t n = x.size(0), c = x.size(1);
  Tensor xg = reshape(x, {n, groups, -1});  // [N, G, C/G * spatial]
  Tensor mu = mean(xg, {2}, true);
  Tensor centred = xg - mu;
  Tensor inv_std = rsqrt(mean(square(centred), {2}, true) + eps);
  Tensor y = reshape(centred * inv_std, x.shape());
  return scale_shift(y, weight, bias, channel_shape(c, x.dim()));
}

namespace {

// Under create_graph, the gradients (of any order) of a fused op come from differentiating the
// composite it is tested against: `composite` rebuilds it from inputs {x, weight, bias}.
TensorList grad_of_composite(const GradContext& c, const TensorList& inputs,
                             const std::function<Tensor()>& composite) {
  Tensor out = composite();
  TensorList wanted;
  for (size_t i = 0; i < inputs.size(); ++i) if (c.needs_grad(i)) wanted.push_back(inputs[i]);
  // retain_graph: the returned gradients refer back to the composite graph.
  TensorList g = grad({out}, wanted, {c.grad}, /*retain_graph=*/true, true, true);
  TensorList result(inputs.size());
  for (size_t i = 0, k = 0; i < inputs.size(); ++i) if (c.needs_grad(i)) result[i] = g[k++];
  return result;
}

// group_norm and group_norm_silu: the fused kernels (tensor/cpu/norm.cpp) compute the same
// functions as their composites (tested against them in value and gradient) in two passes over
// memory instead of about ten, and save only x, mean and rstd for a backward that is fused too.
Tensor fused_group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                        double eps, bool with_silu) {
  check_group_norm_args(x, groups, weight, bias);
  const int64_t n = x.size(0);
  const Tensor xc = x.is_contiguous() ? x : x.clone_data();
  const Tensor w = weight.defined() && !weight.is_contiguous() ? weight.clone_data() : weight;
  const Tensor b = bias.defined() && !bias.is_contiguous() ? bias.clone_data() : bias;
  Tensor y = empty_like(x);
  Tensor mean = empty_as({n, groups}, x), rstd = empty_as({n, groups}, x);
  if (with_silu) be(x).group_norm_silu(xc, w.detach(), b.detach(), groups, eps, y, mean, rstd);
  else be(x).group_norm(xc, w.detach(), b.detach(), groups, eps, y, mean, rstd);
  return record(with_silu ? "group_norm_silu" : "group_norm", {x, weight, bias}, y,
                [x, xc, weight, w, bias, b, groups, eps, mean, rstd, with_silu](const GradContext& c) {
    if (GradMode::is_enabled()) {  // create_graph: differentiate the composite
      return grad_of_composite(c, {x, weight, bias}, [&] {
        Tensor z = group_norm_composite(x, groups, weight, bias, eps);
        return with_silu ? silu(z) : z;
      });
    }
    Tensor gx = c.needs_grad(0) ? empty_like(xc) : Tensor();
    Tensor gw = c.needs_grad(1) ? empty_like(w) : Tensor();
    Tensor gb = c.needs_grad(2) ? empty_like(bias) : Tensor();
    const Tensor wd = w.defined() ? w.detach() : Tensor();
    if (with_silu)
      be(xc).group_norm_silu_backward(c.grad, xc, wd, b.defined() ? b.detach() : Tensor(), mean,
                                      rstd, groups, eps, gx, gw, gb);
    else be(xc).group_norm_backward(c.grad, xc, wd, mean, rstd, groups, gx, gw, gb);
    return TensorList{gx, gw, gb};
  });
}

}  // namespace

Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return fused_group_norm(x, groups, weight, bias, eps, /*with_silu=*/false);
}

Tensor group_norm_silu(const Tensor& x, int64_t groups, const Tensor& weight, const Tensor& bias,
                       double eps) {
  return fused_group_norm(x, groups, weight, bias, eps, /*with_silu=*/true);
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  DK_CHECK(k >= 1 && k <= x.dim() &&
               Shape(x.shape().end() - k, x.shape().end()) == normalized_shape,
           "layer_norm: normalized_shape ", shape_str(normalized_shape),
           " does not match the trailing dims of ", shape_str(x.shape()));
  check_param("layer_norm", weight, numel_of(normalized_shape), "weight");
  check_param("layer_norm", bias, numel_of(normalized_shape), "bias");
  std::vector<int64_t> dims;
  for (int64_t d = x.dim() - k; d < x.dim(); ++d) dims.push_back(d);
  Tensor centred = x - mean(x, dims, true);
  Tensor y = centred * rsqrt(mean(square(centred), dims, true) + eps);
  if (weight.defined()) y = y * reshape(weight, normalized_shape);
  if (bias.defined()) y = y + reshape(bias, normalized_shape);
  return y;
}

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps, const BatchStatistics* across) {
  DK_CHECK(x.dim() >= 2, "batch_norm: expected [N, C, ...], got ", shape_str(x.shape()));
  const int64_t c = x.size(1);
  check_param("batch_norm", weight, c, "weight");
  check_param("batch_norm", bias, c, "bias");
  check_param("batch_norm", running_mean, c, "running_mean");
  check_param("batch_norm", running_var, c, "running_var");
  const Shape pshape = channel_shape(c, x.dim());
  std::vector<int64_t> dims{0};
  for (int64_t d = 2; d < x.dim(); ++d) dims.push_back(d);
  Tensor y;
  if (training) {
    const int64_t count = across ? across->count : x.numel() / c;
    DK_CHECK(count > 1, "batch_norm: training needs more than one value per channel, got input ",
             shape_str(x.shape()), across ? " (over every rank)" : "");
    // Across ranks: the global mean first, then the spread about it (two passes, as one process).
    Tensor mu = across ? across->sum(sum(x, dims, true)) / static_cast<double>(count) : mean(x, dims, true);
    Tensor centred = x - mu;
    Tensor var_biased = across ? across->sum(sum(square(centred), dims, true)) / static_cast<double>(count)
                               : mean(square(centred), dims, true);
    y = centred * rsqrt(var_biased + eps);
    if (running_mean.defined() && running_var.defined()) {
      NoGradGuard no_grad;
      // running <- (1 - momentum) * running + momentum * batch statistic, written in place.
      Tensor new_mean = reshape(running_mean, pshape) * (1.0 - momentum) + mu * momentum;
      Tensor unbiased = var_biased * (static_cast<double>(count) / (count - 1));
      Tensor new_var = reshape(running_var, pshape) * (1.0 - momentum) + unbiased * momentum;
      be(x).copy(reshape(new_mean, running_mean.shape()), running_mean);
      be(x).copy(reshape(new_var, running_var.shape()), running_var);
    }
  } else {
    DK_CHECK(running_mean.defined() && running_var.defined(),
             "batch_norm: eval mode needs running_mean and running_var");
    y = (x - reshape(running_mean.detach(), pshape)) *
        rsqrt(reshape(running_var.detach(), pshape) + eps);
  }
  return scale_shift(y, weight, bias, pshape);
}

Tensor normalize(const Tensor& x, int64_t dim, double eps) {
  // max(||x||, eps) as sqrt(max(||x||^2, eps^2)): the same value, but a zero vector (a pixel whose
  // channels a ReLU zeroed) gets a zero gradient through the norm, as PyTorch's, instead of
  // sqrt's 0 * inf = NaN.
  return x / sqrt(clamp_min(sum(square(x), {dim}, true), eps * eps));
}

}  // namespace diffkd

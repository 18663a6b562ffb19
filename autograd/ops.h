#pragma once
// The differentiable operations of diffkd, as free functions in PyTorch's vocabulary.
// Each is implemented in autograd/ops/<family>.cpp with its forward and backward side by side;
// autograd/README.md lists every op with its gradient formula and its tests.
// Backward formulas are written with these same ops, so gradients are differentiable again
// (create_graph) wherever the formula's ops are.

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "autograd/engine.h"
#include "autograd/grad_mode.h"
#include "tensor/creation.h"
#include "tensor/tensor.h"

namespace diffkd {

// --- elementwise, broadcasting (binary.cpp) ---------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);  // ties split the gradient equally
Tensor minimum(const Tensor& a, const Tensor& b);
// where(cond, a, b): cond is a 0/1 mask of a's dtype (not differentiated).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// Comparisons give 0/1 masks with no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Shape broadcast_shapes(const Shape& a, const Shape& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);

// --- elementwise, unary (unary.cpp, activations.cpp) ----------------------------------------
Tensor neg(const Tensor& x);
Tensor affine(const Tensor& x, double scale, double shift);  // scale * x + shift
Tensor operator+(const Tensor& x, double s);
Tensor operator+(double s, const Tensor& x);
Tensor operator-(const Tensor& x, double s);
Tensor operator-(double s, const Tensor& x);
Tensor operator*(const Tensor& x, double s);
Tensor operator*(double s, const Tensor& x);
Tensor operator/(const Tensor& x, double s);
Tensor operator/(double s, const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor square(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor clamp(const Tensor& x, double lo, double hi);
Tensor clamp_min(const Tensor& x, double lo);
Tensor sign(const Tensor& x);  // no gradient
Tensor to_dtype(const Tensor& x, DType dtype);  // f32 <-> f64 cast (x itself if already dtype)
Tensor to_device(const Tensor& x, Device device);  // the same values on another device (x itself if already there)
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor silu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor softplus(const Tensor& x);

// --- reductions (reduce.cpp) ------------------------------------------------------------------
Tensor sum(const Tensor& x);  // all elements, 0-d result
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
// amax: the gradient is shared equally among tied maxima.
Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim = false);
Tensor max(const Tensor& x);
// Variance with Bessel's correction when unbiased (PyTorch's default).
Tensor var(const Tensor& x, const std::vector<int64_t>& dims, bool unbiased = true,
           bool keepdim = false);
// Sums x over the dims it was broadcast along, to get back `shape` (autograd of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// --- views and layout (view.cpp) --------------------------------------------------------------
// reshape returns a view when the strides allow it and a copy otherwise; view requires a view.
// One dim may be -1.
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor view(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor narrow(const Tensor& x, int64_t dim, int64_t start, int64_t length);
// x[..., start:end:step, ...] along dim (a view); negative start/end count from the end.
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);  // -1 keeps a dim; new dims go in front
Tensor contiguous(const Tensor& x);

// --- joining, padding, indexing (join.cpp, index.cpp) -----------------------------------------
Tensor concat(const TensorList& xs, int64_t dim);
Tensor stack(const TensorList& xs, int64_t dim);
// Constant padding of the last dims, as F.pad: pads = {last_lo, last_hi, prev_lo, prev_hi, ...}.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pads, double value = 0.0);
// index_select(x, 0, idx) gathers rows.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);
// The adjoint of index_select: zeros of `shape` with src added at index along dim.
Tensor index_add_to_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// --- linear algebra (matmul.cpp) ----------------------------------------------------------------
// a @ b with PyTorch's rules: 1-D operands are promoted, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
// x @ w^T + b, w [out, in], b [out] (may be undefined).
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());

// --- convolution (conv2d.cpp) -------------------------------------------------------------------
struct Conv2dOptions {
  std::vector<int64_t> stride{1, 1};
  std::vector<int64_t> padding{0, 0};
  std::vector<int64_t> output_padding{0, 0};  // conv_transpose2d only
};
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
              const Conv2dOptions& opt = {});
// w [C_in, C_out, kh, kw] as PyTorch's ConvTranspose2d.
Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b = Tensor(),
                        const Conv2dOptions& opt = {});
// The input gradient and weight gradient of conv2d as differentiable ops (used by backward).
Tensor conv2d_input_grad(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                         const Conv2dOptions& opt);
Tensor conv2d_weight_grad(const Tensor& x, const Tensor& grad_out, const Shape& weight_shape,
                          const Conv2dOptions& opt);

// --- pooling and resampling (pool.cpp, resize.cpp) ---------------------------------------------
Tensor avg_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor max_pool2d(const Tensor& x, int64_t kernel, int64_t stride = -1, int64_t padding = 0);
Tensor upsample_nearest(const Tensor& x, int64_t scale);
// Bilinear resize to (h, w), align_corners=False as PyTorch's F.interpolate.
Tensor resize_bilinear(const Tensor& x, int64_t h, int64_t w);

// --- normalisation (norm.cpp, softmax.cpp) ------------------------------------------------------
Tensor group_norm(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// The same function composed from elementary ops: the reference the fused kernel is tested
// against, and what create_graph differentiates.
Tensor group_norm_composite(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                            const Tensor& bias = Tensor(), double eps = 1e-5);
// silu(group_norm(...)) as one fused op, the UNet's normalise-then-activate: it keeps no
// activation-sized intermediate for backward. Reference: silu(group_norm_composite(...)).
Tensor group_norm_silu(const Tensor& x, int64_t groups, const Tensor& weight = Tensor(),
                       const Tensor& bias = Tensor(), double eps = 1e-5);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                  const Tensor& bias = Tensor(), double eps = 1e-5);
// Training: batch statistics, and running_mean / running_var (if defined) are updated in place
// with momentum (running_var with the unbiased variance). Eval: the running statistics.
// With `across` (training only), the statistics are those of rows that several processes hold
// (SyncBatchNorm, dist/): across.sum adds a per-channel tensor over them, differentiably, and
// across.count is their number of values per channel.
struct BatchStatistics {
  std::function<Tensor(const Tensor&)> sum;
  int64_t count = 0;
};
Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5, const BatchStatistics* across = nullptr);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// x / max(||x||_2 along dim, eps), as F.normalize.
Tensor normalize(const Tensor& x, int64_t dim = 1, double eps = 1e-12);
// Zeroes each element with probability p and scales the rest by 1/(1-p); identity if !training.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen = default_generator());

// --- losses and attention (loss.cpp, attention.cpp) -------------------------------------------
enum class Reduction { None, Mean, Sum, BatchMean };
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean);
// logits [N, C, ...], target i64 class indices [N, ...].
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r = Reduction::Mean,
                     double label_smoothing = 0.0);
// KL(target || exp(input)) with input log-probabilities, as F.kl_div.
Tensor kl_div(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean,
              bool log_target = false);
// softmax(q k^T * scale) v over the last two dims; scale defaults to 1/sqrt(d).
Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                                    std::optional<double> scale = std::nullopt);

}  // namespace diffkd

#pragma once
// The kernel interface every backend implements, and the dispatch point.
//
// Kernels are non-differentiable and write into outputs that the caller allocated on the same
// device (autograd/ops/ allocates, calls a kernel, records the backward). Inputs may have any
// strides (broadcast dims have stride 0); outputs are contiguous unless a kernel says otherwise.
// Callers only ever write `backend(t.device()).kernel(...)`, so the CUDA backend (cuda/) slots in
// beside the CPU one without touching them. A copy between devices goes to the backend of the
// non-CPU side.

#include <cstdint>
#include <vector>

#include "tensor/optimizer_math.h"
#include "tensor/tensor.h"

namespace diffkd {

enum class UnaryOp {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sign, Square, Reciprocal,
  Relu, Sigmoid, Tanh, Silu, Softplus,
  LeakyRelu,  // a = negative slope
  Affine,     // a * x + b
  Pow,        // x ^ a
  Clamp,      // min(max(x, a), b)
  InRange,    // 1 if a <= x <= b else 0   (clamp's gradient mask)
  Positive,   // 1 if x > 0 else 0         (relu's gradient mask)
};

enum class BinaryOp {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, Eq, Lt, Gt,
  SiluBackward,  // (x, g) -> g * silu'(x), silu's first-order gradient in one pass
};

enum class ReduceOp { Sum, Max, Min };

enum class RandomKind { Uniform, Normal, Bernoulli };

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  // The weight will be read again unchanged (autograd's conv2d sets it under no-grad): a backend
  // may keep its packed form across calls while the weight's storage version is unchanged.
  bool reuse_packed_weight = false;
};

struct Pool2dParams {
  int64_t kernel_h, kernel_w;
  int64_t stride_h, stride_w;
  int64_t pad_h = 0, pad_w = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Allocator& allocator() = 0;

  // --- memory and creation --------------------------------------------------------------------
  // dst = src, elementwise, any strides on both sides, converting dtype if they differ.
  virtual void copy(const Tensor& src, const Tensor& dst) = 0;
  virtual void fill(const Tensor& dst, double value) = 0;
  virtual void arange(const Tensor& dst, double start, double step) = 0;
  // Philox4x32-10 draws keyed by (seed, offset): element i of dst (row-major) uses counter block
  // offset + i / 4, lane i % 4. Uniform(a, b), Normal(mean a, std b), Bernoulli(p = a).
  virtual void random(const Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a,
                      double b) = 0;

  // --- elementwise ----------------------------------------------------------------------------
  virtual void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) = 0;
  // a and b are already broadcast (expanded) to out's shape.
  virtual void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) = 0;
  // out = cond != 0 ? a : b, all expanded to out's shape.
  virtual void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) = 0;

  // --- reductions -----------------------------------------------------------------------------
  // out has x's shape with the reduced dims set to 1 (keepdim form). Deterministic order.
  virtual void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
                      const Tensor& out) = 0;
  // Softmax (or log-softmax) of x along dim into out (same shape, contiguous).
  virtual void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) = 0;

  // --- normalisation ----------------------------------------------------------------------------
  // Group normalisation of contiguous x [N, C, *] in `groups` groups: mean and rstd [N, groups]
  // (rstd = 1 / sqrt(var + eps), biased variance), y = (x - mean) * rstd * w + b; w, b [C] may
  // be undefined.
  virtual void group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                          double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) = 0;
  // Its gradients; gx, gw, gb may each be undefined to skip them.
  virtual void group_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& w,
                                   const Tensor& mean, const Tensor& rstd, int64_t groups,
                                   const Tensor& gx, const Tensor& gw, const Tensor& gb) = 0;
  // y = silu(group_norm(x)), the UNet's normalise-then-activate, and its gradients, which
  // recompute the pre-activation from x, w, b, mean and rstd (nothing else is kept for
  // backward). These defaults compose the kernels above with silu; the CPU backend fuses them
  // into the group norm's passes (tensor/cpu/norm.cpp).
  virtual void group_norm_silu(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                               double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd);
  virtual void group_norm_silu_backward(const Tensor& gy, const Tensor& x, const Tensor& w,
                                        const Tensor& b, const Tensor& mean, const Tensor& rstd,
                                        int64_t groups, double eps, const Tensor& gx,
                                        const Tensor& gw, const Tensor& gb);

  // --- linear algebra -------------------------------------------------------------------------
  // c[b] = alpha * op(a[b]) @ op(b[b]) + beta * c[b] for 3-D a, b, c (batch, rows, cols);
  // op transposes when the flag is set. c is contiguous; a and b may have any strides.
  virtual void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
                    double beta, const Tensor& c) = 0;

  // --- convolution (NCHW, weight [C_out, C_in, kh, kw]) ----------------------------------------
  // out = conv2d(x, w) + bias (bias [C_out] may be undefined).
  virtual void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                              const Tensor& out, const Conv2dParams& p) = 0;
  // grad_input of conv2d; also the forward of conv_transpose2d. grad_x must be zeroed or not:
  // the kernel overwrites it.
  virtual void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Tensor& grad_x,
                                     const Conv2dParams& p) = 0;
  // grad_weight of conv2d (overwritten).
  virtual void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out,
                                      const Tensor& grad_w, const Conv2dParams& p) = 0;

  // --- pooling and resampling (NCHW) ------------------------------------------------------------
  virtual void avg_pool2d(const Tensor& x, const Tensor& out, const Pool2dParams& p) = 0;
  virtual void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x,
                                   const Pool2dParams& p) = 0;
  // indices (I64, out's shape) hold the flat h * W + w position of each window's maximum.
  virtual void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices,
                          const Pool2dParams& p) = 0;
  // p: the forward's window (a backward that gathers per input element needs it).
  virtual void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                                   const Tensor& grad_x, const Pool2dParams& p) = 0;
  virtual void upsample_nearest(const Tensor& x, const Tensor& out) = 0;
  virtual void upsample_nearest_backward(const Tensor& grad_out, const Tensor& grad_x) = 0;
  // Bilinear resize with align_corners=False (PyTorch's half-pixel convention).
  virtual void resize_bilinear(const Tensor& x, const Tensor& out) = 0;
  virtual void resize_bilinear_backward(const Tensor& grad_out, const Tensor& grad_x) = 0;

  // --- indexing ---------------------------------------------------------------------------------
  // out = x.index_select(dim, index)
  virtual void index_select(const Tensor& x, int64_t dim, const Tensor& index,
                            const Tensor& out) = 0;
  // out.index_add_(dim, index, src): out[.., index[i], ..] += src[.., i, ..]
  virtual void index_add(const Tensor& out, int64_t dim, const Tensor& index,
                         const Tensor& src) = 0;

  // --- optimiser updates, in place (operands contiguous, same shape, dtype and device) ---------
  // One Adam/AdamW step (tensor/optimizer_math.h) of param, with its moments exp_avg, exp_avg_sq.
  virtual void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                           const Tensor& exp_avg_sq, const AdamHyper& h) = 0;
  // y = a * x + b * y (EMA of weights, momentum buffers).
  virtual void axpby(double a, const Tensor& x, double b, const Tensor& y) = 0;
};

// The backend for a device; throws diffkd::Error if none is compiled in.
Backend& backend(Device device);
// dst = src across devices too: the backend of the non-CPU side does it.
void copy_tensor(const Tensor& src, const Tensor& dst);

}  // namespace diffkd

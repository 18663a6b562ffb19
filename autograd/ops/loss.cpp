// Losses, composed from differentiable ops (PyTorch's definitions and reductions):
//   mse_loss = reduce((x - t)^2)          l1_loss = reduce(|x - t|)
//   cross_entropy = -sum_c q_c log_softmax(x)_c, q = (1 - eps) onehot(t) + eps / C
//   kl_div(input = log p, target q) = reduce(q (log q - log p)), with 0 log 0 = 0;
//     log_target: q is given as log q, pointwise exp(log q) (log q - log p).
// Reductions: Mean (over all elements), Sum, BatchMean (sum / N, kl_div's mathematically
// correct choice), None.

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

namespace {

Tensor reduce(const Tensor& pointwise, Reduction r, const char* op) {
  switch (r) {
    case Reduction::None: return pointwise;
    case Reduction::Mean: return mean(pointwise);
    case Reduction::Sum: return sum(pointwise);
    case Reduction::BatchMean:
      DK_CHECK(pointwise.dim() >= 1, op, ": batchmean needs a batch dim");
      return sum(pointwise) * (1.0 / static_cast<double>(pointwise.size(0)));
  }
  fail(op, ": unknown reduction");
}

void check_same(const char* op, const Tensor& a, const Tensor& b) {
  DK_CHECK(a.shape() == b.shape(), op, ": input ", shape_str(a.shape()), " and target ",
           shape_str(b.shape()), " differ in shape");
}

// One-hot [N, C, ...] of class indices [N, ...], in x's dtype, a constant.
Tensor one_hot(const Tensor& target, const Tensor& logits) {
  const int64_t classes = logits.size(1);
  const std::vector<double> t = target.to_vector();
  Tensor oh = zeros(logits.shape(), DType::F64, cpu());
  double* p = oh.data<double>();
  const int64_t inner = logits.numel() / (logits.size(0) * classes);
  for (size_t i = 0; i < t.size(); ++i) {
    const auto cls = static_cast<int64_t>(t[i]);
    DK_CHECK(cls >= 0 && cls < classes, "cross_entropy: target ", cls, " out of range [0, ",
             classes, ")");
    const int64_t n = static_cast<int64_t>(i) / inner, s = static_cast<int64_t>(i) % inner;
    p[(n * classes + cls) * inner + s] = 1.0;
  }
  Tensor out = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  backend(logits.device()).copy(oh, out);
  return out;
}

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same("mse_loss", input, target);
  return reduce(square(input - target), r, "mse_loss");
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r) {
  check_same("l1_loss", input, target);
  return reduce(abs(input - target), r, "l1_loss");
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction r,
                     double label_smoothing) {
  DK_CHECK(logits.dim() >= 2, "cross_entropy: logits must be [N, C, ...], got ",
           shape_str(logits.shape()));
  DK_CHECK(target.dtype() == DType::I64, "cross_entropy: target must be i64 class indices, got ",
           dtype_name(target.dtype()));
  Shape expected = logits.shape();
  expected.erase(expected.begin() + 1);
  DK_CHECK(target.shape() == expected, "cross_entropy: target ", shape_str(target.shape()),
           " does not match logits ", shape_str(logits.shape()), " (expected ",
           shape_str(expected), ")");
  DK_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing ",
           label_smoothing, " outside [0, 1]");
  const double classes = static_cast<double>(logits.size(1));
  Tensor q = affine(one_hot(target, logits), 1.0 - label_smoothing, label_smoothing / classes);
  Tensor pointwise = -sum(log_softmax(logits, 1) * q, {1});
  DK_CHECK(r != Reduction::BatchMean, "cross_entropy: batchmean is not a reduction of it");
  return reduce(pointwise, r, "cross_entropy");
}

Tensor kl_div(const Tensor& input, const Tensor& target, Reduction r, bool log_target) {
  check_same("kl_div", input, target);
  Tensor pointwise;
  if (log_target) {
    pointwise = exp(target) * (target - input);
  } else {
    // q log q with 0 log 0 = 0: log is taken of max(q, tiny) and masked where q == 0.
    Tensor positive = gt(target, zeros_like(target));
    Tensor q_log_q = where(positive, target * log(where(positive, target, ones_like(target))),
                           zeros_like(target));
    pointwise = q_log_q - target * input;
  }
  return reduce(pointwise, r, "kl_div");
}

}  // namespace diffkd

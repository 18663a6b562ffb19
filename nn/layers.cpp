// The general-purpose layers (see layers.h): construction and PyTorch's default initialisation.

#include "nn/layers.h"

#include "dist/batch_collectives.h"

namespace diffkd::nn {

Linear::Linear(int64_t in_features, int64_t out_features, Generator& gen, bool with_bias) {
  DK_CHECK(in_features > 0 && out_features > 0, "Linear: features must be positive, got ",
           in_features, " -> ", out_features);
  weight = Tensor::empty({out_features, in_features});
  init::default_weight_(weight, gen);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::empty({out_features});
    init::default_bias_(bias, in_features, gen);
    register_parameter("bias", &bias);
  }
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Generator& gen,
               int64_t stride, int64_t padding, bool with_bias) {
  DK_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0,
           "Conv2d: invalid geometry in ", in_channels, " out ", out_channels, " kernel ", kernel,
           " stride ", stride, " padding ", padding);
  weight = Tensor::empty({out_channels, in_channels, kernel, kernel});
  init::default_weight_(weight, gen);
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::empty({out_channels});
    init::default_bias_(bias, init::fans(weight).in, gen);
    register_parameter("bias", &bias);
  }
  options.stride = {stride, stride};
  options.padding = {padding, padding};
}

Tensor Conv2d::forward(const Tensor& x) const { return conv2d(x, weight, bias, options); }

ConvTranspose2d::ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel,
                                 Generator& gen, int64_t stride, int64_t padding,
                                 int64_t output_padding, bool with_bias) {
  DK_CHECK(in_channels > 0 && out_channels > 0 && kernel > 0 && stride > 0 && padding >= 0 &&
               output_padding >= 0 && output_padding < stride,
           "ConvTranspose2d: invalid geometry in ", in_channels, " out ", out_channels, " kernel ",
           kernel, " stride ", stride, " padding ", padding, " output_padding ", output_padding);
  weight = Tensor::empty({in_channels, out_channels, kernel, kernel});
  init::default_weight_(weight, gen);  // fan_in = weight.size(1) * k * k, as PyTorch
  register_parameter("weight", &weight);
  if (with_bias) {
    bias = Tensor::empty({out_channels});
    init::default_bias_(bias, init::fans(weight).in, gen);
    register_parameter("bias", &bias);
  }
  options.stride = {stride, stride};
  options.padding = {padding, padding};
  options.output_padding = {output_padding, output_padding};
}

Tensor ConvTranspose2d::forward(const Tensor& x) const {
  return conv_transpose2d(x, weight, bias, options);
}

GroupNorm::GroupNorm(int64_t groups, int64_t channels, double eps) : groups(groups), eps(eps) {
  DK_CHECK(groups > 0 && channels % groups == 0, "GroupNorm: ", channels,
           " channels do not split into ", groups, " groups");
  weight = ones({channels});
  bias = zeros({channels});
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

LayerNorm::LayerNorm(const Shape& shape, double eps) : normalized_shape(shape), eps(eps) {
  weight = ones(shape);
  bias = zeros(shape);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return layer_norm(x, normalized_shape, weight, bias, eps);
}

BatchNorm::BatchNorm(int64_t channels, double eps, double momentum) : eps(eps), momentum(momentum) {
  weight = ones({channels});
  bias = zeros({channels});
  running_mean = zeros({channels});
  running_var = ones({channels});
  num_batches_tracked = zeros({}, DType::I64);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
  register_buffer("running_mean", &running_mean);
  register_buffer("running_var", &running_var);
  register_buffer("num_batches_tracked", &num_batches_tracked);
}

Tensor BatchNorm::forward(const Tensor& x) {
  if (is_training()) {
    NoGradGuard no_grad;
    assign(num_batches_tracked, full({}, num_batches_tracked.item() + 1, DType::I64));
  }
  if (is_training() && across != nullptr && across->size() > 1) {
    dist::Communicator& comm = *across;
    const BatchStatistics over_ranks{[&comm](const Tensor& t) { return dist::sum_over_ranks(t, comm); },
                                     static_cast<int64_t>(comm.sum(static_cast<double>(x.numel() / x.size(1))))};
    return batch_norm(x, running_mean, running_var, weight, bias, true, momentum, eps, &over_ranks);
  }
  return batch_norm(x, running_mean, running_var, weight, bias, is_training(), momentum, eps);
}

void sync_batch_norms(Module& root, dist::Communicator* comm) {
  if (auto* bn = dynamic_cast<BatchNorm*>(&root)) bn->across = comm;
  for (const auto& [name, child] : root.children()) sync_batch_norms(*child, comm);
}

Embedding::Embedding(int64_t num, int64_t dim, Generator& gen) {
  DK_CHECK(num > 0 && dim > 0, "Embedding: sizes must be positive, got ", num, " x ", dim);
  weight = Tensor::empty({num, dim});
  init::normal_(weight, 0.0, 1.0, gen);
  register_parameter("weight", &weight);
}

}  // namespace diffkd::nn

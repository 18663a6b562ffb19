#pragma once
// The general-purpose layers, named and initialised as their PyTorch counterparts
// (torch.nn.Linear, Conv2d, ...): same parameter names and shapes, same default initialisation
// (nn/init.h), so their state_dicts are interchangeable. Each forward is one or two calls into
// autograd/ops.h; shapes are noted where they change.

#include <cstdint>

#include "dist/communicator.h"
#include "nn/init.h"
#include "nn/module.h"

namespace diffkd::nn {

// y = x W^T + b; weight [out, in], bias [out].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, Generator& gen, bool bias = true);
  Tensor forward(const Tensor& x) const { return linear(x, weight, bias); }
  Tensor weight, bias;
};

// 2-D convolution; weight [out, in, k, k], bias [out].
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Generator& gen,
         int64_t stride = 1, int64_t padding = 0, bool bias = true);
  Tensor forward(const Tensor& x) const;  // [N, in, H, W] -> [N, out, H', W']
  Tensor weight, bias;
  Conv2dOptions options;
};

// Transposed convolution; weight [in, out, k, k] as PyTorch's.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel, Generator& gen,
                  int64_t stride = 1, int64_t padding = 0, int64_t output_padding = 0,
                  bool bias = true);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  Conv2dOptions options;
};

class GroupNorm : public Module {
 public:
  GroupNorm(int64_t groups, int64_t channels, double eps = 1e-5);
  Tensor forward(const Tensor& x) const { return group_norm(x, groups, weight, bias, eps); }
  // silu(forward(x)) as one fused op.
  Tensor forward_silu(const Tensor& x) const { return group_norm_silu(x, groups, weight, bias, eps); }
  Tensor weight, bias;
  int64_t groups;
  double eps;
};

class LayerNorm : public Module {
 public:
  explicit LayerNorm(const Shape& normalized_shape, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  Shape normalized_shape;
  double eps;
};

// BatchNorm1d ([N, C]) and BatchNorm2d ([N, C, H, W]) in one: batch statistics and running
// statistics (momentum, unbiased running variance) in training mode, running statistics in eval.
class BatchNorm : public Module {
 public:
  explicit BatchNorm(int64_t channels, double eps = 1e-5, double momentum = 0.1);
  Tensor forward(const Tensor& x);
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
  double eps, momentum;
  // Data-parallel training: the statistics over the rows of every rank of `across` (SyncBatchNorm);
  // nullptr, or one rank: over this process's rows.
  dist::Communicator* across = nullptr;
};

// Every BatchNorm in `root`'s tree takes its training statistics across the ranks of `comm`.
void sync_batch_norms(Module& root, dist::Communicator* comm);

class Dropout : public Module {
 public:
  explicit Dropout(double p) : p(p) {}
  Tensor forward(const Tensor& x) const { return dropout(x, p, is_training()); }
  double p;
};

// Rows of a table: weight [num, dim] ~ N(0, 1); forward takes int64 indices [N] -> [N, dim].
class Embedding : public Module {
 public:
  Embedding(int64_t num, int64_t dim, Generator& gen);
  Tensor forward(const Tensor& indices) const { return index_select(weight, 0, indices); }
  Tensor weight;
};

// Parameter-free activations as modules, for models assembled from layers.
class SiLU : public Module {
 public:
  Tensor forward(const Tensor& x) const { return silu(x); }
};
class Tanh : public Module {
 public:
  Tensor forward(const Tensor& x) const { return tanh(x); }
};
class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double slope = 0.01) : slope(slope) {}
  Tensor forward(const Tensor& x) const { return leaky_relu(x, slope); }
  double slope;
};

}  // namespace diffkd::nn

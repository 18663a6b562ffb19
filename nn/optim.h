#pragma once
// Optimisers over a module's named parameters, with PyTorch 1.13's update rules:
//   SGD (momentum, dampening 0, L2 weight decay):  b <- mu b + g;  p <- p - lr b
//   Adam / AdamW (tensor/optimizer_math.h), one fused kernel per parameter.
// Parameters without a gradient are skipped, as in PyTorch. state() names every moment after its
// parameter ("exp_avg.<param>"), for training-state checkpoints.

#include <string>

#include "nn/module.h"
#include "tensor/optimizer_math.h"

namespace diffkd::nn {

class Optimizer {
 public:
  explicit Optimizer(NamedTensors params);
  virtual ~Optimizer() = default;
  virtual void step() = 0;
  void zero_grad();
  virtual double lr() const = 0;
  virtual void set_lr(double lr) = 0;
  int64_t steps_taken() const { return steps_; }
  // Moments as named tensors and the step count, to save and restore exactly.
  virtual NamedTensors state() const = 0;
  virtual void load_state(const NamedTensors& state, int64_t steps, const std::string& source) = 0;
  const NamedTensors& params() const { return params_; }

 protected:
  NamedTensors params_;
  int64_t steps_ = 0;
};

struct SgdOptions {
  double lr = 0.01;
  double momentum = 0.0;
  double weight_decay = 0.0;
};

class SGD final : public Optimizer {
 public:
  SGD(NamedTensors params, const SgdOptions& options);
  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override { options_.lr = lr; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state, int64_t steps, const std::string& source) override;

 private:
  SgdOptions options_;
  TensorList momentum_;  // undefined until a parameter's first step
};

// Adam (decoupled_weight_decay false) or AdamW (true).
class Adam final : public Optimizer {
 public:
  Adam(NamedTensors params, const AdamHyper& options);
  void step() override;
  double lr() const override { return options_.lr; }
  void set_lr(double lr) override { options_.lr = lr; }
  NamedTensors state() const override;
  void load_state(const NamedTensors& state, int64_t steps, const std::string& source) override;

 private:
  AdamHyper options_;
  TensorList exp_avg_, exp_avg_sq_;
  std::vector<int64_t> param_steps_;  // per parameter, as PyTorch (a parameter may miss a step)
};

// Scales all gradients so that their global L2 norm is at most max_norm (by
// max_norm / (norm + 1e-6), as torch.nn.utils.clip_grad_norm_); returns the norm before clipping.
double clip_grad_norm(const TensorList& params, double max_norm);

}  // namespace diffkd::nn

#pragma once
// Exponential moving average of a model's weights (Polyak averaging, as in Ho et al. 2020 and
// every codebase of METHODS.md): shadow <- decay * shadow + (1 - decay) * weights after each
// optimiser step. Before start_step the shadow simply copies the weights, so early, fast-moving
// weights do not linger in it. Buffers (BatchNorm statistics) are copied, not averaged.
// With a ramp-up ratio r > 0 (EDM, Karras et al. 2022, and SiD: ema_rampup_ratio 0.05) the
// half-life is also capped at r times the steps already taken, so the average never reaches back
// further than a fraction of the run: decay at step k = min(decay, 0.5^(1 / (r (k - 1)))).

#include "nn/module.h"

namespace diffkd::nn {

class Ema {
 public:
  Ema(const Module& model, double decay, int64_t start_step = 0, double rampup_ratio = 0);
  // Call after optimiser step number `step` (1-based).
  void update(const Module& model, int64_t step);
  // Writes the averaged weights into a module of the same structure (e.g. for sampling).
  void copy_to(Module& model) const;
  const NamedTensors& shadow() const { return shadow_; }
  void load(const NamedTensors& state, const std::string& source);
  double decay() const { return decay_; }
  // The decay update(model, step) applies (the ramp-up's cap included).
  double decay_at(int64_t step) const;

 private:
  NamedTensors shadow_;  // the model's state_dict layout, own storage
  std::vector<bool> averaged_;  // parameters are averaged, buffers copied
  double decay_;
  int64_t start_step_;
  double rampup_ratio_;
};

}  // namespace diffkd::nn

// EMA of weights (see ema.h).

#include "nn/ema.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "tensor/backend.h"

namespace diffkd::nn {

Ema::Ema(const Module& model, double decay, int64_t start_step, double rampup_ratio)
    : decay_(decay), start_step_(start_step), rampup_ratio_(rampup_ratio) {
  DK_CHECK(decay >= 0 && decay <= 1, "EMA: decay must be in [0, 1], got ", decay);
  DK_CHECK(rampup_ratio >= 0 && std::isfinite(rampup_ratio), "EMA: the ramp-up ratio must be >= 0, got ", rampup_ratio);
  std::set<std::string> parameter_names;
  for (const auto& [name, t] : model.named_parameters()) parameter_names.insert(name);
  for (const auto& [name, t] : model.state_dict()) {
    shadow_.emplace_back(name, t.detach().clone_data());
    averaged_.push_back(parameter_names.count(name) > 0);
  }
}

double Ema::decay_at(int64_t step) const {
  if (rampup_ratio_ <= 0) return decay_;
  const double half_life = rampup_ratio_ * static_cast<double>(step - 1);  // in steps
  return half_life <= 0 ? 0.0 : std::min(decay_, std::pow(0.5, 1.0 / half_life));
}

void Ema::update(const Module& model, int64_t step) {
  NoGradGuard no_grad;
  const NamedTensors current = model.state_dict();
  DK_CHECK(current.size() == shadow_.size(), "EMA: the model has ", current.size(),
           " tensors, the average ", shadow_.size());
  const bool copy_only = step <= start_step_;
  const double decay = decay_at(step);
  for (size_t i = 0; i < shadow_.size(); ++i) {
    const Tensor& target = shadow_[i].second;
    const Tensor& weights = current[i].second;
    if (copy_only || !averaged_[i])
      assign(target, weights);
    else
      backend(target.device()).axpby(1.0 - decay, weights.detach(), decay, target);
  }
}

void Ema::copy_to(Module& model) const { model.load_state_dict(shadow_, "EMA weights"); }

void Ema::load(const NamedTensors& state, const std::string& source) {
  DK_CHECK(state.size() == shadow_.size(), source, ": EMA holds ", state.size(),
           " tensors, the model ", shadow_.size());
  for (size_t i = 0; i < shadow_.size(); ++i) {
    DK_CHECK(state[i].first == shadow_[i].first, source, ": EMA tensor ", i, " is '",
             state[i].first, "', expected '", shadow_[i].first, "'");
    assign(shadow_[i].second, state[i].second);
  }
}

}  // namespace diffkd::nn

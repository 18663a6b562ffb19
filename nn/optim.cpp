// SGD, Adam/AdamW and gradient clipping (see optim.h).

#include "nn/optim.h"

#include <cmath>
#include <map>

#include "tensor/backend.h"

namespace diffkd::nn {

namespace {

// A parameter's gradient as a contiguous tensor of the parameter's shape, or undefined.
Tensor contiguous_grad(const Tensor& p) {
  Tensor g = p.grad();
  if (!g.defined()) return g;
  return g.is_contiguous() ? g : g.clone_data();
}

std::map<std::string, Tensor> by_name(const NamedTensors& state) {
  return std::map<std::string, Tensor>(state.begin(), state.end());
}

// Loads state[key] into dst (allocating dst like `like` if undefined) or throws naming source.
void load_moment(const std::map<std::string, Tensor>& state, const std::string& key,
                 const Tensor& like, Tensor& dst, const std::string& source) {
  auto it = state.find(key);
  DK_CHECK(it != state.end(), source, ": missing optimiser tensor '", key, "'");
  DK_CHECK(it->second.shape() == like.shape(), source, ": optimiser tensor '", key, "' has shape ",
           shape_str(it->second.shape()), ", the parameter is ", shape_str(like.shape()));
  if (!dst.defined()) dst = Tensor::empty(like.shape(), like.dtype(), like.device());
  assign(dst, it->second);
}

}  // namespace

Optimizer::Optimizer(NamedTensors params) : params_(std::move(params)) {}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

// --- SGD ------------------------------------------------------------------------------------------

SGD::SGD(NamedTensors params, const SgdOptions& options)
    : Optimizer(std::move(params)), options_(options), momentum_(params_.size()) {}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    Tensor g = contiguous_grad(p);
    if (!g.defined()) continue;
    Backend& be = backend(p.device());
    if (options_.weight_decay != 0) {
      g = g.clone_data();
      be.axpby(options_.weight_decay, p, 1.0, g);  // g += wd * p
    }
    if (options_.momentum != 0) {
      if (!momentum_[i].defined()) {
        momentum_[i] = g.clone_data();  // PyTorch: the first buffer is the gradient itself
      } else {
        be.axpby(1.0, g, options_.momentum, momentum_[i]);
      }
      g = momentum_[i];
    }
    be.axpby(-options_.lr, g, 1.0, p);
  }
  ++steps_;
}

NamedTensors SGD::state() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i)
    if (momentum_[i].defined()) out.emplace_back("momentum." + params_[i].first, momentum_[i]);
  return out;
}

void SGD::load_state(const NamedTensors& state, int64_t steps, const std::string& source) {
  const auto named = by_name(state);
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string key = "momentum." + params_[i].first;
    if (named.count(key)) load_moment(named, key, params_[i].second, momentum_[i], source);
  }
  steps_ = steps;
}

// --- Adam -----------------------------------------------------------------------------------------

Adam::Adam(NamedTensors params, const AdamHyper& options)
    : Optimizer(std::move(params)), options_(options), exp_avg_(params_.size()),
      exp_avg_sq_(params_.size()), param_steps_(params_.size(), 0) {
  DK_CHECK(options.lr >= 0 && options.eps >= 0 && options.beta1 >= 0 && options.beta1 < 1 &&
               options.beta2 >= 0 && options.beta2 < 1 && options.weight_decay >= 0,
           "Adam: invalid hyperparameters lr ", options.lr, " betas (", options.beta1, ", ",
           options.beta2, ") eps ", options.eps, " weight_decay ", options.weight_decay);
}

void Adam::step() {
  NoGradGuard no_grad;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i].second;
    const Tensor g = contiguous_grad(p);
    if (!g.defined()) continue;
    if (!exp_avg_[i].defined()) {
      exp_avg_[i] = zeros_like(p);
      exp_avg_sq_[i] = zeros_like(p);
    }
    AdamHyper h = options_;
    h.step = ++param_steps_[i];
    backend(p.device()).adam_update(p, g, exp_avg_[i], exp_avg_sq_[i], h);
  }
  ++steps_;
}

NamedTensors Adam::state() const {
  NamedTensors out;
  for (size_t i = 0; i < params_.size(); ++i) {
    if (!exp_avg_[i].defined()) continue;
    out.emplace_back("exp_avg." + params_[i].first, exp_avg_[i]);
    out.emplace_back("exp_avg_sq." + params_[i].first, exp_avg_sq_[i]);
    out.emplace_back("step." + params_[i].first, full({}, static_cast<double>(param_steps_[i]), DType::I64));
  }
  return out;
}

void Adam::load_state(const NamedTensors& state, int64_t steps, const std::string& source) {
  const auto named = by_name(state);
  for (size_t i = 0; i < params_.size(); ++i) {
    const std::string& name = params_[i].first;
    if (!named.count("exp_avg." + name)) continue;  // never stepped
    load_moment(named, "exp_avg." + name, params_[i].second, exp_avg_[i], source);
    load_moment(named, "exp_avg_sq." + name, params_[i].second, exp_avg_sq_[i], source);
    auto it = named.find("step." + name);
    DK_CHECK(it != named.end(), source, ": missing optimiser tensor 'step.", name, "'");
    param_steps_[i] = static_cast<int64_t>(it->second.item());
  }
  steps_ = steps;
}

// --- clipping -------------------------------------------------------------------------------------

double clip_grad_norm(const TensorList& params, double max_norm) {
  NoGradGuard no_grad;
  // Summed where the gradients are, in f64, and read once (on a GPU, one host sync per step, not
  // one per parameter); on the CPU the same additions in the same order as a double accumulator.
  Tensor total_sq;
  for (const Tensor& p : params) {
    const Tensor g = p.grad();
    if (!g.defined()) continue;
    const Tensor sq = sum(square(to_dtype(g, DType::F64)));
    total_sq = total_sq.defined() ? total_sq + sq : sq;
  }
  const double norm = total_sq.defined() ? std::sqrt(total_sq.item()) : 0.0;
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0)
    for (const Tensor& p : params) {
      const Tensor g = p.grad();
      if (g.defined()) backend(g.device()).unary(UnaryOp::Affine, g, g, coef, 0.0);
    }
  return norm;
}

}  // namespace diffkd::nn

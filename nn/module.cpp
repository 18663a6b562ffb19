// Module: registration, name composition, mode switches and weight copies (see module.h).

#include "nn/module.h"

#include <map>
#include <set>

#include "autograd/ops.h"
#include "tensor/backend.h"

namespace diffkd::nn {

void assign(const Tensor& dst, const Tensor& src) {
  DK_CHECK(dst.shape() == src.shape(), "assign: source ", shape_str(src.shape()),
           " does not match destination ", shape_str(dst.shape()));
  NoGradGuard no_grad;
  copy_tensor(src, dst);
}

void Module::register_parameter(const std::string& name, Tensor* slot) {
  DK_CHECK(slot->defined(), "register_parameter: ", name, " is undefined");
  if (!slot->requires_grad()) slot->requires_grad_(true);
  parameters_.emplace_back(name, slot);
}

void Module::register_buffer(const std::string& name, Tensor* slot) {
  DK_CHECK(slot->defined(), "register_buffer: ", name, " is undefined");
  buffers_.emplace_back(name, slot);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> child) {
  DK_CHECK(child != nullptr, "register_module: ", name, " is null");
  child->train(training_);
  children_.emplace_back(name, std::move(child));
}

void Module::collect(const std::string& prefix, bool params, bool buffers,
                     NamedTensors& out) const {
  if (params)
    for (const auto& [name, slot] : parameters_) out.emplace_back(prefix + name, *slot);
  if (buffers)
    for (const auto& [name, slot] : buffers_) out.emplace_back(prefix + name, *slot);
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", params, buffers, out);
}

void Module::collect_slots(const std::string& prefix,
                           std::vector<std::pair<std::string, Tensor*>>& out) const {
  for (const auto& [name, slot] : parameters_) out.emplace_back(prefix + name, slot);
  for (const auto& [name, slot] : buffers_) out.emplace_back(prefix + name, slot);
  for (const auto& [name, child] : children_) child->collect_slots(prefix + name + ".", out);
}

NamedTensors Module::named_parameters() const {
  NamedTensors out;
  collect("", true, false, out);
  return out;
}

NamedTensors Module::named_buffers() const {
  NamedTensors out;
  collect("", false, true, out);
  return out;
}

NamedTensors Module::state_dict() const {
  NamedTensors out;
  collect("", true, true, out);
  return out;
}

TensorList Module::parameters() const {
  TensorList out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::set_requires_grad(bool enabled) {
  for (auto& [name, t] : named_parameters()) {
    t.zero_grad();
    t.requires_grad_(enabled);
  }
}

void Module::to_dtype(DType dtype) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  for (auto& [name, slot] : slots) {
    if (!is_floating(slot->dtype()) || slot->dtype() == dtype) continue;
    const bool trainable = slot->requires_grad();
    *slot = diffkd::to_dtype(slot->detach(), dtype).clone_data();
    if (trainable) slot->requires_grad_();
  }
}

void Module::to(Device device) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  for (auto& [name, slot] : slots) {
    if (slot->device() == device) continue;
    const bool trainable = slot->requires_grad();
    *slot = diffkd::to_device(slot->detach(), device);
    if (trainable) slot->requires_grad_();
  }
}

Device Module::device() const {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  return slots.empty() ? cpu() : slots.front().second->device();
}

void Module::zero_grad() {
  for (auto& [name, t] : named_parameters()) t.zero_grad();
}

namespace {

// A weight stored with size-1 dimensions added or dropped at the end holds the same values in the
// same order: a 1x1 Conv2d's [3C, C, 1, 1] for our Conv1d-shaped attention projection [3C, C, 1]
// (as PyTorch UNets write it). Vectors are not matched this way: [C] against [C, 1] is more
// likely a wrong tensor than a reshaped one.
bool same_but_trailing_ones(Shape a, Shape b) {
  if (a.size() < 2 || b.size() < 2) return false;
  while (a.size() > 2 && a.back() == 1) a.pop_back();
  while (b.size() > 2 && b.back() == 1) b.pop_back();
  return a == b;
}

}  // namespace

void Module::load_state_dict(const NamedTensors& state, const std::string& source) {
  std::vector<std::pair<std::string, Tensor*>> slots;
  collect_slots("", slots);
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : state) {
    DK_CHECK(given.emplace(name, &t).second, source, ": tensor '", name, "' appears twice");
  }
  std::set<std::string> used;
  for (const auto& [name, slot] : slots) {
    auto it = given.find(name);
    DK_CHECK(it != given.end(), source, ": missing tensor '", name, "' (expected shape ",
             shape_str(slot->shape()), ")");
    DK_CHECK(it->second->shape() == slot->shape() || same_but_trailing_ones(it->second->shape(), slot->shape()), source,
             ": tensor '", name, "' has shape ", shape_str(it->second->shape()), ", the model expects ",
             shape_str(slot->shape()));
    DK_CHECK(is_floating(it->second->dtype()) == is_floating(slot->dtype()), source,
             ": tensor '", name, "' is ", dtype_name(it->second->dtype()), ", the model expects ",
             dtype_name(slot->dtype()));
    used.insert(name);
  }
  for (const auto& [name, t] : state)
    DK_CHECK(used.count(name), source, ": unexpected tensor '", name, "' ", shape_str(t.shape()),
             " (the model has no such parameter or buffer)");
  for (const auto& [name, slot] : slots) {
    const Tensor& src = *given.at(name);
    assign(*slot, src.shape() == slot->shape() ? src : reshape(src, slot->shape()));
  }
}

void Module::copy_weights_from(const Module& other) {
  load_state_dict(other.state_dict(), "copy_weights_from");
}

}  // namespace diffkd::nn

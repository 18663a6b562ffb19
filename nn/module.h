#pragma once
// Module: the base of every layer and model. It holds named parameters, buffers and child
// modules, and composes their names as PyTorch's state_dict does ("input_blocks.1.0.in_layers.0.weight"),
// so diffkd checkpoints and PyTorch state_dicts map one to one.
//
// A module owns its tensors as plain members and registers their addresses; updates (loading,
// copying weights, optimiser steps) write into the existing storage, so every handle to a
// parameter (an optimiser's, a caller's) stays valid. Modules are not copyable: a student starts
// as a copy of its teacher through copy_weights_from.
//
//   struct Affine : Module {
//     Tensor weight;
//     explicit Affine(int64_t n) { weight = ones({n}); register_parameter("weight", &weight); }
//   };

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/ops.h"

namespace diffkd::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Depth first, in registration order: own tensors, then each child's under "child.".
  NamedTensors named_parameters() const;
  NamedTensors named_buffers() const;
  // Parameters and buffers (PyTorch's state_dict: per module, parameters then buffers).
  NamedTensors state_dict() const;
  TensorList parameters() const;
  int64_t parameter_count() const;

  // Training mode (dropout on, batch statistics) for this module and every descendant.
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // Freezes (false) or unfreezes (true) every parameter.
  void set_requires_grad(bool enabled);
  // Converts every floating-point parameter and buffer to `dtype` (f64 for gradchecks and goldens).
  void to_dtype(DType dtype);
  // Moves every parameter and buffer to `device` (trainable parameters stay trainable). The slots
  // get new tensors: an optimiser or EMA made before still holds the old ones, so move first.
  void to(Device device);
  // Where the parameters live (the first one's device; cpu for a module without any).
  Device device() const;
  void zero_grad();

  // Copies every tensor of `state` into the tensor of the same name. Every name must exist on
  // both sides with the same shape; the first mismatch is reported, prefixed with `source`
  // (e.g. the checkpoint's path). dtypes are converted.
  void load_state_dict(const NamedTensors& state, const std::string& source = "state_dict");
  // Copies the weights and buffers of a module of the same structure (a student from its teacher).
  void copy_weights_from(const Module& other);

  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 protected:
  // The tensor at `slot` becomes a parameter (requires grad) named `name`.
  void register_parameter(const std::string& name, Tensor* slot);
  void register_buffer(const std::string& name, Tensor* slot);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> child) {
    add_child(name, child);
    return child;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> child);
  void collect(const std::string& prefix, bool params, bool buffers, NamedTensors& out) const;
  void collect_slots(const std::string& prefix,
                     std::vector<std::pair<std::string, Tensor*>>& out) const;

  std::vector<std::pair<std::string, Tensor*>> parameters_;
  std::vector<std::pair<std::string, Tensor*>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Writes src's values into dst's storage (same shape; dtype converted), outside any graph.
void assign(const Tensor& dst, const Tensor& src);

}  // namespace diffkd::nn

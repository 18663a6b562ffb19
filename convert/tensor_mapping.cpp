// SourceTensors and TargetState (see tensor_mapping.h).

#include "convert/tensor_mapping.h"

#include "autograd/grad_mode.h"
#include "nn/unet.h"
#include "tensor/error.h"

namespace diffkd::convert {

SourceTensors::SourceTensors(const safetensors::Contents& file, const std::string& layout, const std::string& prefix)
    : path_(file.path), layout_(layout), prefix_(prefix) {
  for (const auto& [name, tensor] : file.tensors) {
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = name.substr(prefix.size());
    tensors_[key] = is_floating(tensor.dtype()) ? to_dtype(tensor, DType::F32) : tensor;
    order_.push_back(key);
  }
  if (tensors_.empty()) fail(prefix.empty() ? "the file holds no tensors" : "the file holds no tensor named " + prefix + "*");
}

void SourceTensors::fail(const std::string& what) const { diffkd::fail(path_, ": ", layout_, " layout: ", what); }

const Shape& SourceTensors::shape_of(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end())
    fail("no tensor '" + prefix_ + name + "'" + (order_.empty() ? "" : " (the file's first is '" + prefix_ + order_[0] + "')"));
  return it->second.shape();
}

const Shape& SourceTensors::shape_of(const std::string& name, size_t rank) const {
  const Shape& shape = shape_of(name);
  bool fits = shape.size() == rank;
  for (int64_t d : shape) fits = fits && d > 0;
  if (!fits)
    fail("tensor '" + prefix_ + name + "' is " + shape_str(shape) + ", expected " + std::to_string(rank) +
         " non-empty dimensions");
  return shape;
}

std::vector<std::string> SourceTensors::names_starting_with(const std::string& start) const {
  std::vector<std::string> names;
  for (const std::string& name : order_)
    if (name.compare(0, start.size(), start) == 0) names.push_back(name);
  return names;
}

Tensor SourceTensors::take(const std::string& name, const Shape& shape) {
  const Shape& have = shape_of(name);
  bool fits = have.size() >= shape.size();
  for (size_t i = 0; fits && i < have.size(); ++i) fits = i < shape.size() ? have[i] == shape[i] : have[i] == 1;
  if (!fits) fail("tensor '" + prefix_ + name + "' is " + shape_str(have) + ", the derived model expects " + shape_str(shape));
  if (!taken_.insert(name).second) fail("tensor '" + prefix_ + name + "' is used twice (a mapping error)");
  return reshape(tensors_.at(name), shape);
}

void SourceTensors::check_all_taken() const {
  for (const std::string& name : order_)
    if (!taken_.count(name))
      fail("tensor '" + prefix_ + name + "' " + shape_str(tensors_.at(name).shape()) +
           " has no place in the model derived from the file (a different architecture or layout?)");
}

TargetState::TargetState(SourceTensors& source, const nn::UNetConfig& config) : source_(source) {
  NoGradGuard no_grad;
  const nn::UNet model(config);
  for (const auto& [name, tensor] : model.state_dict()) {
    shapes_[name] = tensor.shape();
    order_.push_back(name);
  }
}

const Shape& TargetState::shape_of(const std::string& ours) const {
  const auto it = shapes_.find(ours);
  DK_CHECK(it != shapes_.end(), "convert: the derived model has no tensor ", ours, " (a mapping error)");
  return it->second;
}

void TargetState::set(const std::string& ours, const Tensor& value) {
  DK_CHECK(value.shape() == shape_of(ours), "convert: ", ours, " gets ", shape_str(value.shape()), ", expected ",
           shape_str(shape_of(ours)), " (a mapping error)");
  DK_CHECK(filled_.emplace(ours, contiguous(value)).second, "convert: ", ours, " is filled twice (a mapping error)");
}

void TargetState::copy(const std::string& ours, const std::string& theirs) {
  set(ours, source_.take(theirs, shape_of(ours)));
}

void TargetState::copy_layer(const std::string& ours, const std::string& theirs) {
  copy(ours + ".weight", theirs + ".weight");
  copy(ours + ".bias", theirs + ".bias");
}

void TargetState::resblock(const std::string& ours, const std::string& theirs, const ResBlockNames& n) {
  copy_layer(ours + ".in_layers.0", theirs + n.in_norm);
  copy_layer(ours + ".in_layers.2", theirs + n.in_conv);
  copy_layer(ours + ".emb_layers.1", theirs + n.emb_proj);
  copy_layer(ours + ".out_layers.0", theirs + n.out_norm);
  copy_layer(ours + ".out_layers.3", theirs + n.out_conv);
  if (has(ours + ".skip_connection.weight")) copy_layer(ours + ".skip_connection", theirs + n.skip);
}

void TargetState::attention(const std::string& ours, const std::string& theirs, const AttentionNames& n) {
  NoGradGuard no_grad;
  copy_layer(ours + ".norm", theirs + n.norm);
  const int64_t c = shape_of(ours + ".proj_out.weight")[0];
  TensorList weights, biases;
  for (const std::string* part : {&n.q, &n.k, &n.v}) {
    weights.push_back(source_.take(theirs + *part + ".weight", {c, c}));
    biases.push_back(source_.take(theirs + *part + ".bias", {c}));
  }
  set(ours + ".qkv.weight", reshape(concat(weights, 0), {3 * c, c, 1}));
  set(ours + ".qkv.bias", concat(biases, 0));
  set(ours + ".proj_out.weight", reshape(source_.take(theirs + n.proj + ".weight", {c, c}), {c, c, 1}));
  set(ours + ".proj_out.bias", source_.take(theirs + n.proj + ".bias", {c}));
}

nn::NamedTensors TargetState::finish() {
  source_.check_all_taken();
  nn::NamedTensors state;
  for (const std::string& name : order_) {
    const auto it = filled_.find(name);
    DK_CHECK(it != filled_.end(), "convert: nothing was mapped to ", name, " (a mapping error)");
    state.emplace_back(name, it->second);
  }
  return state;
}

}  // namespace diffkd::convert

// Model and training-state checkpoints (see checkpoint.h).

#include "nn/checkpoint.h"

namespace diffkd::nn {

namespace {
const char kOptimizerPrefix[] = "optimizer.";
const char kEmaPrefix[] = "ema.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

int64_t metadata_int(const Metadata& metadata, const std::string& key, const std::string& path) {
  auto it = metadata.find(key);
  DK_CHECK(it != metadata.end(), path, ": metadata field '", key, "' is missing");
  try {
    size_t used = 0;
    const int64_t value = std::stoll(it->second, &used);
    if (used == it->second.size()) return value;
  } catch (const std::exception&) {
  }
  fail(path, ": metadata field '", key, "' should be an integer, found \"", it->second, "\"");
}

void save_model(const std::string& path, const Module& model, const std::string& config_json,
                Metadata metadata) {
  metadata["config"] = config_json;
  metadata["format"] = "pt";  // PyTorch state_dict names, loadable by safetensors.torch
  safetensors::save(path, model.state_dict(), metadata);
}

Metadata load_model(const std::string& path, Module& model) {
  const safetensors::Contents file = safetensors::load(path);
  model.load_state_dict(file.tensors, path);
  return file.metadata;
}

std::unique_ptr<UNet> load_unet(const std::string& path) {
  const safetensors::Contents file = safetensors::load(path);
  auto config = file.metadata.find("config");
  DK_CHECK(config != file.metadata.end(), path,
           ": no model config in the metadata (is this a diffkd model checkpoint?)");
  auto net = std::make_unique<UNet>(UNetConfig::from_json(config->second, path + " config"));
  net->load_state_dict(file.tensors, path);
  return net;
}

void save_training_state(const std::string& path, const Optimizer& optimizer, const Ema* ema,
                         Metadata metadata) {
  safetensors::NamedTensors tensors;
  for (const auto& [name, t] : optimizer.state()) tensors.emplace_back(kOptimizerPrefix + name, t);
  if (ema)
    for (const auto& [name, t] : ema->shadow()) tensors.emplace_back(kEmaPrefix + name, t);
  metadata["optimizer_steps"] = std::to_string(optimizer.steps_taken());
  metadata["has_ema"] = std::to_string(ema != nullptr ? 1 : 0);
  safetensors::save(path, tensors, metadata);
}

Metadata load_training_state(const std::string& path, Optimizer& optimizer, Ema* ema) {
  const safetensors::Contents file = safetensors::load(path);
  NamedTensors optimizer_state, ema_state;
  for (const auto& [name, t] : file.tensors) {
    if (starts_with(name, kOptimizerPrefix))
      optimizer_state.emplace_back(name.substr(sizeof(kOptimizerPrefix) - 1), t);
    else if (starts_with(name, kEmaPrefix))
      ema_state.emplace_back(name.substr(sizeof(kEmaPrefix) - 1), t);
    else
      fail(path, ": unexpected tensor '", name, "' in a training-state file");
  }
  optimizer.load_state(optimizer_state, metadata_int(file.metadata, "optimizer_steps", path), path);
  const bool has_ema = metadata_int(file.metadata, "has_ema", path) != 0;
  DK_CHECK(has_ema == (ema != nullptr), path, ": the file ", has_ema ? "has" : "has no",
           " EMA weights, the run ", ema ? "expects them" : "does not use EMA");
  if (ema) {
    // The file orders tensors by data offset (sorted by name); the EMA wants the model's order.
    std::map<std::string, Tensor> by_name(ema_state.begin(), ema_state.end());
    NamedTensors ordered;
    for (const auto& [name, t] : ema->shadow()) {
      auto it = by_name.find(name);
      DK_CHECK(it != by_name.end(), path, ": EMA tensor '", name, "' is missing");
      ordered.emplace_back(name, it->second);
    }
    DK_CHECK(ordered.size() == ema_state.size(), path, ": the file has ", ema_state.size(),
             " EMA tensors, the model ", ordered.size());
    ema->load(ordered, path);
  }
  return file.metadata;
}

}  // namespace diffkd::nn

#pragma once
// Checkpoints on safetensors (nn/safetensors.h), always written atomically (temp file, fsync,
// rename), so an interrupted write never costs the previous checkpoint:
//  * a model file: the module's state_dict, with the model's config JSON under
//    `__metadata__["config"]` (so the file alone rebuilds the model) and any caller metadata;
//  * a training-state file: the optimiser's moments ("optimizer.<...>") and the EMA weights
//    ("ema.<name>") as tensors; the optimiser's step count and the caller's metadata (step, RNG
//    state, data position) as strings.

#include <memory>
#include <string>

#include "nn/ema.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/unet.h"

namespace diffkd::nn {

using Metadata = safetensors::Metadata;

void save_model(const std::string& path, const Module& model, const std::string& config_json,
                Metadata metadata = {});
// Loads the weights into `model` (names and shapes checked); returns the file's metadata.
Metadata load_model(const std::string& path, Module& model);
// Builds the UNet that a model file describes and loads its weights.
std::unique_ptr<UNet> load_unet(const std::string& path);

void save_training_state(const std::string& path, const Optimizer& optimizer, const Ema* ema,
                         Metadata metadata = {});
// Restores optimiser (and EMA, if given); returns the metadata for the caller's own fields.
Metadata load_training_state(const std::string& path, Optimizer& optimizer, Ema* ema);

// Reads an integer metadata field, naming the file and field when it is missing or malformed.
int64_t metadata_int(const Metadata& metadata, const std::string& key, const std::string& path);

}  // namespace diffkd::nn

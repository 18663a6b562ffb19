#pragma once
// Model presets: the JSON files of configs/, compiled into the library so the binary needs no
// files beside it. A preset is {"description": "...", "unet": {UNet fields}} (or "generator" for
// Adv-KD's staged generator); the model argument
// of every command is a preset name or the path of such a file.

#include <string>
#include <vector>

#include "nn/adversarial.h"
#include "nn/unet_config.h"

namespace diffkd::nn {

std::vector<std::string> preset_names();
// The JSON text of a built-in preset; throws listing the available ones.
std::string preset_json(const std::string& name);
// A preset name, or a path to a JSON file (anything with '/' or ending in ".json").
UNetConfig load_unet_config(const std::string& name_or_path);
// Adv-KD generator presets hold {"generator": {...}} instead of "unet".
bool is_generator_config(const std::string& name_or_path);
StagedGeneratorConfig load_generator_config(const std::string& name_or_path);
std::string preset_description(const std::string& name);

}  // namespace diffkd::nn

// Built-in presets (generated from configs/*.json by CMakeLists.txt) and config loading.

#include "nn/presets.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "tensor/error.h"

namespace diffkd::nn {

namespace {

const std::vector<std::pair<std::string, std::string>>& presets() {
  static const std::vector<std::pair<std::string, std::string>> table = {
#include "diffkd_presets.inc"
  };
  return table;
}

nlohmann::json parse(const std::string& text, const std::string& source) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number too big
    fail(source, ": invalid JSON (", e.what(), ")");
  }
}

bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() > 5 && s.compare(s.size() - 5, 5, ".json") == 0);
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, text] : presets()) names.push_back(name);
  return names;
}

std::string preset_json(const std::string& name) {
  for (const auto& [preset, text] : presets())
    if (preset == name) return text;
  std::string known;
  for (const auto& [preset, text] : presets()) known += (known.empty() ? "" : ", ") + preset;
  fail("unknown model preset '", name, "' (built-in presets: ", known,
       "; or give the path of a JSON file)");
}

std::string preset_description(const std::string& name) {
  const nlohmann::json j = parse(preset_json(name), "preset " + name);
  return j.value("description", "");
}

namespace {

// The JSON of a preset or a file, and a name for it in messages.
std::pair<nlohmann::json, std::string> read_config(const std::string& name_or_path) {
  std::string text, source;
  if (looks_like_path(name_or_path)) {
    std::ifstream in(name_or_path);
    DK_CHECK(in.good(), name_or_path, ": cannot open model config");
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    source = name_or_path;
  } else {
    text = preset_json(name_or_path);
    source = "preset " + name_or_path;
  }
  return {parse(text, source), source};
}

}  // namespace

bool is_generator_config(const std::string& name_or_path) {
  const auto [j, source] = read_config(name_or_path);
  return j.is_object() && j.contains("generator");
}

UNetConfig load_unet_config(const std::string& name_or_path) {
  const auto [j, source] = read_config(name_or_path);
  DK_CHECK(j.is_object() && j.contains("unet"), source, ": expected an object with a \"unet\" field");
  return UNetConfig::from_json(j.at("unet").dump(), source + " \"unet\"");
}

StagedGeneratorConfig load_generator_config(const std::string& name_or_path) {
  const auto [j, source] = read_config(name_or_path);
  DK_CHECK(j.is_object() && j.contains("generator"), source, ": expected an object with a \"generator\" field");
  return StagedGeneratorConfig::from_json(j.at("generator").dump(), source + " \"generator\"");
}

}  // namespace diffkd::nn

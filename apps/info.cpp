// `diffkd info`: what a model preset or config file builds — its layers' widths, its exact
// parameter count and its config — or, with no --model, every built-in preset and its size.

#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "nn/presets.h"
#include "nn/unet.h"

namespace diffkd::apps {

namespace {

std::string model_arg;

// 35746307 -> "35,746,307"
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

int run_info() {
  if (model_arg.empty()) {
    std::printf("%-24s %14s  %s\n", "preset", "parameters", "description");
    for (const std::string& name : nn::preset_names()) {
      const nn::UNet net(nn::load_unet_config(name));
      std::printf("%-24s %14s  %s\n", name.c_str(), with_commas(net.parameter_count()).c_str(),
                  nn::preset_description(name).c_str());
    }
    return 0;
  }
  const nn::UNetConfig config = nn::load_unet_config(model_arg);
  const nn::UNet net(config);
  std::printf("model: %s\nconfig: %s\n", model_arg.c_str(), config.to_json().c_str());
  std::printf("tensors: %zu parameters, %zu buffers\n", net.named_parameters().size(),
              net.named_buffers().size());
  std::printf("parameters: %s\n", with_commas(net.parameter_count()).c_str());
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* info = app.add_subcommand("info", "Show a model preset's size and config (or list all presets)");
  info->add_option("--model", model_arg, "preset name or path of a JSON model config");
  on_run(info, run_info);
}

}  // namespace diffkd::apps

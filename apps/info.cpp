// `diffkd info`: what a model preset, config file or checkpoint holds: its config, exact
// parameter count and forward FLOPs per image (conv and matmul multiply-adds x 2, counted on
// one forward pass); for a checkpoint also its metadata (diffusion settings, training step). A UNet
// or an Adv-KD staged generator.
// With no --model: every built-in preset and its size.

#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "autograd/flop_counter.h"
#include "diffusion/generate.h"
#include "nn/checkpoint.h"
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

bool is_checkpoint(const std::string& s) {
  return s.size() > 12 && s.compare(s.size() - 12, 12, ".safetensors") == 0;
}

int64_t forward_flops(nn::UNet& net) {
  const nn::UNetConfig& c = net.config();
  NoGradGuard no_grad;
  net.eval();
  FlopCounter counter;
  const Tensor y = c.num_classes > 0 ? zeros({1}, DType::I64) : Tensor();
  net.forward(zeros({1, c.in_channels, c.image_size, c.image_size}), full({1}, 500.0), y);
  return counter.flops();
}

int64_t forward_flops(nn::StagedGenerator& g) {
  const nn::StagedGeneratorConfig& c = g.config();
  NoGradGuard no_grad;
  g.eval();
  FlopCounter counter;
  g.forward(zeros({1, c.noise_channels, c.noise_size, c.noise_size}), c.stages() - 1);
  return counter.flops();
}

void print_generator(const std::string& what, nn::StagedGenerator& g) {
  std::printf("model: %s (Adv-KD staged generator)\nconfig: %s\nparameters: %s\n", what.c_str(),
              g.config().to_json().c_str(), with_commas(g.parameter_count()).c_str());
  std::printf("forward FLOPs per image: %.3f G (conv and matmul, all stages)\n", forward_flops(g) * 1e-9);
}

int run_info() {
  if (model_arg.empty()) {
    std::printf("%-24s %14s  %s\n", "preset", "parameters", "description");
    for (const std::string& name : nn::preset_names()) {
      const int64_t count = nn::is_generator_config(name)
                                ? nn::StagedGenerator(nn::load_generator_config(name)).parameter_count()
                                : nn::UNet(nn::load_unet_config(name)).parameter_count();
      std::printf("%-24s %14s  %s\n", name.c_str(), with_commas(count).c_str(), nn::preset_description(name).c_str());
    }
    return 0;
  }
  if (!is_checkpoint(model_arg) && nn::is_generator_config(model_arg)) {
    nn::StagedGenerator g(nn::load_generator_config(model_arg));
    print_generator(model_arg, g);
    return 0;
  }
  std::unique_ptr<nn::UNet> net;
  if (is_checkpoint(model_arg)) {
    const safetensors::Metadata metadata = safetensors::load(model_arg).metadata;
    for (const auto& [key, value] : metadata)
      if (key != "config") std::printf("%s: %s\n", key.c_str(), value.c_str());
    if (metadata.count("generator")) {  // an Adv-KD checkpoint (`diffkd distill --method advkd`)
      diffusion::LoadedModel m = diffusion::load_diffusion_model(model_arg);
      print_generator(model_arg, *m.generator);
      return 0;
    }
    net = nn::load_unet(model_arg);
  } else {
    net = std::make_unique<nn::UNet>(nn::load_unet_config(model_arg));
  }
  std::printf("model: %s\nconfig: %s\n", model_arg.c_str(), net->config().to_json().c_str());
  std::printf("tensors: %zu parameters, %zu buffers\n", net->named_parameters().size(), net->named_buffers().size());
  std::printf("parameters: %s\n", with_commas(net->parameter_count()).c_str());
  std::printf("forward FLOPs per image: %.3f G (conv and matmul)\n", forward_flops(*net) * 1e-9);
  return 0;
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* info = app.add_subcommand("info", "Show a model's size, FLOPs and config (or list all presets)");
  info->add_option("--model", model_arg, "preset name, JSON model config or .safetensors checkpoint");
  on_run(info, run_info);
}

}  // namespace diffkd::apps

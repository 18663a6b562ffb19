// `diffkd convert`: a PyTorch teacher in diffusers, pytorch-ddpm or improved-diffusion layout as a
// diffkd model file (convert/convert.h), ready for sample, eval and distill.

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "apps/commands.h"
#include "convert/convert.h"
#include "tensor/error.h"

namespace diffkd::apps {

namespace {

struct {
  convert::ConvertOptions o;
  std::string out;
  CLI::App* command = nullptr;
} opts;

// The options only some layouts read: given for another, they would be silently ignored.
void check_options_fit_the_layout() {
  const std::vector<std::pair<const char*, std::vector<std::string>>> readers = {
      {"--config", {"diffusers"}},
      {"--scheduler-config", {"diffusers"}},
      {"--image-size", {"pytorch-ddpm", "improved-diffusion"}},
      {"--num-heads", {"improved-diffusion"}},
      {"--num-head-channels", {"improved-diffusion"}},
      {"--attention-order", {"improved-diffusion"}},
      {"--rescale-timesteps", {"improved-diffusion"}},
      {"--weights", {"pytorch-ddpm"}}};
  for (const auto& [flag, layouts] : readers) {
    if (opts.command->get_option(flag)->count() == 0) continue;
    std::string readers_text;
    for (const std::string& l : layouts) readers_text += (readers_text.empty() ? "" : " and ") + l;
    DK_CHECK(std::find(layouts.begin(), layouts.end(), opts.o.layout) != layouts.end(), "convert: ", flag,
             " applies to --from ", readers_text, ", not ", opts.o.layout,
             opts.o.layout == "diffusers" ? " (its config.json says it)" : "");
  }
}

int run_convert() {
  check_options_fit_the_layout();
  const convert::Converted converted = convert::convert_checkpoint(opts.o);
  convert::save_converted(converted, opts.o, opts.out);
  for (const std::string& note : converted.notes) std::printf("convert: %s\n", note.c_str());
  std::printf("convert: %s (%s) -> %s, %zu tensors\n", opts.o.input.c_str(), opts.o.layout.c_str(), opts.out.c_str(),
              converted.state.size());
  return 0;
}

}  // namespace

void add_convert_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("convert", "Import a PyTorch UNet checkpoint (diffusers, pytorch-ddpm, improved-diffusion)");
  c->add_option("--from", opts.o.layout, "the checkpoint's layout")
      ->required()
      ->check(CLI::IsMember({"diffusers", "pytorch-ddpm", "improved-diffusion"}));
  c->add_option("input", opts.o.input, "the foreign checkpoint: .safetensors, or torch.save's .pt/.bin (read without "
                "running it), or a diffusers model folder")->required();
  c->add_option("--out", opts.out, "the diffkd model file to write")->required();
  c->add_option("--config", opts.o.config, "diffusers: the model's config.json (default: beside the input)");
  c->add_option("--scheduler-config", opts.o.scheduler_config,
                "diffusers: scheduler_config.json (default: beside the input or in ../scheduler/)");
  c->add_option("--image-size", opts.o.image_size,
                "pytorch-ddpm / improved-diffusion: H = W (not in their weights; default 32 / 64)");
  c->add_option("--num-heads", opts.o.num_heads, "improved-diffusion: attention heads (default 4, its scripts')");
  c->add_option("--num-head-channels", opts.o.num_head_channels,
                "improved-diffusion: fixed head width instead of --num-heads (guided-diffusion's num_head_channels)");
  c->add_option("--attention-order", opts.o.attention_order,
                "improved-diffusion: qkv order, legacy (per head) or new (guided-diffusion's use_new_attention_order)")
      ->capture_default_str()
      ->check(CLI::IsMember({"legacy", "new"}));
  c->add_option("--rescale-timesteps", opts.o.rescale_timesteps,
                "improved-diffusion: the network was trained on t * 1000 / T (its scripts' default; false for guided-diffusion's)")
      ->capture_default_str();
  c->add_option("--weights", opts.o.weights, "pytorch-ddpm: which weights of its checkpoint dict, ema or net")
      ->capture_default_str()
      ->check(CLI::IsMember({"ema", "net"}));
  c->add_option("--schedule", opts.o.schedule, "override the layout's schedule (linear, cosine, rdd-cosine)");
  c->add_option("--timesteps", opts.o.timesteps, "override the number of training steps T")->check(CLI::PositiveNumber);
  c->add_option("--prediction", opts.o.prediction, "override the network's target (eps, x0, v)");
  opts.command = c;
  on_run(c, run_convert);
}

}  // namespace diffkd::apps

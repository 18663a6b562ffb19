// The distillation presets and the model-fit check (presets.h).

#include "distill/presets.h"

#include <cstdio>

#include "diffusion/generate.h"
#include "diffusion/schedule.h"
#include "diffusion/trainer.h"
#include "nn/safetensors.h"
#include "nn/unet_config.h"
#include "tensor/error.h"

namespace diffkd::distill {

namespace {

const std::vector<DistillPreset>& presets() {
  const ModelFit any;
  // Ho et al.'s DDPM: linear betas 1e-4 .. 0.02 over T = 1000, alpha-bar(800) = 0.0019; a cosine
  // schedule's is 0.09 there, so the quadratic sequence (METHODS.md 1.2) would start off noise.
  const ModelFit ddpm_cifar10{"Ho et al.'s CIFAR-10 DDPM: 32x32 RGB, linear betas, T = 1000", 32, 3, 800, 0.01};
  const ModelFit cifar10{"a CIFAR-10 model: 32x32 RGB", 32, 3};
  const ModelFit celeba_hq{"the diffusers CelebA-HQ 256 DDPM: 256x256 RGB", 256, 3};
  static const std::vector<DistillPreset> table = {
      {"student", "mnist", "the flags' defaults, at MNIST scale", "--teacher", any, {}},
      {"student", "cifar10", "Luhman & Luhman's CIFAR-10 recipe (METHODS.md 1.5)", "--teacher", ddpm_cifar10,
       {"--teacher"}},
      {"progressive", "mnist", "the flags' defaults, at MNIST scale", "--teacher", any, {}},
      {"progressive", "cifar10", "Salimans & Ho's CIFAR-10 recipe (METHODS.md 0.5)", "--teacher", cifar10,
       {"--teacher", "--data"}},
      {"rdd", "mnist", "the flags' defaults, at MNIST scale", "--from", any, {}},
      {"rdd", "cifar10", "RDD's train_rdd.sh (METHODS.md 4.1)", "--from", cifar10, {"--from", "--data"}},
      {"dkdm", "mnist", "the flags' defaults, at MNIST scale", "--teacher", any, {}},
      {"dkdm", "cifar10", "DKDM's 57M -> 14M CIFAR-10 pair (METHODS.md 3.3)", "--teacher", cifar10, {"--teacher"}},
      {"sid", "mnist", "the flags' defaults, at MNIST scale", "--teacher", any, {}},
      {"sid", "cifar10", "SiD's CIFAR-10 settings (batch 256, lr 1e-5, alpha 1.2)", "--teacher", cifar10, {"--teacher"}},
      {"advkd", "mnist", "the flags' defaults, at MNIST scale", "--teacher", any, {}},
      {"advkd", "celeba-hq-256", "Adv-KD's CelebA-HQ 256 recipe, 11 stages (METHODS.md 2)", "--teacher", celeba_hq,
       {"--teacher"}},
  };
  return table;
}

}  // namespace

std::vector<std::string> distill_preset_names(const std::string& method) {
  std::vector<std::string> names;
  for (const DistillPreset& p : presets())
    if (p.method == method) names.push_back(p.name);
  return names;
}

const DistillPreset& find_distill_preset(const std::string& method, const std::string& name) {
  for (const DistillPreset& p : presets())
    if (p.method == method && p.name == name) return p;
  std::string known;
  for (const std::string& n : distill_preset_names(method)) known += (known.empty() ? "" : ", ") + n;
  fail("distill --method ", method, ": no preset '", name, "' (its presets: ", known, ")");
}

void check_model_fits(const std::string& who, const std::string& path, const std::string& flag, const ModelFit& fit) {
  const safetensors::Metadata meta = safetensors::load_metadata(path);
  const auto config = meta.find("config");
  DK_CHECK(config != meta.end(), who, ": ", flag, " ", path,
           " is not a diffusion model of `diffkd train` or `distill` (no config in its metadata); the "
           "preset is for ", fit.kind);
  const nn::UNetConfig c = nn::UNetConfig::from_json(config->second, path + " \"config\"");
  const bool size_fits = fit.image_size == 0 || c.image_size == fit.image_size;
  const bool channels_fit = fit.channels == 0 || c.in_channels == fit.channels;
  DK_CHECK(size_fits && channels_fit, who, ": ", flag, " ", path, " makes ", c.image_size, "x", c.image_size,
           " images of ", c.in_channels, " channel", c.in_channels == 1 ? "" : "s", "; the preset is for ",
           fit.kind);
  if (fit.max_alpha_bar <= 0) return;
  const diffusion::DiffusionSpec spec = diffusion::diffusion_spec_of(meta, path);
  const diffusion::NoiseSchedule schedule = spec.noise_schedule();
  DK_CHECK(fit.first_step < schedule.steps(), who, ": ", flag, " ", path, " has ", schedule.steps(),
           " steps; the preset starts at step ", fit.first_step, " (", fit.kind, ")");
  const double alpha_bar = schedule.alpha_bar(fit.first_step);
  char text[96];
  std::snprintf(text, sizeof text, "alpha-bar at the preset's first step t = %lld is %.4f, above %.3g",
                static_cast<long long>(fit.first_step), alpha_bar, fit.max_alpha_bar);
  DK_CHECK(alpha_bar <= fit.max_alpha_bar, who, ": ", flag, " ", path, " has a ", spec.schedule, " schedule whose ",
           text, " (x_t there is not noise); the preset is for ", fit.kind);
}

}  // namespace diffkd::distill

#pragma once
// The sampler flags that `sample` and `eval` share, and the SamplerConfig they describe.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "apps/sampler_spec.h"
#include "diffusion/generate.h"
#include "diffusion/sampler.h"
#include "tensor/error.h"

namespace diffkd::apps {

struct SamplerFlags {
  std::string sampler = "ddim";
  int64_t steps = 50;
  double eta = 0.0;
  bool no_clip = false;
  std::string variance = "small";
  std::string spacing = "uniform";
  CLI::Option* eta_option = nullptr;
  CLI::Option* variance_option = nullptr;
  std::vector<CLI::Option*> options;  // all of them, to tell whether any was given

  void add_to(CLI::App* command) {
    options.push_back(command->add_option("--sampler", sampler, "ddim or ddpm (ancestral, respaced); default for a "
                                          "distilled student: the sampler it was distilled for")
                          ->capture_default_str()->check(CLI::IsMember({"ddim", "ddpm"})));
    options.push_back(command->add_option("--steps", steps, "sampler steps (network evaluations)")->capture_default_str()
                          ->check(CLI::PositiveNumber));
    eta_option = command->add_option("--eta", eta, "DDIM eta (0: deterministic)")->capture_default_str();
    options.push_back(eta_option);
    options.push_back(command->add_flag("--no-clip", no_clip, "do not clip the predicted x0 to [-1, 1]"));
    variance_option = command->add_option("--variance", variance, "DDPM variance: small (beta~) or large (beta)")
        ->capture_default_str()->check(CLI::IsMember({"small", "large"}));
    options.push_back(variance_option);
    options.push_back(command->add_option("--spacing", spacing, "step sequence: uniform, quadratic or trailing (PD students)")
                          ->capture_default_str()->check(CLI::IsMember({"uniform", "quadratic", "trailing"})));
  }

  // A flag the chosen sampler does not read is an error, not silently dropped.
  diffusion::SamplerConfig config() const {
    DK_CHECK(!(sampler == "ddpm" && eta_option && eta_option->count() > 0),
             "--eta applies to --sampler ddim only (ddpm takes --variance)");
    DK_CHECK(!(sampler == "ddim" && variance_option && variance_option->count() > 0),
             "--variance applies to --sampler ddpm only (ddim takes --eta)");
    diffusion::SamplerConfig c;
    c.kind = sampler == "ddpm" ? diffusion::SamplerConfig::Kind::Ddpm : diffusion::SamplerConfig::Kind::Ddim;
    c.steps = steps;
    c.eta = eta;
    c.clip_x0 = !no_clip;
    c.variance = variance == "large" ? diffusion::SamplerConfig::Variance::FixedLarge
                                     : diffusion::SamplerConfig::Variance::FixedSmall;
    c.spacing = spacing;
    return c;
  }

  // The sampler for a loaded model: its own (a distilled student's) when no sampler flag is given.
  diffusion::SamplerConfig config_for(const diffusion::LoadedModel& model) const {
    const bool any_given = std::any_of(options.begin(), options.end(), [](CLI::Option* o) { return o->count() > 0; });
    if (any_given || model.sampler.empty()) return config();
    return parse_sampler_spec(model.sampler, 2, model.path + ": metadata sampler").config;
  }

  std::string describe() const {
    std::string s = sampler + " " + std::to_string(steps) + " steps";
    if (sampler == "ddim") s += ", eta " + CLI::detail::to_string(eta);
    else s += ", variance " + variance;
    return s + ", " + spacing + " spacing" + (no_clip ? ", no clipping" : ", x0 clipped");
  }
};

}  // namespace diffkd::apps

#pragma once
// A sampler in one word, for flags that take several (report --samplers) or name a second model's
// sampler (eval --teacher-sampler): "ddim:STEPS[:eta=E]" or "ddpm:STEPS[:small|large]", optionally
// "@N" for a row at its own (smaller) N, e.g. "ddpm:1000@200".

#include <cstdint>
#include <string>

#include "diffusion/generate.h"
#include "diffusion/sampler.h"

namespace diffkd::apps {

struct SamplerSpec {
  std::string spec;  // as written
  std::string name;  // for file names: "ddim-50", "ddpm-1000-large"
  diffusion::SamplerConfig config;
  int64_t count = 0;  // N: the @N suffix, else the default given
};

// context names the flag in errors ("report: --samplers").
SamplerSpec parse_sampler_spec(const std::string& spec, int64_t default_count, const std::string& context);

// "DDIM 50 (eta 0)", "DDPM 1000 (large variance)".
std::string describe_sampler(const diffusion::SamplerConfig& config);
// The same, or "one step (residual)" for a one-step generator, which has no sampler.
std::string describe_model_sampler(const diffusion::LoadedModel& model, const diffusion::SamplerConfig& config);
// Network evaluations per image.
int64_t model_nfe(const diffusion::LoadedModel& model, const diffusion::SamplerConfig& config);

}  // namespace diffkd::apps

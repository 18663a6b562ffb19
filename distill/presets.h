#pragma once
// The recipes of `diffkd distill --preset`: what each was written for. A preset is a paper's
// hyperparameters for one teacher kind; run on a teacher it was not meant for (the MNIST default,
// a cosine schedule where the recipe assumes linear betas) it would train, silently, on the wrong
// thing. So every preset names the model it fits and the flags whose MNIST defaults it cannot use,
// and a model that does not fit is refused, from its metadata, before any work.
// (Its hyperparameters live with the flags they set, in apps/distill.cpp.)

#include <cstdint>
#include <string>
#include <vector>

namespace diffkd::distill {

struct ModelFit {
  std::string kind;        // what it is for, for messages: "Ho et al.'s CIFAR-10 DDPM, ..."
  int64_t image_size = 0;  // 0: any
  int64_t channels = 0;    // 0: any
  // The recipe's first sampled step (0-based) must be noise: the model's alpha-bar there at most
  // max_alpha_bar (0: not checked).
  int64_t first_step = -1;
  double max_alpha_bar = 0;
};

// Refuses (diffkd::Error, one line starting with `who`) the model at `path`, given by `flag`,
// when it does not fit.
void check_model_fits(const std::string& who, const std::string& path, const std::string& flag, const ModelFit& fit);

struct DistillPreset {
  std::string method, name, description;
  std::string model_flag;              // the model the fit applies to: --teacher (--from for rdd)
  ModelFit fit;
  std::vector<std::string> required;   // flags that must be given (their defaults are MNIST's)
};

// The preset `name` of `method`; an unknown pair is refused naming the method's presets.
const DistillPreset& find_distill_preset(const std::string& method, const std::string& name);
std::vector<std::string> distill_preset_names(const std::string& method);

}  // namespace diffkd::distill

#pragma once
// What every distillation method shares: writing a student that `diffkd sample`, `eval` and
// `report` load like any model. Its metadata carries the diffusion settings, the sampler it was
// distilled for (the default when sampling it) and the method.

#include <string>

#include "diffusion/trainer.h"
#include "nn/checkpoint.h"
#include "nn/unet.h"

namespace diffkd::distill {

// sampler: a spec as `diffkd report --samplers` takes it, e.g. "ddim:4:trailing" or "student".
void save_distilled_model(const std::string& path, const nn::UNet& net, const diffusion::DiffusionSpec& spec,
                          const std::string& sampler, nn::Metadata extra);

}  // namespace diffkd::distill

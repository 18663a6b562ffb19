// Saving distilled students (see common.h).

#include "distill/common.h"

namespace diffkd::distill {

void save_distilled_model(const std::string& path, const nn::UNet& net, const diffusion::DiffusionSpec& spec,
                          const std::string& sampler, nn::Metadata extra) {
  extra["diffusion"] = spec.to_json();
  extra["sampler"] = sampler;
  nn::save_model(path, net, net.config().to_json(), std::move(extra));
}

}  // namespace diffkd::distill

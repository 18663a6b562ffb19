// Sampler specs such as "ddim:50" or "ddpm:1000:large@200" (see sampler_spec.h).

#include "apps/sampler_spec.h"

#include <sstream>
#include <vector>

#include "tensor/error.h"

namespace diffkd::apps {

SamplerSpec parse_sampler_spec(const std::string& spec, int64_t default_count, const std::string& context) {
  SamplerSpec row;
  row.spec = spec;
  row.count = default_count;
  std::string body = spec;
  if (const size_t at = body.find('@'); at != std::string::npos) {
    try {
      row.count = std::stoll(body.substr(at + 1));
    } catch (const std::exception&) {
      fail(context, " '", spec, "': expected a count after @");
    }
    body = body.substr(0, at);
  }
  std::vector<std::string> parts;
  std::stringstream ss(body);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  DK_CHECK(parts.size() >= 2 && (parts[0] == "ddim" || parts[0] == "ddpm"), context, " '",
           spec, "': expected ddim:STEPS[:eta=E] or ddpm:STEPS[:small|large], then optionally :trailing or :quadratic and @N");
  diffusion::SamplerConfig& c = row.config;
  c.kind = parts[0] == "ddpm" ? diffusion::SamplerConfig::Kind::Ddpm : diffusion::SamplerConfig::Kind::Ddim;
  try {
    c.steps = std::stoll(parts[1]);
  } catch (const std::exception&) {
    fail(context, " '", spec, "': steps '", parts[1], "' is not a number");
  }
  DK_CHECK(c.steps > 0, context, " '", spec, "': steps must be >= 1");
  DK_CHECK(row.count >= 2, context, " '", spec, "': N must be >= 2");
  row.name = parts[0] + "-" + parts[1];
  for (size_t i = 2; i < parts.size(); ++i) {
    if (parts[i] == "large" || parts[i] == "small") {
      c.variance = parts[i] == "large" ? diffusion::SamplerConfig::Variance::FixedLarge
                                       : diffusion::SamplerConfig::Variance::FixedSmall;
      row.name += "-" + parts[i];
    } else if (parts[i] == "uniform" || parts[i] == "quadratic" || parts[i] == "trailing") {
      c.spacing = parts[i];
      if (parts[i] != "uniform") row.name += "-" + parts[i];
    } else if (parts[i].rfind("eta=", 0) == 0) {
      try {
        c.eta = std::stod(parts[i].substr(4));
      } catch (const std::exception&) {
        fail(context, " '", spec, "': eta '", parts[i].substr(4), "' is not a number");
      }
      row.name += "-eta" + parts[i].substr(4);
    } else {
      fail(context, " '", spec, "': unknown option '", parts[i], "'");
    }
  }
  return row;
}

std::string describe_sampler(const diffusion::SamplerConfig& c) {
  std::ostringstream os;
  const std::string spacing = c.spacing == "uniform" ? "" : ", " + c.spacing;
  if (c.kind == diffusion::SamplerConfig::Kind::Ddim) os << "DDIM " << c.steps << " (eta " << c.eta << spacing << ")";
  else
    os << "DDPM " << c.steps << " ("
       << (c.variance == diffusion::SamplerConfig::Variance::FixedLarge ? "large" : "small") << " variance" << spacing << ")";
  return os.str();
}

std::string describe_model_sampler(const diffusion::LoadedModel& model, const diffusion::SamplerConfig& config) {
  if (model.generator) return "one pass (Adv-KD generator)";
  if (model.one_step.empty()) return describe_sampler(config);
  return "one step (" + model.one_step +
         (model.one_step_time >= 0 ? " at t = " + std::to_string(model.one_step_time) : std::string()) + ")";
}

int64_t model_nfe(const diffusion::LoadedModel& model, const diffusion::SamplerConfig& config) {
  return model.one_step.empty() && !model.generator ? diffusion::sampler_nfe(model.schedule, config) : 1;
}

}  // namespace diffkd::apps

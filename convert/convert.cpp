// The layout dispatch and the output file (see convert.h).

#include "convert/convert.h"

#include <filesystem>

#include "diffusion/schedule.h"
#include "diffusion/gaussian.h"
#include "nn/checkpoint.h"
#include "nn/torch_checkpoint.h"
#include "nn/unet.h"
#include "tensor/error.h"

namespace diffkd::convert {

namespace fs = std::filesystem;

namespace {

// A diffusers model or pipeline folder -> its weights file (the pipeline keeps the UNet in unet/;
// safetensors preferred over the pickled .bin).
std::string weights_in(const std::string& input) {
  if (!fs::is_directory(input)) return input;
  for (const char* folder : {"", "unet/"})
    for (const char* name : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"})
      if (fs::exists(fs::path(input) / folder / name)) return (fs::path(input) / folder / name).string();
  fail(input, ": a folder without diffusion_pytorch_model.safetensors or .bin (nor in unet/)");
}

// The foreign file's tensors: safetensors, or a torch.save checkpoint read without running it.
safetensors::Contents read_checkpoint(const std::string& path) {
  return torch_checkpoint::looks_like_torch_checkpoint(path) ? torch_checkpoint::load(path) : safetensors::load(path);
}

}  // namespace

Converted convert_checkpoint(const ConvertOptions& given) {
  DK_CHECK(given.image_size >= 0, "convert: --image-size must be positive, got ", given.image_size);
  ConvertOptions o = given;
  o.input = weights_in(given.input);
  const safetensors::Contents file = read_checkpoint(o.input);
  Converted c;
  if (o.layout == "diffusers")
    c = from_diffusers(file, o);
  else if (o.layout == "pytorch-ddpm")
    c = from_pytorch_ddpm(file, o);
  else if (o.layout == "improved-diffusion")
    c = from_improved_diffusion(file, o);
  else
    fail("convert: --from ", o.layout, " is not a layout we read (diffusers, pytorch-ddpm, improved-diffusion)");
  apply_overrides(c.spec, o, c.notes);
  return c;
}

std::vector<double> linspace_betas(double start, double end, int64_t steps) {
  std::vector<double> betas(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t)
    betas[t] = steps == 1 ? start : start + (end - start) * static_cast<double>(t) / static_cast<double>(steps - 1);
  return betas;
}

void apply_overrides(diffusion::DiffusionSpec& spec, const ConvertOptions& o, std::vector<std::string>& notes) {
  DK_CHECK(o.timesteps >= 0, "convert: --timesteps must be positive, got ", o.timesteps);
  DK_CHECK(o.schedule != "betas", "convert: --schedule betas is what a file with its own betas records; "
           "name a schedule (linear, cosine, rdd-cosine)");
  DK_CHECK(!(spec.schedule == "betas" && o.schedule.empty() && o.timesteps > 0 && o.timesteps != spec.timesteps),
           "convert: ", o.input, " has its own ", spec.timesteps, " betas; --timesteps ", o.timesteps,
           " alone cannot say which betas to use at that T (give --schedule too)");
  if (!o.schedule.empty()) {
    spec.schedule = o.schedule;
    spec.betas.clear();
  }
  if (o.timesteps > 0) spec.timesteps = o.timesteps;
  if (!o.prediction.empty()) spec.prediction = o.prediction;
  spec.noise_schedule();  // a one-line error if unknown
  diffusion::parse_prediction(spec.prediction);
  notes.push_back("diffusion: " + (spec.schedule == "betas" ? std::string("the file's own betas") : spec.schedule + " schedule") +
                  ", T = " + std::to_string(spec.timesteps) + ", " + spec.prediction + "-prediction" +
                  (spec.rescale_timesteps ? ", the network sees t * 1000 / T" : ""));
}

void save_converted(const Converted& c, const ConvertOptions& o, const std::string& out_path) {
  nn::UNet model(c.config);
  model.load_state_dict(c.state, o.input);
  nn::save_model(out_path, model, c.config.to_json(),
                 {{"diffusion", c.spec.to_json()}, {"converted_from", o.layout + " " + o.input}});
}

}  // namespace diffkd::convert

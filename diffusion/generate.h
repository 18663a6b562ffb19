#pragma once
// Generating many images from a trained diffusion model in batches: image i comes from the
// noise and sampler draws keyed by (seed, i) whatever the batch size, so a 1000-image evaluation
// and a 64-image grid with the same seed agree on their common images.

#include <functional>
#include <memory>
#include <string>

#include "diffusion/sampler.h"
#include "nn/safetensors.h"
#include "diffusion/trainer.h"
#include "nn/adversarial.h"
#include "nn/unet.h"

namespace diffkd::diffusion {

struct LoadedModel {
  std::unique_ptr<nn::UNet> net;
  DiffusionSpec spec;
  NoiseSchedule schedule;
  std::string path;
  // A distilled student's metadata: the sampler it was distilled for (a spec such as
  // "ddim:4:trailing"; empty for a teacher), and for a one-step generator (Denoising Student)
  // its output form: "residual" (x_T - net(x_T, T - 1)) or "x0" (the x0 the network's
  // prediction implies at T - 1); empty for a diffusion model.
  std::string sampler;
  std::string one_step;
  int64_t one_step_time = -1;  // SiD's generator: the step it runs at (see one_step_image); -1: T - 1
  // An Adv-KD generator instead of a diffusion network (net is then null): one pass from the noise
  // of sample i, shrunk to its input size, its last stage's image centre-cropped to image_size.
  std::unique_ptr<nn::StagedGenerator> generator;
  int64_t image_size = 0, image_channels = 0;
  bool quantise_noise = true;
  int64_t stages_trained = 0;  // of the generator's stages: sampling needs all
};

// A one-step generator's image from noise x_T, its output read as in `form`. step -1: Luhman &
// Luhman's, the network at the fixed time T - 1 on x_T itself. step t >= 0: SiD's, the network at t
// on sigma_t x_T (the noisy state of a zero image there, the paper's sigma_init z), read as x0.
Tensor one_step_image(nn::UNet& net, const std::string& form, Prediction prediction, const NoiseSchedule& schedule,
                      const Tensor& x_T, int64_t step = -1);

// What the command line says about the diffusion models it loads (sample, eval, report and
// distill take --schedule, --timesteps and --prediction): a file that records its settings must
// agree with each one given (a conflict is a one-line error naming the file, the setting and both
// values: a file's settings are what its network was trained with); a file without them (weights
// and config from elsewhere) takes these, with --schedule and --prediction required.
struct DiffusionFlags {
  std::string schedule, prediction;
  int64_t timesteps = 0;
};
void set_diffusion_flags(const DiffusionFlags& flags);  // for every load that follows

// The diffusion settings of a model file's metadata, checked against (or completed from) the flags.
DiffusionSpec diffusion_spec_of(const safetensors::Metadata& metadata, const std::string& path);

// A model checkpoint written by `diffkd train` (its metadata says how to sample it), its weights
// placed on `device`.
LoadedModel load_diffusion_model(const std::string& path, Device device = cpu());

struct GenerateProgress {
  int64_t done = 0, total = 0;
  double seconds = 0;
};

// Images [first, first + count) as [count, C, H, W] in [-1, 1] (the sampler's last x0 is clipped
// when config.clip_x0; a one-step generator ignores the sampler and is clipped), computed on the
// model's device and returned on the host. on_batch is called after each batch. x_T: the starting
// noise of the images, [count, C, H, W] (e.g. another framework's, to match a run against it);
// undefined: drawn from (seed, image index) as initial_noise gives it. The samplers' later draws
// (DDPM's per-step noise) still come from the seed.
Tensor generate(LoadedModel& model, const SamplerConfig& config, int64_t first, int64_t count,
                int64_t batch_size, uint64_t seed,
                const std::function<void(const GenerateProgress&)>& on_batch = nullptr, const Tensor& x_T = Tensor());

// The noise generate draws for images [first, first + count): [count, C, H, W] on the host.
Tensor initial_noise(const LoadedModel& model, int64_t first, int64_t count, uint64_t seed);

// One line naming `source` unless x_T is [count, C, H, W] floating point for `model`'s images.
void check_initial_noise(const LoadedModel& model, const Tensor& x_T, int64_t count, const std::string& source);

}  // namespace diffkd::diffusion

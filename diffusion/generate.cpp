// Batched generation from a checkpoint (see generate.h).

#include "diffusion/generate.h"

#include <chrono>

#include "diffusion/noise.h"
#include "nn/checkpoint.h"

namespace diffkd::diffusion {

LoadedModel load_diffusion_model(const std::string& path) {
  LoadedModel m;
  m.path = path;
  m.net = nn::load_unet(path);
  m.net->eval();
  const safetensors::Contents file = safetensors::load(path);
  auto it = file.metadata.find("diffusion");
  DK_CHECK(it != file.metadata.end(), path,
           ": no diffusion settings in the metadata (was it written by `diffkd train`?)");
  m.spec = DiffusionSpec::from_json(it->second, path);
  m.schedule = NoiseSchedule::named(m.spec.schedule, m.spec.timesteps);
  return m;
}

Tensor generate(LoadedModel& model, const SamplerConfig& config, int64_t first, int64_t count,
                int64_t batch_size, uint64_t seed,
                const std::function<void(const GenerateProgress&)>& on_batch) {
  DK_CHECK(count > 0 && batch_size > 0, "generate: count and batch size must be positive");
  const nn::UNetConfig& c = model.net->config();
  const Shape shape{c.in_channels, c.image_size, c.image_size};
  const Prediction prediction = parse_prediction(model.spec.prediction);
  DK_CHECK(c.out_channels == c.in_channels || c.out_channels == 2 * c.in_channels, model.path,
           ": the model outputs ", c.out_channels, " channels for ", c.in_channels, "-channel images");
  const ModelFn fn = [&](const Tensor& x, const Tensor& t) { return model.net->forward(x, t); };
  TensorList parts;
  GenerateProgress progress{0, count, 0};
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = first; i < first + count; i += batch_size) {
    const int64_t n = std::min(batch_size, first + count - i);
    parts.push_back(sample(fn, prediction, model.schedule, config, sample_noise(shape, i, n, seed, 0), i, seed));
    progress.done += n;
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_batch) on_batch(progress);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace diffkd::diffusion

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
  if (auto s = file.metadata.find("sampler"); s != file.metadata.end()) m.sampler = s->second;
  if (auto o = file.metadata.find("one_step"); o != file.metadata.end()) {
    m.one_step = o->second;
    DK_CHECK(m.one_step == "residual" || m.one_step == "x0", path, ": metadata one_step is '", m.one_step,
             "', expected residual or x0");
  }
  return m;
}

Tensor one_step_image(nn::UNet& net, const std::string& form, Prediction prediction, const NoiseSchedule& schedule,
                      const Tensor& x_T) {
  const int64_t last = schedule.steps() - 1;
  const Tensor out = net.forward(x_T, model_time(schedule, std::vector<int64_t>(x_T.size(0), last)));
  if (form == "residual") return x_T - out;
  DK_CHECK(form == "x0", "one-step generator: unknown form '", form, "' (expected residual or x0)");
  return denoise(out, prediction, x_T, coefficients(schedule, std::vector<int64_t>(x_T.size(0), last), x_T)).x0;
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
    const Tensor x_T = sample_noise(shape, i, n, seed, 0);
    if (model.one_step.empty()) {
      parts.push_back(sample(fn, prediction, model.schedule, config, x_T, i, seed));
    } else {
      NoGradGuard no_grad;
      parts.push_back(clamp(one_step_image(*model.net, model.one_step, prediction, model.schedule, x_T), -1.0, 1.0));
    }
    progress.done += n;
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_batch) on_batch(progress);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace diffkd::diffusion

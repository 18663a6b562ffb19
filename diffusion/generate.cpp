// Batched generation from a checkpoint (see generate.h).

#include "diffusion/generate.h"

#include <chrono>

#include "diffusion/noise.h"
#include "nn/checkpoint.h"

namespace diffkd::diffusion {

namespace {
DiffusionFlags& flags() {
  static DiffusionFlags given;
  return given;
}
}  // namespace

void set_diffusion_flags(const DiffusionFlags& given) { flags() = given; }

DiffusionSpec diffusion_spec_of(const safetensors::Metadata& metadata, const std::string& path) {
  const DiffusionFlags& f = flags();
  DK_CHECK(f.schedule != "betas", "--schedule betas is what a file with its own betas records; name a schedule "
           "(linear, cosine, rdd-cosine)");
  DK_CHECK(f.timesteps >= 0, "--timesteps must be positive, got ", f.timesteps);
  const auto it = metadata.find("diffusion");
  if (it == metadata.end()) {
    DK_CHECK(!f.schedule.empty() && !f.prediction.empty(), path,
             ": no diffusion settings in the metadata (was it written by `diffkd train` or `convert`?); "
             "sample, eval, report and distill take --schedule and --prediction (and --timesteps, default 1000) "
             "to say how its network was trained");
    DiffusionSpec s{f.schedule, f.timesteps > 0 ? f.timesteps : 1000, f.prediction};
    return DiffusionSpec::from_json(s.to_json(), path + " (--schedule, --timesteps, --prediction)");
  }
  const DiffusionSpec s = DiffusionSpec::from_json(it->second, path);
  auto agree = [&](const std::string& flag, const std::string& given, const std::string& recorded) {
    DK_CHECK(given.empty() || given == recorded, path, ": its network was trained with ", flag.substr(2), " ", recorded,
             "; ", flag, " ", given, " conflicts (a file's settings are what it was trained with; `diffkd convert` "
             "re-records an imported one)");
  };
  agree("--schedule", f.schedule, s.schedule);
  agree("--prediction", f.prediction, s.prediction);
  agree("--timesteps", f.timesteps > 0 ? std::to_string(f.timesteps) : "", std::to_string(s.timesteps));
  return s;
}

LoadedModel load_diffusion_model(const std::string& path, Device device) {
  LoadedModel m;
  m.path = path;
  const safetensors::Contents file = safetensors::load(path);
  if (auto g = file.metadata.find("generator"); g != file.metadata.end()) {
    DK_CHECK(g->second == "advkd", path, ": metadata generator is '", g->second, "', expected advkd");
    m.generator = std::make_unique<nn::StagedGenerator>(
        nn::StagedGeneratorConfig::from_json(file.metadata.at("config"), path + " config"));
    nn::load_model(path, *m.generator);
    m.generator->eval();
    m.generator->to(device);
    m.image_size = nn::metadata_int(file.metadata, "image_size", path);
    m.image_channels = m.generator->config().image_channels;
    m.quantise_noise = nn::metadata_int(file.metadata, "quantise_noise", path) != 0;
    m.stages_trained = nn::metadata_int(file.metadata, "stages_trained", path);
    m.spec = diffusion_spec_of(file.metadata, path);
    m.schedule = m.spec.noise_schedule();
    return m;
  }
  m.net = nn::load_unet(path);
  m.net->eval();
  m.net->to(device);
  m.spec = diffusion_spec_of(file.metadata, path);
  m.schedule = m.spec.noise_schedule();
  if (auto s = file.metadata.find("sampler"); s != file.metadata.end()) m.sampler = s->second;
  if (auto o = file.metadata.find("one_step"); o != file.metadata.end()) {
    m.one_step = o->second;
    DK_CHECK(m.one_step == "residual" || m.one_step == "x0", path, ": metadata one_step is '", m.one_step,
             "', expected residual or x0");
  }
  if (file.metadata.count("one_step_time")) {
    m.one_step_time = nn::metadata_int(file.metadata, "one_step_time", path);
    DK_CHECK(m.one_step == "x0" && m.one_step_time >= 0 && m.one_step_time < m.schedule.steps(), path,
             ": metadata one_step_time ", m.one_step_time, " needs one_step x0 and a step in 0..",
             m.schedule.steps() - 1);
  }
  return m;
}

Tensor one_step_image(nn::UNet& net, const std::string& form, Prediction prediction, const NoiseSchedule& schedule,
                      const Tensor& x_T, int64_t step) {
  DK_CHECK(form == "x0" || (form == "residual" && step < 0), "one-step generator: form '", form,
           "' (expected x0, or residual at T - 1)");
  DK_CHECK(step < schedule.steps(), "one-step generator: step ", step, " outside 0..", schedule.steps() - 1);
  const std::vector<int64_t> t(x_T.size(0), step < 0 ? schedule.steps() - 1 : step);
  const Coefficients c = coefficients(schedule, t, x_T);
  const Tensor x = step < 0 ? x_T : c.noise * x_T;
  Tensor out = net.forward(x, model_time(schedule, t));
  // A learned-range network's variance channels are not part of the image.
  if (out.size(1) == 2 * x.size(1)) out = narrow(out, 1, 0, x.size(1));
  if (form == "residual") return x - out;
  return denoise(out, prediction, x, c).x0;
}

namespace {

// An Adv-KD generator: one pass of its last stage from the shrunk noise, centre-cropped.
// Rows [i - first, i - first + n) of the given noise, or the draws of images [i, i + n).
Tensor noise_rows(const Tensor& given, const Shape& shape, int64_t first, int64_t i, int64_t n, uint64_t seed,
                  Device device) {
  if (!given.defined()) return sample_noise(shape, i, n, seed, 0, device);
  return to_device(to_dtype(contiguous(narrow(given, 0, i - first, n)), DType::F32), device);
}

Tensor generate_adversarial(LoadedModel& model, int64_t first, int64_t count, int64_t batch_size, uint64_t seed,
                            const std::function<void(const GenerateProgress&)>& on_batch, const Tensor& x_T) {
  NoGradGuard no_grad;
  const nn::StagedGeneratorConfig& g = model.generator->config();
  DK_CHECK(model.stages_trained == g.stages(), model.path, ": the generator has trained ", model.stages_trained, " of its ",
           g.stages(), " stages; its last stage is untrained (finish the run with --resume)");
  const Shape shape{model.image_channels, model.image_size, model.image_size};
  const int64_t last = g.stages() - 1, size = g.resolutions.back(), margin = (size - model.image_size) / 2;
  TensorList parts;
  GenerateProgress progress{0, count, 0};
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = first; i < first + count; i += batch_size) {
    const int64_t n = std::min(batch_size, first + count - i);
    // The 8-bit quantisation of the condition runs on the host; the generator on its device.
    const Tensor noise = to_device(
        nn::adversarial_condition(noise_rows(x_T, shape, first, i, n, seed, cpu()), g.noise_size, model.quantise_noise),
        model.generator->device());
    const Tensor image = model.generator->forward(noise, last);
    parts.push_back(to_device(narrow(narrow(image, 2, margin, model.image_size), 3, margin, model.image_size), cpu())
                        .clone_data());
    progress.done += n;
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_batch) on_batch(progress);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

}  // namespace

Tensor generate(LoadedModel& model, const SamplerConfig& config, int64_t first, int64_t count,
                int64_t batch_size, uint64_t seed,
                const std::function<void(const GenerateProgress&)>& on_batch, const Tensor& x_T_all) {
  DK_CHECK(count > 0 && batch_size > 0, "generate: count and batch size must be positive");
  if (x_T_all.defined()) check_initial_noise(model, x_T_all, count, "generate: the given noise");
  if (model.generator) return generate_adversarial(model, first, count, batch_size, seed, on_batch, x_T_all);
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
    const Tensor x_T = noise_rows(x_T_all, shape, first, i, n, seed, model.net->device());
    if (model.one_step.empty()) {
      parts.push_back(to_device(sample(fn, prediction, model.schedule, config, x_T, i, seed), cpu()));
    } else {
      NoGradGuard no_grad;
      parts.push_back(to_device(
          clamp(one_step_image(*model.net, model.one_step, prediction, model.schedule, x_T, model.one_step_time), -1.0, 1.0),
          cpu()));
    }
    progress.done += n;
    progress.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (on_batch) on_batch(progress);
  }
  return parts.size() == 1 ? parts[0] : concat(parts, 0);
}

namespace {

Shape image_shape(const LoadedModel& model) {
  if (model.generator) return {model.image_channels, model.image_size, model.image_size};
  const nn::UNetConfig& c = model.net->config();
  return {c.in_channels, c.image_size, c.image_size};
}

}  // namespace

Tensor initial_noise(const LoadedModel& model, int64_t first, int64_t count, uint64_t seed) {
  return sample_noise(image_shape(model), first, count, seed, 0);
}

void check_initial_noise(const LoadedModel& model, const Tensor& x_T, int64_t count, const std::string& source) {
  Shape expected = image_shape(model);
  expected.insert(expected.begin(), count);
  DK_CHECK(x_T.shape() == expected && is_floating(x_T.dtype()), source, ": noise of shape ", shape_str(x_T.shape()), " (",
           dtype_name(x_T.dtype()), "), expected ", shape_str(expected), " floating point for ", model.path);
}

}  // namespace diffkd::diffusion

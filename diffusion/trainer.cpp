// The teacher training loop (see trainer.h).

#include "diffusion/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <tuple>

#include "data/image_io.h"
#include "data/loader.h"
#include "data/plot.h"
#include "diffusion/losses.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "diffusion/sampler.h"
#include "dist/batch_collectives.h"
#include "dist/data_parallel.h"
#include "nn/atomic_file.h"
#include "nn/checkpoint.h"
#include "nn/lr_schedule.h"
#include "nn/presets.h"
#include "tensor/philox.h"

namespace diffkd::diffusion {

namespace fs = std::filesystem;
using nlohmann::json;

NoiseSchedule DiffusionSpec::noise_schedule() const {
  NoiseSchedule s = schedule == "betas" ? NoiseSchedule::from_betas(betas) : NoiseSchedule::named(schedule, timesteps);
  if (rescale_timesteps) s.time_scale = 1000.0 / static_cast<double>(timesteps);
  return s;
}

std::string DiffusionSpec::to_json() const {
  json j{{"schedule", schedule}, {"timesteps", timesteps}, {"prediction", prediction}};
  if (schedule == "betas") j["betas"] = betas;  // nlohmann writes the shortest text that reads back exactly
  if (rescale_timesteps) j["rescale_timesteps"] = true;
  return j.dump();
}

DiffusionSpec DiffusionSpec::of_betas(std::vector<double> betas, const std::string& prediction, const std::string& source) {
  DK_CHECK(!betas.empty(), source, ": no betas");
  for (size_t t = 0; t < betas.size(); ++t)
    DK_CHECK(betas[t] > 0 && betas[t] < 1, source, ": beta[", t, "] = ", betas[t], ", expected a value in (0, 1)");
  DiffusionSpec s{"betas", static_cast<int64_t>(betas.size()), prediction};
  s.betas = std::move(betas);
  parse_prediction(s.prediction);
  return s;
}

DiffusionSpec DiffusionSpec::from_json(const std::string& text, const std::string& source) {
  DiffusionSpec s;
  try {
    const json j = json::parse(text);
    for (const auto& [key, value] : j.items())
      DK_CHECK(key == "schedule" || key == "timesteps" || key == "prediction" || key == "betas" ||
                   key == "rescale_timesteps",
               source, ": unknown diffusion setting '", key, "'");
    s.schedule = j.at("schedule").get<std::string>();
    s.timesteps = j.at("timesteps").get<int64_t>();
    s.prediction = j.at("prediction").get<std::string>();
    if (s.schedule == "betas") s.betas = j.at("betas").get<std::vector<double>>();
    s.rescale_timesteps = j.value("rescale_timesteps", false);
  } catch (const json::exception& e) {
    fail(source, ": malformed diffusion settings (", e.what(), ")");
  }
  if (s.schedule == "betas") {
    DK_CHECK(static_cast<int64_t>(s.betas.size()) == s.timesteps, source, ": ", s.betas.size(), " betas for T = ",
             s.timesteps);
    const bool rescale = s.rescale_timesteps;
    s = of_betas(s.betas, s.prediction, source);
    s.rescale_timesteps = rescale;
  }
  s.noise_schedule();
  parse_prediction(s.prediction);
  return s;
}

namespace {


// Keys of the per-step random streams (timesteps and noise), apart from everything else.
constexpr uint64_t kTimestepStream = 7001, kNoiseStream = 7002, kDropoutStream = 7003;
constexpr uint64_t kSampleSeedOffset = 0x5eed;

// The settings a run is made of, recorded in <run>/run.json when it starts. On --resume the
// ones that define what is being trained must match (a different model, data or seed would
// continue someone else's run); the optimisation settings may change (a lower --lr after a
// diverged run, more --steps), and each change is printed and recorded.
json run_settings(const TrainOptions& o, const nn::UNetConfig& config) {
  return {{"model", o.model},           {"unet", json::parse(config.to_json())},
          {"data", o.dataset},          {"schedule", o.schedule},
          {"timesteps", o.timesteps},   {"prediction", o.prediction},
          {"loss", o.loss},             {"batch", o.batch_size},
          {"pad_to", o.pad_to},         {"flip", o.horizontal_flip},
          {"seed", o.seed},             {"steps", o.steps},
          {"lr", o.lr},                 {"warmup", o.warmup},
          {"lr_schedule", o.lr_schedule}, {"grad_clip", o.grad_clip},
          {"ema", o.ema_decay},         {"ema_start", o.ema_start},
          {"device", o.device.str()}};
}

// What defines the model being trained: these must match on --resume.
const std::vector<std::string> kFixedSettings = {"unet", "data", "schedule", "timesteps", "prediction",
                                                 "loss", "batch", "pad_to", "flip", "seed"};

// The module after moving it (the optimiser and the EMA then hold its tensors on that device).
nn::UNet& moved_to(nn::UNet& net, Device device) {
  net.to(device);
  return net;
}

// Data-parallel runs (dist/): every rank trains the same model on its slice of each global batch
// and the gradients are summed before identical optimiser steps; rank 0 alone owns the run folder
// (prints, checkpoints, samples, metrics). Draws are keyed by the global image index, so the run
// does not depend on the number of ranks beyond float rounding, and may resume on another one.
class Run {
 public:
  Run(const TrainOptions& o, const data::ImageDataset& data)
      : o_(o), comm_(dist::world_for(o.device)), lead_(comm_.rank() == 0), quiet_(o.quiet || !lead_),
        dir_(o.run_dir), config_(nn::load_unet_config(o.model)),
        folder_(o.run_dir, run_settings(o, config_), kFixedSettings, o.resume, o.quiet, comm_),
        net_(config_, o.seed),
        schedule_(NoiseSchedule::named(o.schedule, o.timesteps)),
        prediction_(parse_prediction(o.prediction)),
        loss_kind_(parse_loss(o.loss.empty() ? o.prediction : o.loss)),
        adam_(moved_to(net_, o.device).named_parameters(), adam_options()), ema_(net_, o.ema_decay, o.ema_start),
        loader_(data, {o.batch_size, o.seed, o.horizontal_flip, o.pad_to}) {
    DK_CHECK(o.steps > 0 && o.checkpoint_every > 0 && o.keep_last > 0 && o.log_every > 0,
             "train: --steps, --checkpoint-every, --keep-last and --log-every must be positive");
    DK_CHECK(loader_.image_size() == config_.image_size && data.channels == config_.in_channels,
             "train: dataset ", data.source, " gives ", data.channels, "x", loader_.image_size(), "x",
             loader_.image_size(), " images, model ", o.model, " expects ", config_.in_channels, "x",
             config_.image_size, "x", config_.image_size, " (use --pad-to)");
    schedule_lr_.kind = nn::LrSchedule::parse_kind(o.lr_schedule);
    schedule_lr_.base_lr = o.lr;
    schedule_lr_.warmup_steps = o.warmup;
    schedule_lr_.total_steps = o.steps;
    DK_CHECK(o.batch_size >= comm_.size(), "train: --batch ", o.batch_size, " is smaller than the ",
             comm_.size(), " ranks (each rank needs at least one image of every batch)");
    shard_ = dist::shard_of(o.batch_size, comm_.rank(), comm_.size());
    if (lead_) fs::create_directories(dir_ / "samples");
  }

  TrainResult run();

 private:
  AdamHyper adam_options() const {
    AdamHyper h;
    h.lr = o_.lr;
    return h;
  }
  double train_step(int64_t step, bool& stop, const InterruptGuard& interrupt);
  void save_checkpoint(int64_t step);
  int64_t restore();
  void write_samples(int64_t step);
  void finish(int64_t step);
  nn::Metadata model_metadata(int64_t step) const;

  const TrainOptions& o_;
  dist::Communicator& comm_;
  bool lead_;   // rank 0: the one that writes
  bool quiet_;  // no progress lines: asked for, or not rank 0
  dist::BatchShard shard_;
  fs::path dir_;
  nn::UNetConfig config_;
  RunFolder folder_;  // written by rank 0 only
  nn::UNet net_;
  NoiseSchedule schedule_;
  Prediction prediction_;
  LossKind loss_kind_;
  nn::Adam adam_;
  nn::Ema ema_;
  data::BatchLoader loader_;
  nn::LrSchedule schedule_lr_;
  // Wall-clock training time: before this process (from the checkpoint) and since it started.
  int64_t earlier_seconds_ = 0;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  int64_t train_seconds() const {
    return earlier_seconds_ + static_cast<int64_t>(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  }
};

// One step's forward and backward on this rank's slice; returns the loss of the global batch
// (the ranks' shares summed), and sets `stop` when any rank was interrupted (all of them must stop
// after the same step).
double Run::train_step(int64_t step, bool& stop, const InterruptGuard& interrupt) {
  data::BatchLoader::Batch batch = loader_.next(shard_.first, shard_.count);
  batch.images = to_device(batch.images, o_.device);
  const int64_t b = shard_.count, first = (step - 1) * o_.batch_size + shard_.first;
  std::vector<int64_t> t(b);
  for (int64_t i = 0; i < b; ++i)  // t ~ U{0, ..., T-1}, keyed by (seed, step, i)
    t[i] = std::min<int64_t>(o_.timesteps - 1,
                             static_cast<int64_t>(philox::uniform_at(o_.seed ^ kTimestepStream, 0, first + i) * o_.timesteps));
  const Shape sample_shape(batch.images.shape().begin() + 1, batch.images.shape().end());
  const Tensor eps = sample_noise(sample_shape, first, b, o_.seed ^ kNoiseStream, 0, o_.device);
  const Coefficients c = coefficients(schedule_, t, batch.images);
  const Tensor x_t = q_sample(batch.images, eps, c);
  const Tensor out = net_.forward(x_t, model_time(schedule_, t));
  LossInputs inputs{out, batch.images, eps, x_t, c, &schedule_, t};
  // This rank's share of the global batch's mean loss (dist/batch_collectives.h).
  Tensor loss = dist::rank_share(diffusion_loss(loss_kind_, prediction_, inputs), shard_);
  std::vector<double> value{loss.item()};
  stop = dist::sum_step_scalars(value, interrupt.requested(), comm_);
  DK_CHECK(std::isfinite(value[0]), "train: step ", step, ": the loss is ", value[0],
           "; stopping. The last good checkpoint is in ", (dir_ / "checkpoints").string(),
           " (resume with --resume, perhaps with a lower --lr)");
  loss.backward();
  dist::all_reduce_gradients(net_.parameters(), 1.0, comm_);
  return value[0];
}

nn::Metadata Run::model_metadata(int64_t step) const {
  DiffusionSpec spec{o_.schedule, o_.timesteps, o_.prediction};
  return {{"diffusion", spec.to_json()}, {"step", std::to_string(step)}, {"dataset", o_.dataset},
          {"pad_to", std::to_string(o_.pad_to)}};
}

void Run::save_checkpoint(int64_t step) {
  if (!lead_) return;
  const fs::path folder = folder_.checkpoint_folder(step);
  nn::save_model((folder / "model.safetensors").string(), net_, config_.to_json(), model_metadata(step));
  nn::UNet ema_net(config_);
  ema_.copy_to(ema_net);
  nn::save_model((folder / "ema.safetensors").string(), ema_net, config_.to_json(), model_metadata(step));
  const data::LoaderPosition pos = loader_.position();
  nn::save_training_state((folder / "state.safetensors").string(), adam_, &ema_,
                          {{"step", std::to_string(step)},
                           {"loader_epoch", std::to_string(pos.epoch)},
                           {"loader_index", std::to_string(pos.index)},
                           {"dropout_seed", std::to_string(default_generator().seed)},
                           {"dropout_offset", std::to_string(default_generator().offset)},
                           {"train_seconds", std::to_string(train_seconds())},
                           {"world_size", std::to_string(comm_.size())}});
  folder_.checkpoint_done(step, o_.keep_last);
  folder_.write_loss_chart("training loss (" + o_.model + ")");
}

// Restores the newest checkpoint; returns its step (0 when starting fresh).
int64_t Run::restore() {
  default_generator() = Generator(o_.seed ^ kDropoutStream);  // dropout masks start from the seed
  Generator& dropout = default_generator();
  if (comm_.size() > 1) std::tie(dropout.shard_first, dropout.shard_count, dropout.shard_rows) =
      std::tuple(shard_.first, shard_.count, shard_.total);
  // Rank 0 finds the checkpoint; every rank reads it (the run folder is on a filesystem all
  // ranks see: one machine, or a shared one).
  if (!folder_.latest()) {
    dist::broadcast_tensors(net_.parameters(), comm_);  // rank 0's initial weights everywhere
    return 0;
  }
  const fs::path folder = folder_.latest()->second;
  nn::load_model((folder / "model.safetensors").string(), net_);
  const std::string state_path = (folder / "state.safetensors").string();
  const nn::Metadata meta = nn::load_training_state(state_path, adam_, &ema_);
  loader_.seek({nn::metadata_int(meta, "loader_epoch", state_path), nn::metadata_int(meta, "loader_index", state_path)});
  default_generator().seed = static_cast<uint64_t>(nn::metadata_int(meta, "dropout_seed", state_path));
  default_generator().offset = static_cast<uint64_t>(nn::metadata_int(meta, "dropout_offset", state_path));
  // Checkpoints from before the time was recorded count as 0 s.
  if (meta.count("train_seconds")) earlier_seconds_ = nn::metadata_int(meta, "train_seconds", state_path);
  // The data position and every draw are global: another number of ranks continues the same run
  // (up to float rounding). Checkpoints from before it was recorded were single-process.
  const int64_t saved_world = meta.count("world_size") ? nn::metadata_int(meta, "world_size", state_path) : 1;
  if (saved_world != comm_.size() && !quiet_)
    std::printf("train: the checkpoint was written by %lld rank(s), resuming on %d; the global batch and "
                "the data position are the same\n", static_cast<long long>(saved_world), comm_.size());
  return nn::metadata_int(meta, "step", state_path);
}

void Run::write_samples(int64_t step) {
  if (!lead_) return;
  nn::UNet ema_net(config_);
  ema_net.to(o_.device);
  ema_.copy_to(ema_net);
  ema_net.eval();
  SamplerConfig sampler;
  sampler.steps = o_.sample_steps;
  const Shape shape{config_.in_channels, config_.image_size, config_.image_size};
  const uint64_t seed = o_.seed + kSampleSeedOffset;
  const Tensor x_T = sample_noise(shape, 0, o_.sample_count, seed, 0, o_.device);
  const ModelFn model = [&](const Tensor& x, const Tensor& t) { return ema_net.forward(x, t); };
  const Tensor images = to_device(sample(model, prediction_, schedule_, sampler, x_T, 0, seed), cpu());
  data::write_png((dir_ / "samples" / (step_folder_name(step) + ".png")).string(),
                  data::make_grid(images, static_cast<int64_t>(std::ceil(std::sqrt(o_.sample_count)))),
                  {{"diffkd", "EMA weights at step " + std::to_string(step) + ", DDIM " +
                                  std::to_string(o_.sample_steps) + " steps, eta 0, seed " + std::to_string(seed)}});
}

void Run::finish(int64_t step) {
  if (!lead_) return;
  nn::save_model((dir_ / "model-raw.safetensors").string(), net_, config_.to_json(), model_metadata(step));
  nn::UNet ema_net(config_);
  ema_.copy_to(ema_net);
  nn::save_model((dir_ / "model.safetensors").string(), ema_net, config_.to_json(), model_metadata(step));
}

TrainResult Run::run() {
  const int64_t start = restore();
  TrainResult result;
  result.step = start;
  if (!quiet_)
    std::printf("train: %s (%lld parameters) on %s, %s schedule T=%lld, %s-prediction, batch %lld%s, "
                "%s from step %lld to %lld\n",
                o_.model.c_str(), static_cast<long long>(net_.parameter_count()), o_.dataset.c_str(),
                o_.schedule.c_str(), static_cast<long long>(o_.timesteps), o_.prediction.c_str(),
                static_cast<long long>(o_.batch_size),
                comm_.size() > 1 ? (" split over " + comm_.name()).c_str() : "",
                start > 0 ? "resuming" : "starting", static_cast<long long>(start),
                static_cast<long long>(o_.steps));
  const InterruptGuard interrupt;
  const auto t0 = std::chrono::steady_clock::now();
  ProgressLine progress(o_.steps);
  int64_t window_steps = 0;
  double loss_sum = 0;
  for (int64_t step = start + 1; step <= o_.steps; ++step) {
    const double lr = schedule_lr_.at(step);
    adam_.set_lr(lr);
    bool stop = false;
    const double loss = train_step(step, stop, interrupt);
    // The norm is measured even without clipping (an infinite limit scales nothing): a finite
    // loss can still give non-finite gradients, which would poison the weights and every later
    // checkpoint.
    const double grad_norm = nn::clip_grad_norm(
        net_.parameters(), o_.grad_clip > 0 ? o_.grad_clip : std::numeric_limits<double>::infinity());
    DK_CHECK(std::isfinite(grad_norm), "train: step ", step, ": the gradient norm is ", grad_norm,
             "; stopping before the update. The last good checkpoint is in ",
             (dir_ / "checkpoints").string(), " (resume with --resume, perhaps with a lower --lr)");
    adam_.step();
    adam_.zero_grad();
    ema_.update(net_, step);
    result = {step, false, loss};
    loss_sum += loss;
    ++window_steps;
    if (step % o_.log_every == 0 || step == o_.steps) {
      char fields[64];
      std::snprintf(fields, sizeof fields, "loss %.5f  lr %.2e", loss_sum / window_steps, lr);
      const double rate = progress.report(step, window_steps, fields, quiet_);
      folder_.log_metrics(step, {{"loss", loss_sum / window_steps}, {"grad_norm", grad_norm}, {"lr", lr}, {"steps_per_s", rate}});
      window_steps = 0;
      loss_sum = 0;
    }
    if (step % o_.checkpoint_every == 0 || step == o_.steps || stop) save_checkpoint(step);
    if (o_.sample_every > 0 && (step % o_.sample_every == 0 || step == o_.steps)) write_samples(step);
    if (stop) {
      if (!quiet_) std::printf("interrupted: checkpoint saved at step %lld; continue with --resume\n", static_cast<long long>(step));
      result.interrupted = true;
      break;
    }
  }
  if (!result.interrupted && result.step == o_.steps) finish(result.step);
  if (!quiet_ && !result.interrupted)
    std::printf("train: done at step %lld in %s (%s in all, across resumes); EMA model in %s\n",
                static_cast<long long>(result.step),
                format_duration(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()).c_str(),
                format_duration(static_cast<double>(train_seconds())).c_str(),
                (dir_ / "model.safetensors").string().c_str());
  return result;
}

}  // namespace

TrainResult train_diffusion(const TrainOptions& options, const data::ImageDataset& train_set) {
  Run run(options, train_set);
  return run.run();
}

}  // namespace diffkd::diffusion

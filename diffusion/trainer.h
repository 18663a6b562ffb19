#pragma once
// The teacher training loop (Ho et al. 2020, Algorithm 1, with the parameterisation of
// diffusion/gaussian.h): draw x0 from the data, t uniformly, eps ~ N(0, I); regress the network's
// output on its target at x_t; Adam with warm-up, gradient clipping, EMA of weights.
//
// A run lives in a folder: checkpoints/step-<N>/{model,ema,state}.safetensors (the last K kept),
// latest.json naming the newest, metrics.csv and metrics.jsonl, loss.png, samples/step-<N>.png
// (EMA weights, DDIM, a fixed noise bank), and on completion model.safetensors (EMA) and
// model-raw.safetensors. Every random draw is keyed by (seed, step), the data order by (seed,
// epoch) and dropout by a generator saved in the state, so `resume` continues bit for bit (at the
// same thread count). Ctrl-C saves a checkpoint and stops; a non-finite loss stops the run with
// an error and leaves the last good checkpoint untouched.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "diffusion/schedule.h"
#include "tensor/device.h"

namespace diffkd::diffusion {

struct TrainOptions {
  std::string model = "mnist-unet";  // preset or JSON path
  std::string dataset = "mnist";     // recorded in the run; the caller loads it
  std::string run_dir = "runs/teacher";
  std::string schedule = "cosine";
  int64_t timesteps = 1000;
  std::string prediction = "v";
  std::string loss;  // empty: the MSE of the prediction; or snr-trunc, hybrid (diffusion/losses.h)
  int64_t steps = 20000;
  int64_t batch_size = 64;
  double lr = 2e-4;
  int64_t warmup = 500;
  std::string lr_schedule = "constant";  // constant, linear or cosine (to 0 at `steps`)
  double grad_clip = 1.0;                // 0 disables
  double ema_decay = 0.9995;
  int64_t ema_start = 0;
  int64_t log_every = 50;
  int64_t checkpoint_every = 500;
  int64_t keep_last = 3;
  int64_t sample_every = 1000;  // 0 disables sample grids
  int64_t sample_count = 64;
  int64_t sample_steps = 50;
  int64_t pad_to = 0;
  bool horizontal_flip = false;
  uint64_t seed = 0;
  bool resume = false;
  bool quiet = false;  // no progress lines (tests)
  Device device = cpu();  // where the model trains (bit-identical resume: the same device and threads)
};

struct TrainResult {
  int64_t step = 0;       // the last completed step
  bool interrupted = false;
  double last_loss = 0;
};

TrainResult train_diffusion(const TrainOptions& options, const data::ImageDataset& train_set);

// The diffusion settings a model checkpoint carries in its metadata ("diffusion" key), so that
// sampling needs nothing but the file. A schedule is a name (NoiseSchedule::named) or "betas":
// the file's own beta_1..beta_T (a teacher imported with trained or non-standard betas), kept in
// the JSON as exact decimal doubles.
struct DiffusionSpec {
  DiffusionSpec() = default;
  DiffusionSpec(std::string schedule_name, int64_t steps, std::string prediction_name)
      : schedule(std::move(schedule_name)), timesteps(steps), prediction(std::move(prediction_name)) {}

  std::string schedule = "cosine";
  int64_t timesteps = 1000;
  std::string prediction = "v";
  std::vector<double> betas;  // schedule "betas" only: timesteps values in (0, 1)
  // The network was trained on t * 1000 / T (improved-diffusion's rescale_timesteps).
  bool rescale_timesteps = false;

  NoiseSchedule noise_schedule() const;
  std::string to_json() const;
  static DiffusionSpec from_json(const std::string& json, const std::string& source);
  // A spec of the given betas ("betas" schedule); throws naming `source` unless each is in (0, 1).
  static DiffusionSpec of_betas(std::vector<double> betas, const std::string& prediction, const std::string& source);
};

}  // namespace diffkd::diffusion

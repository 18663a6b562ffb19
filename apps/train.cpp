// `diffkd train`: trains a diffusion model (the teacher) on a dataset; see diffusion/trainer.h
// for the run folder it writes and how --resume continues it exactly.

#include <cstdio>

#include "apps/commands.h"
#include "data/registry.h"
#include "diffusion/trainer.h"
#include "dist/communicator.h"
#include "nn/presets.h"

namespace diffkd::apps {

namespace {

diffusion::TrainOptions options;
bool flip_on = false, flip_off = false;

int run_train() {
  const data::ImageDataset train_set = data::load_dataset(options.dataset, data::Split::Train);
  // Defaults that follow the data: flips for colour images (CIFAR), never for digits, whose
  // mirror images are other shapes; zero padding up to the model's size (MNIST 28 -> 32).
  options.horizontal_flip = flip_on || (!flip_off && train_set.channels == 3);
  if (options.pad_to < 0) {
    const int64_t model_size = nn::load_unet_config(options.model).image_size;
    options.pad_to = train_set.height == train_set.width && train_set.height < model_size ? model_size : 0;
  }
  if (dist::world().rank() == 0)  // under mpirun, rank 0 speaks for all
    std::printf("data: %s, %lld images of %lldx%lldx%lld%s%s\n", train_set.source.c_str(),
                static_cast<long long>(train_set.count), static_cast<long long>(train_set.channels),
                static_cast<long long>(train_set.height), static_cast<long long>(train_set.width),
                options.pad_to > 0 ? (", zero-padded to " + std::to_string(options.pad_to)).c_str() : "",
                options.horizontal_flip ? ", random horizontal flips" : "");
  options.device = selected_device();
  if (options.device.type != DeviceType::CPU && dist::world().rank() == 0) std::printf("device: %s\n", options.device.str().c_str());
  const diffusion::TrainResult r = diffusion::train_diffusion(options, train_set);
  return r.interrupted ? 130 : 0;
}

}  // namespace

void add_train_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("train", "Train a diffusion model (the teacher) on a dataset");
  c->add_option("--model", options.model, "model preset or JSON config")->capture_default_str();
  c->add_option("--data", options.dataset, data::kDatasetHelp)->capture_default_str();
  c->add_option("--run-dir", options.run_dir, "run folder (checkpoints, metrics, samples)")->capture_default_str();
  c->add_flag("--resume", options.resume, "continue the run in --run-dir from its latest checkpoint");
  c->add_option("--steps", options.steps, "total optimiser steps")->capture_default_str();
  c->add_option("--batch", options.batch_size, "batch size")->capture_default_str();
  c->add_option("--lr", options.lr, "peak learning rate (Adam)")->capture_default_str();
  c->add_option("--warmup", options.warmup, "linear warm-up steps")->capture_default_str();
  c->add_option("--lr-schedule", options.lr_schedule, "after warm-up: constant, linear or cosine")->capture_default_str();
  c->add_option("--grad-clip", options.grad_clip, "global gradient-norm clip (0: off)")->capture_default_str();
  c->add_option("--ema", options.ema_decay, "EMA decay of the weights")->capture_default_str();
  c->add_option("--ema-start", options.ema_start, "steps before the EMA starts averaging")->capture_default_str();
  c->add_option("--schedule", options.schedule, "noise schedule: cosine, linear or rdd-cosine (T = 1025: pass --timesteps 1025)")->capture_default_str();
  c->add_option("--timesteps", options.timesteps, "diffusion steps T")->capture_default_str();
  c->add_option("--prediction", options.prediction, "network output: v, eps or x0")->capture_default_str();
  c->add_option("--loss", options.loss, "loss (default: MSE of the prediction): snr-trunc, or hybrid for "
                "learned-range variance (eps prediction, 2C output channels)");
  options.pad_to = -1;
  c->add_option("--pad-to", options.pad_to,
                "zero-pad images to this size (0: as they are; default: the model's size when the data is smaller)");
  CLI::Option* flip = c->add_flag("--flip", flip_on, "random horizontal flips (default: on for colour data such as CIFAR)");
  c->add_flag("--no-flip", flip_off, "no flips (the default for grey data such as digits)")->excludes(flip);
  c->add_option("--seed", options.seed, "seed of weights, data order, timesteps and noise")->capture_default_str();
  c->add_option("--log-every", options.log_every, "steps between progress lines and metrics rows")->capture_default_str();
  c->add_option("--checkpoint-every", options.checkpoint_every, "steps between checkpoints")->capture_default_str();
  c->add_option("--keep-last", options.keep_last, "checkpoints kept")->capture_default_str();
  c->add_option("--sample-every", options.sample_every, "steps between sample grids (0: none)")->capture_default_str();
  c->add_option("--sample-steps", options.sample_steps, "DDIM steps of the sample grids")->capture_default_str();
  on_run(c, run_train);
}

}  // namespace diffkd::apps

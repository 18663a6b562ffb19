// `diffkd train`: trains a diffusion model (the teacher) on a dataset; see diffusion/trainer.h
// for the run folder it writes and how --resume continues it exactly.

#include <cstdio>

#include "apps/commands.h"
#include "data/registry.h"
#include "diffusion/trainer.h"

namespace diffkd::apps {

namespace {

diffusion::TrainOptions options;

int run_train() {
  const data::ImageDataset train_set = data::load_dataset(options.dataset, data::Split::Train);
  std::printf("data: %s, %lld images of %lldx%lldx%lld\n", train_set.source.c_str(),
              static_cast<long long>(train_set.count), static_cast<long long>(train_set.channels),
              static_cast<long long>(train_set.height), static_cast<long long>(train_set.width));
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
  c->add_option("--pad-to", options.pad_to, "zero-pad images to this size (0: as they are)")->capture_default_str();
  c->add_flag("--flip", options.horizontal_flip, "random horizontal flips (CIFAR; not for digits)");
  c->add_option("--seed", options.seed, "seed of weights, data order, timesteps and noise")->capture_default_str();
  c->add_option("--log-every", options.log_every, "steps between progress lines and metrics rows")->capture_default_str();
  c->add_option("--checkpoint-every", options.checkpoint_every, "steps between checkpoints")->capture_default_str();
  c->add_option("--keep-last", options.keep_last, "checkpoints kept")->capture_default_str();
  c->add_option("--sample-every", options.sample_every, "steps between sample grids (0: none)")->capture_default_str();
  c->add_option("--sample-steps", options.sample_steps, "DDIM steps of the sample grids")->capture_default_str();
  on_run(c, run_train);
}

}  // namespace diffkd::apps

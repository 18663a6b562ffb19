#pragma once
// Adv-KD: adversarial knowledge distillation of a diffusion teacher into a one-pass staged
// generator (Amde Mekonnen et al. 2024; METHODS.md 2). Stage k's head must produce the teacher's
// trajectory state at stage k's timestep and resolution; each stage is trained adversarially only,
// against a discriminator that sees (image, the noise it came from):
//   L_D = softplus(-D(y, z)) + softplus(D(G(z), z)) + 10 GP,   then every D weight clipped to +-0.1
//   GP  = (||grad_x^ D(x^, z)||_2 - 1)^2,  x^ = a y + (1 - a) G(z),  a ~ U(0, 1) per sample (WGAN-GP)
//   L_G = softplus(-D(G(z), z))   (non-saturating; a fresh generator pass after the D step)
// all batch means. The logistic loss (or a Wasserstein one), the penalty and the clipping are each
// switchable, and so is how D's BatchNorm meets the two batches: the official code passes real and
// fake separately, so every BatchNorm normalises each batch by its own statistics. Before the head's
// LeakyReLU and Linear(128, 1) that leaves the batch-mean logit nearly the same for any real and any
// fake batch (equal per-feature means; only the features' spread and shape differ), so a
// batch-mean loss gives D little to learn from: on MNIST both losses stay at log 2 (docs/RESULTS.md).
// "joint" passes real and fake as one batch (one set of statistics), as most GAN code does.

#include <string>
#include <vector>

#include "diffusion/run_folder.h"

#include "nn/adversarial.h"

namespace diffkd::distill {

struct AdversarialOptions {
  std::string gan = "logistic";  // or "wgan": -D(y) + D(G(z)) and -D(G(z))
  double gp_weight = 10.0;       // 0: no penalty
  double clip = 0.1;             // 0: no weight clipping
  std::string d_batch = "separate";  // or "joint": real and fake through D as one batch
};

// The WGAN-GP penalty; its gradient w.r.t. D's weights goes through a double backward.
Tensor gradient_penalty(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                        const Tensor& alpha);

struct DiscriminatorLossParts {
  double real = 0, fake = 0, gp = 0;
};
// fake is treated as a constant (the D step).
Tensor discriminator_loss(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                          const Tensor& alpha, const AdversarialOptions& options, DiscriminatorLossParts* parts = nullptr);
// `real` joins the fake batch in D's pass when options.d_batch is "joint" (a constant there).
Tensor generator_loss(nn::ConditionalDiscriminator& d, const Tensor& fake, const Tensor& noise,
                      const AdversarialOptions& options, const Tensor& real = Tensor());

// The teacher trajectory set (data/generate_sample.py): teacher DDPM ancestral runs (respaced to
// `teacher_steps`, x0 clipped) from the noise of sample i under `seed`, saving the state after the
// steps that match each stage (stage 0 after the first step, the last stage the final sample, the
// others evenly between), zero-padded (-1) to the generator's final size and stored as the
// official 8-bit images, with the generator's input (the noise as an 8-bit image shrunk to the
// noise size). Shards, each complete or absent, so generation resumes.
struct TrajectoryOptions {
  std::string teacher;
  std::string dir = "runs/advkd/trajectories";
  std::string generator = "advkd-mnist";  // generator preset or JSON (its stages and sizes)
  int64_t count = 2000;
  int64_t teacher_steps = 100;
  int64_t shard_size = 500;
  int64_t batch_size = 100;
  bool quantise_noise = true;
  uint64_t seed = 0;
  bool quiet = false;
  Device device = cpu();  // where the teacher samples; the set is stored on the host
};
// Which sampler step (1-based, of `steps`) ends stage k's target, for `stages` stages:
// 1 + k steps / (stages - 1), and the last stage the final sample.
int64_t stage_target_step(int64_t k, int64_t stages, int64_t steps);
int64_t generate_trajectories(const TrajectoryOptions& options);

struct AdvKdOptions {
  std::string teacher;
  std::string trajectories = "runs/advkd/trajectories";
  int64_t epochs = 2;  // stage k trains epochs * (k + 1) epochs (the official: 10 (k + 1))
  int64_t batch_size = 64;
  // One batch size per stage instead (the official CelebA-HQ 256 recipe: 64 for stages 0-7, 32 for
  // stage 8, 16 for stages 9-10); empty: batch_size for every stage.
  std::vector<int64_t> stage_batches;
  double lr = 1e-4;    // Adam (0.5, 0.999) for both networks
  int64_t ndf = 32, max_channels = 128, hidden = 128;
  AdversarialOptions adversarial;
  diffusion::RunControl run{"runs/advkd"};  // folder, seed, cadence, resume
};

struct AdvKdResult {
  std::string model;  // the generator (a one-pass model `sample` and `eval` accept)
  bool interrupted = false;
};

AdvKdResult train_advkd(const AdvKdOptions& options);

}  // namespace diffkd::distill

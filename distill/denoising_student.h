#pragma once
// Denoising Student (Luhman & Luhman 2021; METHODS.md 1): a whole deterministic DDIM trajectory
// x_T -> x_0 of the teacher distilled into ONE network evaluation.
//
// 1. The distillation set (official create_dataset.py): x_T ~ N(0, I); the teacher's DDIM with
//    eta 0 and no clipping over N steps (uniform, or the quadratic sequence
//    i_k = int((k sqrt(800) / (N - 1))^2), which starts at 800, not T - 1); the target is its
//    output, by default quantised to 8 bits as the official code stores it:
//    u8 = trunc(clip(x, -1, 1) * 127.5 + 127.5), read back as u8 / 127.5 - 1.
//    Written in shards (pairs-NNNN.safetensors), each complete or absent, so generation resumes.
//    x_T is not stored: it is the noise of sample index i under the set's seed
//    (diffusion/noise.h), regenerated bit for bit when training.
// 2. The student has the teacher's architecture and starts from its weights; its output is the
//    residual form x^ = x_T - net(x_T, T - 1) (time fixed at the last step), as the official
//    Onestep_Model, for an eps teacher, and the x0 the teacher's parameterisation implies at
//    T - 1 for v and x0 teachers (the residual of a v teacher is noise plus an image); either
//    can be asked for.
// 3. Loss (paper eq. 11, official lossfn): L1 = sum |y - x^| / B (CIFAR-10) or L2 = sum (y - x^)^2 / B.
//    Adam (0.9, 0.98, 1e-8) with linear warm-up, EMA; every eval_every steps the EMA weights are
//    scored on the held-out pairs, and the EMA with the lowest held-out loss is the result
//    (official early stopping).

#include <cstdint>
#include <string>

#include "diffusion/gaussian.h"
#include "diffusion/run_folder.h"

#include "tensor/tensor.h"

namespace diffkd::distill {

// trunc(clip(x, -1, 1) * 127.5 + 127.5) in float32, as integers 0..255 (I64), and back.
Tensor quantise_target(const Tensor& images);
Tensor dequantise_target(const Tensor& bytes);

// The loss of paper eq. 11: "l1" or "l2", summed over pixels, averaged over the batch.
Tensor denoising_student_loss(const std::string& kind, const Tensor& student_image, const Tensor& target);

struct PairOptions {
  std::string teacher;
  std::string dir = "runs/student-pairs";
  int64_t count = 10000;    // training pairs
  int64_t held_out = 1000;  // test pairs (sample indices 0 .. held_out - 1, as the official shard 0)
  int64_t shard_size = 1000;
  int64_t steps = 50;                 // teacher DDIM steps
  std::string spacing = "uniform";    // or "quadratic" (from quadratic_last)
  int64_t quadratic_last = 800;
  bool quantise = true;
  int64_t batch_size = 100;
  uint64_t seed = 0;
  bool quiet = false;
  Device device = cpu();  // where the teacher samples (the shards are the same on every device, within rounding)
};

// Generates the missing shards; returns the number of pairs in the folder.
int64_t generate_pairs(const PairOptions& options);

// The one-step output form a student of a teacher with `teacher_prediction` uses: `requested`
// ("residual" or "x0"), or for "auto" residual for an eps teacher and x0 otherwise.
std::string one_step_form(const std::string& requested, diffusion::Prediction teacher_prediction);

struct StudentOptions {
  std::string teacher;
  std::string pairs = "runs/student-pairs";
  std::string loss = "l1";
  std::string form = "auto";  // "residual", "x0", or "auto": one_step_form's choice
  int64_t steps = 5000;
  int64_t batch_size = 64;
  double lr = 1e-4;
  int64_t warmup = 500;
  double beta2 = 0.98;
  double ema = 0.995;
  double grad_clip = 0;  // the official code does not clip
  int64_t eval_every = 500;
  diffusion::RunControl run{"runs/student"};  // folder, seed, cadence, resume
};

struct StudentResult {
  std::string model;     // the selected EMA student (one-step generator)
  double best_held_out_loss = 0;
  bool interrupted = false;
};

StudentResult train_denoising_student(const StudentOptions& options);

}  // namespace diffkd::distill

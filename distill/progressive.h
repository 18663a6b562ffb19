#pragma once
// Progressive Distillation (Salimans & Ho 2022; METHODS.md 0.5), on a discrete teacher.
//
// A student with N DDIM steps learns to do in one step what its teacher does in two. Time is
// the PD grid t = i / N, i = 0..N, on the teacher's T-step schedule: schedule index
// idx_N(i) = round(i T / N) - 1 for i >= 1, and i = 0 is the clean image (a = 1, sigma = 0)
// (diffusion::trailing_steps; the N-step grid is every other point of the 2N-step one). On RDD's
// 1025-entry schedule, RDD's own grid: index i * 1024 / N, and i = 0 is index 0 (METHODS.md 4.2).
// For a real image x, eps ~ N(0, I) and i ~ U{1..N}, with t = idx_N(i), t' = idx_2N(2i - 1),
// t'' = idx_N(i - 1):
//   z_t   = a_t x + sigma_t eps
//   teacher DDIM (x0 unclipped):  x^ = teacher_x0(z_t, t),  eps^ = (z_t - a_t x^) / sigma_t,
//                                 z_t' = a_t' x^ + sigma_t' eps^,  and again from z_t' to z_t''
//   target: the x~ that takes z_t to z_t'' in ONE student DDIM step (PD eq. 8),
//     x~ = (z_t'' - (sigma_t'' / sigma_t) z_t) / (a_t'' - (sigma_t'' / sigma_t) a_t),
//     eps~ = (z_t - a_t x~) / sigma_t.
//   At i = 1 (t'' clean: a = 1, sigma = 0) the formula gives the second step's x^ exactly.
//   loss: "snr-trunc" max(||x^_S - x~||^2, ||eps^_S - eps~||^2) per sample (PD's truncated SNR
//   weighting, the official default), or "v-mse", or "x-mse".
// After a fixed number of updates per halving (Adam, LR annealed linearly or by cosine to 0 over
// each stage, no EMA, grad clip 1, dropout 0), the student becomes the next stage's teacher.
// Every stage's student is saved, and samples with `--steps N --spacing trailing`.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "diffusion/gaussian.h"
#include "diffusion/losses.h"
#include "diffusion/run_folder.h"
#include "diffusion/sampler.h"
#include "dist/data_parallel.h"

namespace diffkd::distill {

// The three times of student step i on the N-step grid of a T-step schedule (index -1: clean).
struct PdTimes {
  std::vector<int64_t> t, t_mid, t_next;
};
PdTimes pd_times(int64_t total_steps, int64_t student_steps, const std::vector<int64_t>& i);

// a and sigma per sample, with index -1 as the clean image (1, 0).
diffusion::Coefficients grid_coefficients(const diffusion::NoiseSchedule& s, const std::vector<int64_t>& t,
                                          const Tensor& like);

struct PdTarget {
  Tensor x_tilde, eps_tilde;
  Tensor z_mid, z_next;  // the teacher's two DDIM states (diagnostics and tests)
};
// The teacher's two unclipped DDIM steps from z_t and the one-step target (no gradient).
PdTarget progressive_target(const diffusion::ModelFn& teacher, diffusion::Prediction teacher_prediction,
                            const diffusion::NoiseSchedule& s, const Tensor& z_t, const PdTimes& times);

// The student's loss for its output at (z_t, t): "snr-trunc", "v-mse" or "x-mse".
Tensor progressive_loss(const std::string& kind, const Tensor& student_out, diffusion::Prediction student_prediction,
                        const Tensor& z_t, const diffusion::Coefficients& c, const PdTarget& target);

struct ProgressiveOptions {
  std::string teacher;  // model file (diffkd train's model.safetensors)
  std::string dataset = "mnist";
  int64_t start_steps = 128;  // the teacher's DDIM steps on the trailing grid; the first student has half
  int64_t end_steps = 1;
  int64_t updates_per_stage = 2000;
  // The 2- and 1-step students' stages train this many times longer: RDD's code trains them with
  // twice the updates (METHODS.md 4.1); PD uses 1.
  int64_t few_step_update_factor = 1;
  int64_t batch_size = 64;
  double lr = 1e-4;
  std::string lr_anneal = "linear";  // per stage, to 0: linear (official) or cosine (RDD's PD)
  std::string loss = "snr-trunc";
  double grad_clip = 1.0;
  int64_t pad_to = 0;
  bool horizontal_flip = false;  // RDD/PD on CIFAR flip (the CLI follows the data: colour images flip)
  diffusion::RunControl run{"runs/progressive"};  // folder, seed, cadence, resume
};

// What a halving stage trains the student on, one step at a time. PD's own objective is
// progressive_loss on the student's output; RDD replaces it with relational losses on the x0 it
// implies (distill/rdd.h). Its extra state travels with each checkpoint. In a data-parallel run
// the tensors are this rank's rows of the global batch.
struct StageStep {
  int64_t step;  // global step, 1-based
  const Tensor& z_t;
  const diffusion::Coefficients& c;
  const PdTarget& target;
  const Tensor& student_out;
  diffusion::Prediction prediction;
  dist::Communicator& comm;
  const dist::BatchShard& shard;
};

class StageObjective {
 public:
  virtual ~StageObjective() = default;
  virtual std::string method() const = 0;                 // "rdd": recorded in the run and the students
  virtual nlohmann::json settings() const = 0;            // recorded in run.json (all fixed on resume)
  virtual void begin_stage(int64_t stage) = 0;            // stage 0, 1, ...: fresh per-stage state
  // This rank's share of the loss (with gradient to the student) and of its named parts for the
  // metrics (dist/batch_collectives.h: the shares sum to the global batch's values).
  virtual Tensor loss(const StageStep& s, std::vector<std::pair<std::string, double>>& parts) = 0;
  // The objective's own trained parameters: their gradients are summed over the ranks with the
  // student's, before after_update.
  virtual TensorList parameters() const = 0;
  virtual void after_update() = 0;                        // after the student's optimiser step
  virtual void save(const std::string& folder) const = 0;  // into a checkpoint folder
  virtual void load(const std::string& folder) = 0;
};

struct ProgressiveResult {
  std::vector<std::string> students;  // model files, one per stage, in order (N/2, N/4, ... steps)
  bool interrupted = false;
};

// PD when objective is null; otherwise the same halving stages on that objective.
ProgressiveResult progressive_distillation(const ProgressiveOptions& options, const data::ImageDataset& train_set,
                                           StageObjective* objective = nullptr);

}  // namespace diffkd::distill

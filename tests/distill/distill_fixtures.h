#pragma once
// Shared by the distillation tests (and tests/cuda's GPU runs of them): golden files, a float64
// closeness check, a tiny v-prediction teacher (the 8x8 tiny UNet trained for a few steps on the
// synthetic set, once per test process), and each method's tiny run settings.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/registry.h"
#include "diffusion/trainer.h"
#include "distill/advkd.h"
#include "distill/denoising_student.h"
#include "distill/dkdm.h"
#include "distill/progressive.h"
#include "distill/rdd.h"
#include "eval/classifier_eval.h"
#include "nn/safetensors.h"
#include "tests/test_paths.h"

namespace diffkd::testing {

inline safetensors::Contents distill_golden(const std::string& name) {
  return safetensors::load(diffkd::testing::golden_dir() + "/" + name);
}

inline void expect_all_close(const std::vector<double>& ours, const std::vector<double>& ref, double rel, double abs_tol,
                             const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(ours[i], ref[i], rel * std::abs(ref[i]) + abs_tol) << what << " [" << i << "]";
}

// An integer tensor of a golden file (stored as F64 or I64) as indices.
inline std::vector<int64_t> as_ints(const Tensor& t) {
  std::vector<int64_t> out;
  for (double v : t.to_vector()) out.push_back(static_cast<int64_t>(v));
  return out;
}

inline std::string fresh_test_dir(const std::string& name) {
  const std::filesystem::path p = std::filesystem::path(::testing::TempDir()) / ("distill_" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

inline const data::ImageDataset& tiny_images() {
  static const data::ImageDataset d = data::synthetic_shapes(64, 1, 8);
  return d;
}

// model.safetensors of a tiny teacher: 40 steps of the 8x8 tiny UNet on tiny_images(), with T
// diffusion steps (DKDM's pool walks all of them: its tests use T = 100 to stay fast).
inline std::string train_tiny_teacher(int64_t timesteps) {
  diffusion::TrainOptions o;
  o.model = (std::filesystem::path(diffkd::testing::test_configs_dir()) / "tiny-unet.json").string();
  o.dataset = "synthetic";
  // Per process: ctest runs tests that share this teacher in parallel processes.
  o.run_dir = fresh_test_dir("teacher_" + std::to_string(timesteps) + "_" + std::to_string(::getpid()));
  o.timesteps = timesteps;
  o.steps = 40;
  o.batch_size = 8;
  o.warmup = 5;
  o.lr = 1e-3;
  o.ema_decay = 0.5;
  o.checkpoint_every = 40;
  o.sample_every = 0;
  o.pad_to = 0;
  o.quiet = true;
  diffusion::train_diffusion(o, tiny_images());
  return o.run_dir + "/model.safetensors";
}

inline const std::string& tiny_teacher() {
  static const std::string path = train_tiny_teacher(1000);
  return path;
}

inline const std::string& tiny_teacher_100() {
  static const std::string path = train_tiny_teacher(100);
  return path;
}

// PD from the tiny teacher's 4 steps down to 1, `updates` per halving, a log row every step.
inline distill::ProgressiveOptions tiny_pd(const std::string& dir, int64_t updates) {
  distill::ProgressiveOptions o;
  o.teacher = tiny_teacher();
  o.dataset = "synthetic";
  o.run.dir = dir;
  o.start_steps = 4;
  o.end_steps = 1;
  o.updates_per_stage = updates;
  o.batch_size = 8;
  o.lr = 5e-4;
  o.run.log_every = 1;
  o.run.checkpoint_every = 3;
  o.run.quiet = true;
  return o;
}

// The Denoising Student pair set and run of the tests (4-step teacher DDIM, 4 shards).
inline distill::PairOptions tiny_pairs(const std::string& dir) {
  distill::PairOptions p;
  p.teacher = tiny_teacher();
  p.dir = dir;
  p.count = 96;
  p.held_out = 32;
  p.shard_size = 40;  // 4 shards, the last one short
  p.steps = 4;
  p.batch_size = 16;
  p.seed = 7;
  p.quiet = true;
  return p;
}

inline distill::StudentOptions tiny_student(const std::string& pairs, const std::string& run) {
  distill::StudentOptions s;
  s.teacher = tiny_teacher();
  s.pairs = pairs;
  s.run.dir = run;
  s.steps = 60;
  s.batch_size = 16;
  s.lr = 1e-3;
  s.warmup = 5;
  s.ema = 0.8;
  s.eval_every = 20;
  s.run.log_every = 5;
  s.run.checkpoint_every = 7;
  s.run.quiet = true;
  return s;
}

// DKDM on the T = 100 teacher: a pool of 16 states, batch 4, a learned-range student.
inline distill::DkdmOptions tiny_dkdm(const std::string& dir) {
  distill::DkdmOptions o;
  o.teacher = tiny_teacher_100();  // T = 100: the pool walks every step
  o.student_model = (std::filesystem::path(diffkd::testing::test_configs_dir()) / "tiny-unet-learned.json").string();
  o.run.dir = dir;
  o.rho = 0.04;  // round(0.04 * 100) * 4 = 16 states
  o.batch_size = 4;
  o.steps = 40;
  o.lr = 2e-3;
  o.ema = 0.9;
  o.prepare_batch = 16;
  o.run.log_every = 1;
  o.run.checkpoint_every = 5;
  o.run.quiet = true;
  return o;
}

// Adv-KD: 48 trajectories of 6 DDPM steps (made once per process) and a tiny generator and D.
inline const std::string& tiny_trajectories() {
  static const std::string dir = [] {
    distill::TrajectoryOptions t;
    t.teacher = tiny_teacher();
    t.dir = fresh_test_dir("advkd_traj_" + std::to_string(::getpid()));
    t.generator = (std::filesystem::path(diffkd::testing::test_configs_dir()) / "tiny-advkd.json").string();
    t.count = 48;
    t.teacher_steps = 6;
    t.shard_size = 20;
    t.batch_size = 16;
    t.seed = 4;
    t.quiet = true;
    distill::generate_trajectories(t);
    return t.dir;
  }();
  return dir;
}

inline distill::AdvKdOptions tiny_advkd(const std::string& dir) {
  distill::AdvKdOptions o;
  o.teacher = tiny_teacher();
  o.trajectories = tiny_trajectories();
  o.run.dir = dir;
  o.epochs = 2;
  o.batch_size = 8;
  o.lr = 1e-3;
  o.ndf = 4;
  o.max_channels = 8;
  o.hidden = 8;
  o.run.log_every = 1;
  o.run.checkpoint_every = 5;
  o.run.quiet = true;
  return o;
}

// RDD: a tiny feature network (once per process), PD at a higher lr, a small queue.
inline const std::string& tiny_feature_net() {
  static const std::string path = [] {
    eval::ClassifierTrainOptions c;
    c.epochs = 2;
    c.batch_size = 16;
    c.seed = 2;
    c.width1 = 4;
    c.width2 = 8;
    c.hidden = 8;
    c.quiet = true;
    const std::string file = fresh_test_dir("features_" + std::to_string(::getpid())) + ".safetensors";
    eval::train_classifier(tiny_images(), tiny_images(), c, file);
    return file;
  }();
  return path;
}

inline distill::ProgressiveOptions tiny_rdd_run(const std::string& dir, int64_t updates) {
  distill::ProgressiveOptions o = tiny_pd(dir, updates);
  o.lr = 1e-3;
  return o;
}

inline distill::RddOptions tiny_rdd() {
  distill::RddOptions r;
  r.feature_net = tiny_feature_net();
  r.queue_rows = 64;
  r.contrast_rows = 16;
  r.enqueue = 8;
  r.head_lr = 1e-3;
  r.seed = 3;
  return r;
}

// The logged loss of every step of a stage (metrics.csv: step, stage, student_steps, loss, ...).
inline std::vector<double> stage_losses(const std::string& run_dir, int stage) {
  std::ifstream metrics(run_dir + "/metrics.csv");
  std::string line;
  std::getline(metrics, line);
  std::vector<double> losses;
  while (std::getline(metrics, line)) {
    std::vector<double> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(std::stod(c));
    if (cells.at(1) == stage) losses.push_back(cells.at(3));
  }
  return losses;
}

// Mean of the first and the last `n` entries.
inline std::pair<double, double> early_and_late(const std::vector<double>& v, size_t n) {
  double early = 0, late = 0;
  for (size_t k = 0; k < n; ++k) early += v[k] / n, late += v[v.size() - n + k] / n;
  return {early, late};
}

// Every tensor of two safetensors files equal, bit for bit.
inline void expect_same_tensors(const std::string& a_path, const std::string& b_path) {
  const auto a = safetensors::load(a_path), b = safetensors::load(b_path);
  ASSERT_EQ(a.tensors.size(), b.tensors.size()) << a_path;
  for (size_t k = 0; k < a.tensors.size(); ++k)
    ASSERT_EQ(a.tensors[k].second.to_vector(), b.tensors[k].second.to_vector()) << b_path << " " << a.tensors[k].first;
}

}  // namespace diffkd::testing

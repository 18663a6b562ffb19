// Every distillation method on the GPU against the same run on the CPU (`RunControl::device`):
// the logged losses step by step, and the stores the teacher writes on the GPU (Denoising Student
// pairs, Adv-KD trajectories) against the CPU's. Skips with one line without a usable GPU.
//
// Tolerances: each step is a few tiny-UNet passes in f32, summed in another order on the GPU
// (~1e-5 relative), and training compounds it over the handful of steps compared: 2e-3 relative
// on the losses. The stores are 8-bit: a value that rounds to the other side of a level on one
// device differs by one level (1 / 127.5), and only rarely.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "nn/safetensors.h"
#include "tensor/cuda_support.h"
#include "tests/cuda/require_gpu.h"
#include "tests/distill/distill_fixtures.h"
#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

using namespace distill;

class CudaDistill : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFKD_SKIP_UNLESS_GPUS(1, testing::no_gpu_reason());
  }
};

// One column of a run's metrics.csv, by its header name.
std::vector<double> metric_column(const std::string& run_dir, const std::string& name) {
  std::ifstream csv(run_dir + "/metrics.csv");
  std::string line, cell;
  std::getline(csv, line);
  std::stringstream header(line);
  int column = -1;
  for (int k = 0; std::getline(header, cell, ','); ++k)
    if (cell == name) column = k;
  EXPECT_GE(column, 0) << run_dir << "/metrics.csv has no column " << name;
  std::vector<double> values;
  while (std::getline(csv, line)) {
    std::stringstream row(line);
    for (int k = 0; std::getline(row, cell, ','); ++k)
      if (k == column) values.push_back(std::stod(cell));
  }
  return values;
}

void expect_same_losses(const std::string& cpu_run, const std::string& gpu_run, const std::string& column = "loss") {
  const std::vector<double> a = metric_column(cpu_run, column), b = metric_column(gpu_run, column);
  ASSERT_EQ(a.size(), b.size()) << column;
  ASSERT_FALSE(a.empty()) << column;
  for (size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 2e-3 * std::abs(a[k]) + 1e-6) << column << " row " << k;
}

// A tensor of two stores: at most `level` apart (one 8-bit level), and almost all equal.
void expect_same_levels(const std::string& a_path, const std::string& b_path, const std::string& name, double level) {
  const std::vector<double> a = safetensors::load(a_path).at(name).to_vector(), b = safetensors::load(b_path).at(name).to_vector();
  ASSERT_EQ(a.size(), b.size()) << name;
  size_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_LE(std::abs(a[i] - b[i]), level) << name << "[" << i << "]";
    differing += a[i] != b[i];
  }
  EXPECT_LT(differing, a.size() / 100 + 1) << name << ": " << differing << " of " << a.size() << " values differ";
}

TEST_F(CudaDistill, ProgressiveMatchesTheCpu) {
  ProgressiveOptions cpu_run = tiny_pd(fresh_test_dir("cuda_pd_cpu"), 3), gpu_run = tiny_pd(fresh_test_dir("cuda_pd_gpu"), 3);
  gpu_run.run.device = cuda_device();
  progressive_distillation(cpu_run, tiny_images());
  progressive_distillation(gpu_run, tiny_images());
  expect_same_losses(cpu_run.run.dir, gpu_run.run.dir);
}

TEST_F(CudaDistill, RddMatchesTheCpu) {
  ProgressiveOptions cpu_run = tiny_rdd_run(fresh_test_dir("cuda_rdd_cpu"), 3),
                     gpu_run = tiny_rdd_run(fresh_test_dir("cuda_rdd_gpu"), 3);
  gpu_run.run.device = cuda_device();
  RddOptions on_gpu = tiny_rdd();
  on_gpu.device = cuda_device();
  RddObjective cpu_objective(tiny_rdd()), gpu_objective(on_gpu);
  progressive_distillation(cpu_run, tiny_images(), &cpu_objective);
  progressive_distillation(gpu_run, tiny_images(), &gpu_objective);
  for (const std::string column : {"loss", "cfd", "isp2p", "mp2p"}) expect_same_losses(cpu_run.run.dir, gpu_run.run.dir, column);
}

TEST_F(CudaDistill, DenoisingStudentPairsAndTrainingMatchTheCpu) {
  PairOptions cpu_pairs = tiny_pairs(fresh_test_dir("cuda_pairs_cpu")), gpu_pairs = tiny_pairs(fresh_test_dir("cuda_pairs_gpu"));
  cpu_pairs.count = gpu_pairs.count = 8;  // one shard of 40
  gpu_pairs.device = cuda_device();
  generate_pairs(cpu_pairs);
  generate_pairs(gpu_pairs);
  expect_same_levels(cpu_pairs.dir + "/pairs-0000.safetensors", gpu_pairs.dir + "/pairs-0000.safetensors", "target", 1.0);
  // Both students train on the CPU's pairs.
  StudentOptions cpu_run = tiny_student(cpu_pairs.dir, fresh_test_dir("cuda_student_cpu")),
                 gpu_run = tiny_student(cpu_pairs.dir, fresh_test_dir("cuda_student_gpu"));
  cpu_run.steps = gpu_run.steps = 6;
  cpu_run.batch_size = gpu_run.batch_size = 8;
  cpu_run.run.log_every = gpu_run.run.log_every = 1;
  gpu_run.run.device = cuda_device();
  const StudentResult a = train_denoising_student(cpu_run), b = train_denoising_student(gpu_run);
  expect_same_losses(cpu_run.run.dir, gpu_run.run.dir);
  EXPECT_NEAR(a.best_held_out_loss, b.best_held_out_loss, 2e-3 * a.best_held_out_loss);
}

TEST_F(CudaDistill, DkdmPoolAndTrainingMatchTheCpu) {
  DkdmOptions cpu_run = tiny_dkdm(fresh_test_dir("cuda_dkdm_cpu")), gpu_run = tiny_dkdm(fresh_test_dir("cuda_dkdm_gpu"));
  cpu_run.steps = gpu_run.steps = 6;
  gpu_run.run.device = cuda_device();
  dkdm_distillation(cpu_run);
  dkdm_distillation(gpu_run);
  // The pools after up to 99 teacher steps each, then the training steps on them.
  const std::vector<double> a = safetensors::load(cpu_run.run.dir + "/pool.safetensors").at("x").to_vector(),
                            b = safetensors::load(gpu_run.run.dir + "/pool.safetensors").at("x").to_vector();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-3 * (1 + std::abs(a[i]))) << "pool[" << i << "]";
  for (const std::string column : {"loss", "mse", "vb"}) expect_same_losses(cpu_run.run.dir, gpu_run.run.dir, column);
}

TEST_F(CudaDistill, AdvKdTrajectoriesAndTrainingMatchTheCpu) {
  TrajectoryOptions on_gpu;
  on_gpu.teacher = tiny_teacher();
  on_gpu.dir = fresh_test_dir("cuda_traj_gpu");
  on_gpu.generator = (std::filesystem::path(diffkd::testing::test_configs_dir()) / "tiny-advkd.json").string();
  on_gpu.count = 48;  // the fixture's set, made on the GPU
  on_gpu.teacher_steps = 6;
  on_gpu.shard_size = 20;
  on_gpu.batch_size = 16;
  on_gpu.seed = 4;
  on_gpu.quiet = true;
  on_gpu.device = cuda_device();
  generate_trajectories(on_gpu);
  for (const std::string shard : {"/trajectories-0000.safetensors", "/trajectories-0002.safetensors"}) {
    expect_same_levels(tiny_trajectories() + shard, on_gpu.dir + shard, "states", 1.0);  // bytes
    expect_same_levels(tiny_trajectories() + shard, on_gpu.dir + shard, "condition", 2.0 / 255 + 1e-6);  // [-1, 1]
  }
  // Both generators train on the CPU's trajectories: the first stage (2 epochs of 6 batches), past
  // its end (the stage's sample grid) into the second.
  AdvKdOptions cpu_run = tiny_advkd(fresh_test_dir("cuda_advkd_cpu")), gpu_run = tiny_advkd(fresh_test_dir("cuda_advkd_gpu"));
  cpu_run.run.stop_after = gpu_run.run.stop_after = 14;
  gpu_run.run.device = cuda_device();
  train_advkd(cpu_run);
  train_advkd(gpu_run);
  for (const std::string column : {"loss", "loss_g", "gp"}) expect_same_losses(cpu_run.run.dir, gpu_run.run.dir, column);
}

}  // namespace
}  // namespace diffkd::testing

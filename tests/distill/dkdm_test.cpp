// DKDM: the pool advances as specified (one step per use, reset at t = 0), the loss falls, a run
// resumes bit-identically, and it never needs a dataset (the CLI test runs it with none).

#include "distill/dkdm.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "diffusion/generate.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

std::vector<int64_t> counters(const std::string& pool_file) {
  std::vector<int64_t> t;
  for (double v : safetensors::load(pool_file).at("t").to_vector()) t.push_back(static_cast<int64_t>(v));
  return t;
}

TEST(Dkdm, ThePoolIsPreparedToRandomStopsAndEachUseAdvancesOneStep) {
  const std::string dir = fresh_test_dir("dkdm_pool");
  DkdmOptions o = tiny_dkdm(dir);
  o.steps = 1;
  const DkdmResult r = dkdm_distillation(o);
  EXPECT_EQ(r.pool_size, 16);
  const std::vector<int64_t> prepared = counters(dir + "/pool.safetensors");
  int64_t expected_evaluations = 0;
  for (int64_t t : prepared) {
    EXPECT_GE(t, 1);
    EXPECT_LE(t, 99);  // t_end ~ U{1..T-1}
    expected_evaluations += 100 - t;  // every state walked from T down to its stop
  }
  EXPECT_EQ(r.teacher_evaluations, expected_evaluations);
  const std::vector<int64_t> after = counters(dir + "/checkpoints/step-0000001/pool.safetensors");
  int64_t moved = 0;
  for (size_t i = 0; i < after.size(); ++i) {
    if (after[i] != prepared[i]) {
      EXPECT_EQ(after[i], prepared[i] - 1) << i;
      ++moved;
    }
  }
  EXPECT_EQ(moved, 4);  // b distinct entries, one step each
}

TEST(Dkdm, FinishedStatesRestartFromNoiseAtT) {
  const std::string dir = fresh_test_dir("dkdm_reset");
  // A prepared pool of b = 4 states at counters 0, 1, 2, 50 ("shuffled": all used every step).
  std::filesystem::create_directories(dir);
  Generator gen(1);
  DkdmOptions o = tiny_dkdm(dir);
  o.mode = "shuffled";
  safetensors::save(dir + "/pool.safetensors",
                    {{"x", randn({4, 1, 8, 8}, gen)}, {"t", from_vector({0, 1, 2, 50}, {4}, DType::I64)}},
                    {{"prepared_to", "1"}, {"pool", dkdm_pool_identity(o, 4, {1, 8, 8}, 100)}});
  o.steps = 2;
  o.run.checkpoint_every = 1;
  dkdm_distillation(o);
  EXPECT_EQ(counters(dir + "/checkpoints/step-0000001/pool.safetensors"), (std::vector<int64_t>{99, 0, 1, 49}));
  EXPECT_EQ(counters(dir + "/checkpoints/step-0000002/pool.safetensors"), (std::vector<int64_t>{98, 99, 0, 48}));
}

TEST(Dkdm, APoolFromAnotherRunIsRefused) {
  const std::string dir = fresh_test_dir("dkdm_stale_pool");
  DkdmOptions o = tiny_dkdm(dir);
  o.steps = 1;
  dkdm_distillation(o);  // prepares a pool of 16
  std::filesystem::remove_all(dir + "/checkpoints");
  std::filesystem::remove(dir + "/latest.json");  // as a run killed before its first checkpoint
  o.batch_size = 2;                               // ... restarted with another batch: a pool of 8
  try {
    dkdm_distillation(o);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("was prepared for another run"), std::string::npos) << e.what();
  }
}

TEST(Dkdm, LossFallsAndTheStudentSamples) {
  const std::string dir = fresh_test_dir("dkdm_learns");
  const DkdmResult r = dkdm_distillation(tiny_dkdm(dir));
  std::ifstream metrics(dir + "/metrics.csv");
  std::string line;
  std::getline(metrics, line);
  std::vector<double> losses;
  while (std::getline(metrics, line)) losses.push_back(std::stod(line.substr(line.find(',') + 1)));
  ASSERT_EQ(losses.size(), 40u);
  const auto [early, late] = early_and_late(losses, 10);
  EXPECT_LT(late, 0.8 * early);
  diffusion::LoadedModel student = diffusion::load_diffusion_model(r.model);
  EXPECT_EQ(student.spec.prediction, "eps");
  diffusion::SamplerConfig ddpm;
  ddpm.kind = diffusion::SamplerConfig::Kind::Ddpm;
  ddpm.steps = 5;
  EXPECT_TRUE(std::isfinite(sum(diffusion::generate(student, ddpm, 0, 3, 3, 0)).item()));
}

TEST(Dkdm, ResumedRunIsBitIdentical) {
  const std::string straight = fresh_test_dir("dkdm_straight"), split = fresh_test_dir("dkdm_split");
  DkdmOptions a = tiny_dkdm(straight);
  a.steps = 12;
  dkdm_distillation(a);
  DkdmOptions b = tiny_dkdm(split);
  b.steps = 12;
  b.run.stop_after = 7;
  dkdm_distillation(b);
  b.run.stop_after = 0;
  b.run.resume = true;
  dkdm_distillation(b);
  expect_same_tensors(straight + "/student.safetensors", split + "/student.safetensors");
  expect_same_tensors(straight + "/checkpoints/step-0000012/pool.safetensors",
                      split + "/checkpoints/step-0000012/pool.safetensors");
}

}  // namespace
}  // namespace diffkd::testing

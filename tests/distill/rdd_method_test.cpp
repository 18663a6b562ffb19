// RDD as a stage objective of the PD loop, on the tiny teacher with a tiny feature network: the
// relational loss falls within a stage, and a run resumed mid-stage (head, its Adam and the queue
// restored) is bit-identical.

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "distill/rdd.h"
#include "eval/classifier_eval.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

TEST(RddMethod, RelationalLossFallsWithinAStage) {
  const std::string dir = fresh_test_dir("rdd_learns");
  RddObjective objective(tiny_rdd());
  const ProgressiveResult r = progressive_distillation(tiny_rdd_run(dir, 30), tiny_images(), &objective);
  ASSERT_EQ(r.students.size(), 2u);
  std::ifstream metrics(dir + "/metrics.csv");
  std::string header;
  std::getline(metrics, header);
  EXPECT_NE(header.find("cfd,isp2p,mp2p"), std::string::npos) << header;
  const std::vector<double> stage1 = stage_losses(dir, 1);
  ASSERT_EQ(stage1.size(), 30u);
  const auto [early, late] = early_and_late(stage1, 8);
  EXPECT_LT(late, 0.9 * early);
  // The students record the method.
  EXPECT_EQ(safetensors::load(r.students[1]).metadata.at("method"), "rdd");
}

// A padded run (--pad-to, e.g. 28 -> 32) hands the feature network the centre of each image, the
// size it was trained on: the loss of padded images is that of the images themselves.
TEST(RddMethod, PaddedImagesReachTheFeatureNetworkCropped) {
  Generator gen(5);
  const Tensor x0 = randn({4, 1, 8, 8}, gen), target = randn({4, 1, 8, 8}, gen);
  const diffusion::Coefficients c{from_vector({0.9, 0.7, 0.5, 0.3}, {4, 1, 1, 1}),
                                  from_vector({0.44, 0.71, 0.87, 0.95}, {4, 1, 1, 1})};
  auto loss_of = [&](const Tensor& student_x0, const Tensor& teacher_x0) {
    RddObjective objective(tiny_rdd());
    objective.begin_stage(0);
    PdTarget t;
    t.x_tilde = teacher_x0;
    t.eps_tilde = zeros_like(teacher_x0);
    std::vector<std::pair<std::string, double>> parts;
    const dist::BatchShard whole = dist::shard_of(4, 0, 1);
    return objective.loss({1, student_x0, c, t, student_x0, diffusion::Prediction::X0, dist::world(), whole}, parts)
        .item();
  };
  auto padded = [](const Tensor& x) { return pad(x, {2, 2, 2, 2}, 0.3); };
  EXPECT_DOUBLE_EQ(loss_of(padded(x0), padded(target)), loss_of(x0, target));
}

TEST(RddMethod, ResumedRunIsBitIdentical) {
  const std::string straight = fresh_test_dir("rdd_straight"), split = fresh_test_dir("rdd_split");
  {
    RddObjective objective(tiny_rdd());
    progressive_distillation(tiny_rdd_run(straight, 5), tiny_images(), &objective);
  }
  ProgressiveOptions part = tiny_rdd_run(split, 5);
  for (const int64_t stop_at : {4, 0}) {  // stop mid-stage after a checkpoint's step + 1, then finish
    part.run.stop_after = stop_at;
    RddObjective objective(tiny_rdd());
    progressive_distillation(part, tiny_images(), &objective);
    part.run.resume = true;
  }
  for (const std::string file : {"students/steps-0002.safetensors", "students/steps-0001.safetensors"})
    expect_same_tensors(straight + "/" + file, split + "/" + file);
}

}  // namespace
}  // namespace diffkd::testing

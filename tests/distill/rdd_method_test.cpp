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

const std::string& tiny_feature_net() {
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

ProgressiveOptions tiny_rdd_run(const std::string& dir, int64_t updates) {
  ProgressiveOptions o;
  o.teacher = tiny_teacher();
  o.dataset = "synthetic";
  o.run_dir = dir;
  o.start_steps = 4;
  o.end_steps = 1;
  o.updates_per_stage = updates;
  o.batch_size = 8;
  o.lr = 1e-3;
  o.log_every = 1;
  o.checkpoint_every = 3;
  o.quiet = true;
  return o;
}

RddOptions tiny_rdd() {
  RddOptions r;
  r.feature_net = tiny_feature_net();
  r.queue_rows = 64;
  r.contrast_rows = 16;
  r.enqueue = 8;
  r.head_lr = 1e-3;
  r.seed = 3;
  return r;
}

TEST(RddMethod, RelationalLossFallsWithinAStage) {
  const std::string dir = fresh_test_dir("rdd_learns");
  RddObjective objective(tiny_rdd());
  const ProgressiveResult r = progressive_distillation(tiny_rdd_run(dir, 30), tiny_images(), &objective);
  ASSERT_EQ(r.students.size(), 2u);
  std::ifstream metrics(dir + "/metrics.csv");
  std::string header, line;
  std::getline(metrics, header);
  EXPECT_NE(header.find("cfd,isp2p,mp2p"), std::string::npos) << header;
  std::vector<double> stage1;
  while (std::getline(metrics, line)) {
    std::vector<double> cells;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cells.push_back(std::stod(c));
    if (cells[1] == 1) stage1.push_back(cells[3]);
  }
  ASSERT_EQ(stage1.size(), 30u);
  double early = 0, late = 0;
  for (int k = 0; k < 8; ++k) early += stage1[k], late += stage1[22 + k];
  EXPECT_LT(late, 0.9 * early);
  // The students record the method.
  EXPECT_EQ(safetensors::load(r.students[1]).metadata.at("method"), "rdd");
}

TEST(RddMethod, ResumedRunIsBitIdentical) {
  const std::string straight = fresh_test_dir("rdd_straight"), split = fresh_test_dir("rdd_split");
  {
    RddObjective objective(tiny_rdd());
    progressive_distillation(tiny_rdd_run(straight, 5), tiny_images(), &objective);
  }
  ProgressiveOptions part = tiny_rdd_run(split, 5);
  for (const int64_t stop_at : {4, 0}) {  // stop mid-stage after a checkpoint's step + 1, then finish
    part.stop_after = stop_at;
    RddObjective objective(tiny_rdd());
    progressive_distillation(part, tiny_images(), &objective);
    part.resume = true;
  }
  for (const std::string file : {"students/steps-0002.safetensors", "students/steps-0001.safetensors"}) {
    const auto a = safetensors::load(straight + "/" + file), b = safetensors::load(split + "/" + file);
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    for (size_t k = 0; k < a.tensors.size(); ++k)
      ASSERT_EQ(a.tensors[k].second.to_vector(), b.tensors[k].second.to_vector()) << file << " " << a.tensors[k].first;
  }
}

}  // namespace
}  // namespace diffkd::testing

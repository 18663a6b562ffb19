// Denoising Student: the 8-bit targets and the loss against the independent PyTorch golden, and
// the whole path on a tiny teacher: pairs generated in resumable shards, a one-step student that
// beats its initialisation on held-out pairs and samples through `generate`, and a resumed
// training run that is bit-identical.

#include "distill/denoising_student.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "diffusion/generate.h"
#include "eval/metrics.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

TEST(DenoisingStudentGolden, QuantisationAndLossesMatchPyTorch) {
  const auto g = distill_golden("distill_student.safetensors");
  EXPECT_EQ(quantise_target(g.at("teacher_x0")).to_vector(), g.at("target_u8").to_vector());
  expect_all_close(dequantise_target(quantise_target(g.at("teacher_x0"))).to_vector(), g.at("target").to_vector(), 1e-7,
                   1e-7, "target");
  for (const std::string kind : {"l1", "l2", "l1_float"}) {
    Tensor net_out = g.at("net_out").clone_data();
    net_out.requires_grad_();
    const Tensor target = kind == "l1_float" ? g.at("teacher_x0") : g.at("target");
    Tensor loss = denoising_student_loss(kind == "l2" ? "l2" : "l1", g.at("x_T") - net_out, target);
    loss.backward();
    expect_all_close({loss.item()}, {g.at("loss_" + kind).item()}, 1e-12, 1e-12, kind);
    expect_all_close(net_out.grad().to_vector(), g.at("grad_net_out_" + kind).to_vector(), 1e-12, 1e-14, "grad " + kind);
  }
}

TEST(DenoisingStudent, PairShardsResumeAndTheStudentBeatsItsInitialisation) {
  const std::string pairs = fresh_test_dir("ds_pairs");
  EXPECT_EQ(generate_pairs(tiny_pairs(pairs)), 128);
  // A lost shard is regenerated identically; the others are kept.
  const auto before = safetensors::load(pairs + "/pairs-0002.safetensors").at("target").to_vector();
  std::filesystem::remove(pairs + "/pairs-0002.safetensors");
  generate_pairs(tiny_pairs(pairs));
  EXPECT_EQ(safetensors::load(pairs + "/pairs-0002.safetensors").at("target").to_vector(), before);
  // Another set in the same folder is refused.
  PairOptions other = tiny_pairs(pairs);
  other.steps = 8;
  EXPECT_THROW(generate_pairs(other), Error);

  // Training lowers the held-out loss below that of the teacher's weights (the first evaluation
  // after 20 steps already moved; step-0 is the initialisation: measured with a 0-step run).
  const StudentResult r = train_denoising_student(tiny_student(pairs, fresh_test_dir("ds_run")));
  // The student starts from the teacher it distils: pairs of another teacher are refused.
  StudentOptions wrong = tiny_student(pairs, fresh_test_dir("ds_wrong"));
  wrong.teacher = tiny_teacher_100();
  EXPECT_THROW(train_denoising_student(wrong), Error);
  StudentOptions init = tiny_student(pairs, fresh_test_dir("ds_init"));
  init.steps = 1;
  init.lr = 1e-12;  // one step that changes nothing measurable
  init.warmup = 0;
  init.eval_every = 1;
  const StudentResult initial = train_denoising_student(init);
  EXPECT_LT(r.best_held_out_loss, 0.8 * initial.best_held_out_loss);
  // The tiny teacher predicts v: the default reads it as the x0 it implies at T - 1, which starts
  // closer to the targets than the eps teacher's residual x_T - net(x_T), noise plus an image
  // (measured: held-out L1 23.2 against 29.8 for this 40-step teacher).
  StudentOptions residual = init;
  residual.run.dir = fresh_test_dir("ds_init_residual");
  residual.form = "residual";
  const StudentResult initial_residual = train_denoising_student(residual);
  EXPECT_LT(initial.best_held_out_loss, 0.85 * initial_residual.best_held_out_loss);
  EXPECT_EQ(diffusion::load_diffusion_model(initial_residual.model).one_step, "residual");
  // The student is a one-step generator that `generate` runs whatever the sampler says.
  diffusion::LoadedModel student = diffusion::load_diffusion_model(r.model);
  EXPECT_EQ(student.one_step, "x0");
  const Tensor images = diffusion::generate(student, diffusion::SamplerConfig{}, 0, 5, 5, 7);
  EXPECT_EQ(images.shape(), (Shape{5, 1, 8, 8}));
  EXPECT_LE(max(abs(images)).item(), 1.0);
}

TEST(DenoisingStudent, ResumedTrainingIsBitIdentical) {
  const std::string pairs = fresh_test_dir("ds_pairs_resume");
  generate_pairs(tiny_pairs(pairs));
  StudentOptions straight = tiny_student(pairs, fresh_test_dir("ds_straight"));
  straight.steps = 25;
  train_denoising_student(straight);
  StudentOptions split = tiny_student(pairs, fresh_test_dir("ds_split"));
  split.steps = 25;
  split.run.stop_after = 11;  // past a checkpoint (7), before an evaluation (20)
  train_denoising_student(split);
  split.run.stop_after = 0;
  split.run.resume = true;
  train_denoising_student(split);
  expect_same_tensors(straight.run.dir + "/student.safetensors", split.run.dir + "/student.safetensors");
}

TEST(DenoisingStudent, AutoFormFollowsTheTeachersPrediction) {
  EXPECT_EQ(one_step_form("auto", diffusion::Prediction::Eps), "residual");
  EXPECT_EQ(one_step_form("auto", diffusion::Prediction::V), "x0");
  EXPECT_EQ(one_step_form("auto", diffusion::Prediction::X0), "x0");
  EXPECT_EQ(one_step_form("residual", diffusion::Prediction::V), "residual");  // asked for: kept
  EXPECT_EQ(one_step_form("x0", diffusion::Prediction::Eps), "x0");
  EXPECT_THROW(one_step_form("x_0", diffusion::Prediction::Eps), Error);
}

}  // namespace
}  // namespace diffkd::testing

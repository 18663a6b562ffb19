// Progressive Distillation: the target and loss against the independent PyTorch golden
// (tests/golden/make_distill_goldens.py), and the stage loop on a tiny teacher: the loss falls, the
// 1-step student gets closer to its teacher's 4-step sampler, and a resumed run is bit-identical.

#include "distill/progressive.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "diffusion/generate.h"
#include "diffusion/noise.h"
#include "eval/metrics.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;
using diffusion::Prediction;

// The golden's analytic v-teacher: v(z, t) = 0.6 tanh(z) cos(t / 300) + 0.05 t / 1000.
Tensor analytic_teacher(const Tensor& z, const Tensor& time) {
  std::vector<double> scale, shift;
  for (double t : time.to_vector()) {
    scale.push_back(0.6 * std::cos(t / 300.0));
    shift.push_back(0.05 * t / 1000.0);
  }
  return diffusion::per_sample(scale, z) * tanh(z) + diffusion::per_sample(shift, z);
}

TEST(ProgressiveGolden, TargetAndLossesMatchPyTorch) {
  const auto g = distill_golden("distill_pd.safetensors");
  const diffusion::NoiseSchedule s = diffusion::NoiseSchedule::cosine(static_cast<int64_t>(g.at("T").item()));
  for (const std::string p : {"n4.", "n1."}) {
    const std::vector<int64_t> i = as_ints(g.at(p + "i"));
    const int64_t n = p == "n4." ? 4 : 1;
    const PdTimes times = pd_times(s.steps(), n, i);
    EXPECT_EQ(times.t, as_ints(g.at(p + "t"))) << p;
    EXPECT_EQ(times.t_mid, as_ints(g.at(p + "t_mid"))) << p;
    EXPECT_EQ(times.t_next, as_ints(g.at(p + "t_next"))) << p;
    const diffusion::Coefficients c = grid_coefficients(s, times.t, g.at(p + "x"));
    const Tensor z_t = c.signal * g.at(p + "x") + c.noise * g.at(p + "eps");
    expect_all_close(z_t.to_vector(), g.at(p + "z_t").to_vector(), 1e-12, 1e-13, p + "z_t");
    const PdTarget target = progressive_target(analytic_teacher, Prediction::V, s, z_t, times);
    expect_all_close(target.z_mid.to_vector(), g.at(p + "z_mid").to_vector(), 1e-10, 1e-12, p + "z_mid");
    expect_all_close(target.z_next.to_vector(), g.at(p + "z_next").to_vector(), 1e-10, 1e-12, p + "z_next");
    expect_all_close(target.x_tilde.to_vector(), g.at(p + "x_tilde").to_vector(), 1e-9, 1e-11, p + "x_tilde");
    expect_all_close(target.eps_tilde.to_vector(), g.at(p + "eps_tilde").to_vector(), 1e-9, 1e-11, p + "eps_tilde");
    for (const std::string loss : {"snr_trunc", "v_mse"}) {
      Tensor out = g.at(p + "student_out").clone_data();
      out.requires_grad_();
      Tensor value = progressive_loss(loss == "snr_trunc" ? "snr-trunc" : "v-mse", out, Prediction::V, z_t, c, target);
      value.backward();
      expect_all_close({value.item()}, {g.at(p + "loss_" + loss).item()}, 1e-9, 1e-13, p + loss);
      expect_all_close(out.grad().to_vector(), g.at(p + "grad_student_out_" + loss).to_vector(), 1e-8, 1e-13,
                       p + "grad " + loss);
    }
  }
}

TEST(Progressive, RddsOwnGridOnThe1025StepSchedule) {
  // METHODS.md 4.2: a 4-step student on T = 1024 (+1) at indices i * 256, and i = 0 is index 0.
  const PdTimes times = pd_times(1025, 4, {1, 2, 3, 4});
  EXPECT_EQ(times.t, (std::vector<int64_t>{256, 512, 768, 1024}));
  EXPECT_EQ(times.t_mid, (std::vector<int64_t>{128, 384, 640, 896}));
  EXPECT_EQ(times.t_next, (std::vector<int64_t>{0, 256, 512, 768}));
  EXPECT_THROW(pd_times(1025, 3, {1}), Error);  // 6 does not divide 1024
  EXPECT_EQ(pd_times(1000, 4, {1}).t_next, (std::vector<int64_t>{-1}));  // the trailing grid: clean
}

TEST(Progressive, KeepLastZeroIsRefusedBeforeAnyWork) {
  ProgressiveOptions o = tiny_pd(fresh_test_dir("pd_keep0"), 2);
  o.run.keep_last = 0;
  EXPECT_THROW(progressive_distillation(o, tiny_images()), Error);
}

// Mean squared distance between a model's samples and the teacher's 4-step samples, same noise.
double distance_to_teacher(const std::string& model_path, const diffusion::SamplerConfig& sampler) {
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(tiny_teacher());
  diffusion::LoadedModel model = diffusion::load_diffusion_model(model_path);
  diffusion::SamplerConfig four;
  four.steps = 4;
  four.spacing = "trailing";
  const Tensor reference = diffusion::generate(teacher, four, 0, 32, 32, 3);
  return eval::fidelity(diffusion::generate(model, sampler, 0, 32, 32, 3), reference).mse;
}

TEST(Progressive, LossFallsAndTheOneStepStudentApproachesItsTeacher) {
  const std::string dir = fresh_test_dir("pd_learns");
  const ProgressiveResult r = progressive_distillation(tiny_pd(dir, 40), tiny_images());
  ASSERT_EQ(r.students.size(), 2u);  // 4 -> 2, 2 -> 1
  EXPECT_NE(r.students[1].find("steps-0001"), std::string::npos);
  // The first stage's loss: the mean of its last ten logged steps below that of its first ten.
  const std::vector<double> stage1 = stage_losses(dir, 1);
  ASSERT_EQ(stage1.size(), 40u);
  const auto [early, late] = early_and_late(stage1, 10);
  EXPECT_LT(late, 0.9 * early);
  // One DDIM step of the teacher itself is the starting point the 1-step student must beat.
  diffusion::SamplerConfig one;
  one.steps = 1;
  one.spacing = "trailing";
  EXPECT_LT(distance_to_teacher(r.students[1], one), 0.9 * distance_to_teacher(tiny_teacher(), one));
}

TEST(Progressive, ResumedRunIsBitIdentical) {
  const std::string straight = fresh_test_dir("pd_straight"), split = fresh_test_dir("pd_split");
  progressive_distillation(tiny_pd(straight, 5), tiny_images());
  // Stop mid-stage (step 3 of 5), resume, stop at the stage boundary (step 5), resume to the end.
  ProgressiveOptions part = tiny_pd(split, 5);
  for (const int64_t stop_at : {3, 5}) {
    part.run.stop_after = stop_at;
    progressive_distillation(part, tiny_images());
    part.run.resume = true;
  }
  part.run.stop_after = 0;
  const ProgressiveResult r = progressive_distillation(part, tiny_images());
  ASSERT_EQ(r.students.size(), 2u);
  for (const std::string file : {"students/steps-0002.safetensors", "students/steps-0001.safetensors"})
    expect_same_tensors(straight + "/" + file, split + "/" + file);
}

// RDD's recipe trains the 2- and 1-step students twice as long: 8 -> 4 gets U updates, 4 -> 2 and
// 2 -> 1 get 2U; a resume in the longer stage lands on the same students.
TEST(Progressive, FewStepStudentsTrainFewStepFactorTimesLongerAndResume) {
  const std::string straight = fresh_test_dir("pd_factor"), split = fresh_test_dir("pd_factor_split");
  ProgressiveOptions o = tiny_pd(straight, 3);
  o.start_steps = 8;
  o.few_step_update_factor = 2;
  o.lr_anneal = "cosine";
  const ProgressiveResult r = progressive_distillation(o, tiny_images());
  ASSERT_EQ(r.students.size(), 3u);
  EXPECT_EQ(stage_losses(straight, 1).size(), 3u);
  EXPECT_EQ(stage_losses(straight, 2).size(), 6u);
  EXPECT_EQ(stage_losses(straight, 3).size(), 6u);
  ProgressiveOptions part = o;
  part.run.dir = split;
  part.run.stop_after = 7;  // step 4 of stage 2's 6
  progressive_distillation(part, tiny_images());
  part.run.stop_after = 0;
  part.run.resume = true;
  progressive_distillation(part, tiny_images());
  for (const std::string file : {"students/steps-0002.safetensors", "students/steps-0001.safetensors"})
    expect_same_tensors(straight + "/" + file, split + "/" + file);
}

}  // namespace
}  // namespace diffkd::testing

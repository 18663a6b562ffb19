// Schedules, parameterisation algebra, samplers' invariances, and the training loop's
// exact resumption, NaN stop and run-folder guard.

#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <filesystem>

#include "data/registry.h"
#include "diffusion/gaussian.h"
#include "diffusion/generate.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "diffusion/sampler.h"
#include "diffusion/trainer.h"
#include "nn/checkpoint.h"
#include "nn/safetensors.h"
#include "tests/nn/tiny_unet.h"
#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

namespace fs = std::filesystem;
using namespace diffusion;

TEST(Schedule, CosineFollowsItsClosedFormAndLinearItsEnds) {
  const NoiseSchedule c = NoiseSchedule::cosine(1000);
  auto f = [](double u) { return std::pow(std::cos((u + 0.008) / 1.008 * M_PI / 2), 2); };
  for (int64_t t : {0, 10, 500, 900})  // unclamped region: abar_t = f((t+1)/T) / f(0)
    EXPECT_NEAR(c.alpha_bar(t), f((t + 1) / 1000.0) / f(0), 1e-12) << t;
  EXPECT_DOUBLE_EQ(c.betas.back(), 0.999);  // the clamp
  const NoiseSchedule l = NoiseSchedule::linear(1000);
  EXPECT_DOUBLE_EQ(l.betas.front(), 1e-4);
  EXPECT_DOUBLE_EQ(l.betas.back(), 0.02);
  EXPECT_EQ(NoiseSchedule::rdd_cosine().steps(), 1025);
  EXPECT_EQ(NoiseSchedule::named("rdd-cosine", 1025).steps(), 1025);
  // A fixed-length schedule: any other T is an error, not a silent 1025.
  try {
    NoiseSchedule::named("rdd-cosine", 1000);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 1025 steps"), std::string::npos) << e.what();
  }
}

TEST(Schedule, RespacingKeepsAlphaBarAndRecomputesBetas) {
  const NoiseSchedule c = NoiseSchedule::cosine(1000);
  const NoiseSchedule r = c.respaced({0, 499, 999});
  EXPECT_EQ(r.timesteps, (std::vector<int64_t>{0, 499, 999}));
  EXPECT_DOUBLE_EQ(r.alpha_bar(1), c.alpha_bar(499));
  EXPECT_NEAR(r.betas[1], 1 - c.alpha_bar(499) / c.alpha_bar(0), 1e-15);
  EXPECT_EQ(uniform_steps(1000, 5), (std::vector<int64_t>{0, 250, 500, 749, 999}));
  const std::vector<int64_t> q = quadratic_steps(800, 100);
  EXPECT_EQ(q.front(), 0);
  EXPECT_EQ(q.back(), 800);
  EXPECT_EQ(q[4], 1);  // int((4 sqrt(800) / 99)^2) = int(1.306)
  // Trailing (PD): starts at T - 1; the 4-step grid is every other point of the 8-step one.
  EXPECT_EQ(trailing_steps(1000, 4), (std::vector<int64_t>{249, 499, 749, 999}));
  EXPECT_EQ(trailing_steps(1000, 1), (std::vector<int64_t>{999}));
  const std::vector<int64_t> t128 = trailing_steps(1000, 128), t64 = trailing_steps(1000, 64);
  for (size_t i = 0; i < t64.size(); ++i) EXPECT_EQ(t64[i], t128[2 * i + 1]) << i;
  SamplerConfig quadratic;
  quadratic.spacing = "quadratic";
  quadratic.steps = 10;
  EXPECT_EQ(sampler_steps(c, quadratic).back(), 800);
  try {  // a 500-step schedule has no index 800
    sampler_steps(NoiseSchedule::cosine(500), quadratic);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ends at index 800, past the schedule's last index 499"), std::string::npos)
        << e.what();
  }
}

// A file's own betas (an imported teacher's) round-trip exactly through the metadata JSON, and
// improved-diffusion's rescaled time reaches the network through respacing too.
TEST(Schedule, OwnBetasAndRescaledTimestepsRoundTrip) {
  std::vector<double> betas;
  for (int t = 0; t < 50; ++t) betas.push_back(1e-4 + 0.0199 * t / 49.0 + 1e-17 * t);
  DiffusionSpec spec = DiffusionSpec::of_betas(betas, "eps", "test");
  spec.rescale_timesteps = true;
  const DiffusionSpec back = DiffusionSpec::from_json(spec.to_json(), "test");
  EXPECT_EQ(back.schedule, "betas");
  EXPECT_EQ(back.betas, betas);  // bit for bit
  EXPECT_TRUE(back.rescale_timesteps);
  const NoiseSchedule s = back.noise_schedule();
  EXPECT_DOUBLE_EQ(s.alpha_bar(1), (1 - betas[0]) * (1 - betas[1]));
  EXPECT_EQ(model_time(s, {49}).to_vector(), std::vector<double>{49 * 20.0});
  EXPECT_EQ(model_time(s.respaced({0, 49}), {1}).to_vector(), std::vector<double>{49 * 20.0});
  EXPECT_EQ(DiffusionSpec::from_json(R"({"schedule":"linear","timesteps":1000,"prediction":"eps"})", "old").to_json(),
            R"({"prediction":"eps","schedule":"linear","timesteps":1000})");
  try {
    DiffusionSpec::from_json(R"({"schedule":"cosine","timesteps":1000,"prediction":"v","rescale_timestep":true})", "m.safetensors");
    FAIL() << "a misspelt setting was taken";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "m.safetensors: unknown diffusion setting 'rescale_timestep'");
  }
  try {
    DiffusionSpec::from_json(R"({"schedule":"betas","timesteps":2,"prediction":"eps","betas":[0.1,1.5]})", "m.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "m.safetensors: beta[1] = 1.5, expected a value in (0, 1)");
  }
}

TEST(Parameterisation, EpsX0AndVConvertExactly) {
  Generator gen(0);
  const Tensor x0 = randn({3, 1, 4, 4}, gen, DType::F64), eps = randn({3, 1, 4, 4}, gen, DType::F64);
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  const Coefficients c = coefficients(s, {0, 400, 999}, x0);
  const Tensor x_t = q_sample(x0, eps, c);
  for (Prediction p : {Prediction::Eps, Prediction::X0, Prediction::V}) {
    const Denoised d = denoise(prediction_target(p, x0, eps, c), p, x_t, c);
    EXPECT_LT(max(abs(d.x0 - x0)).item(), 1e-9) << prediction_name(p);
    EXPECT_LT(max(abs(d.eps - eps)).item(), 1e-9) << prediction_name(p);
  }
}

TEST(Sampler, ASampleDependsOnItsIndexNotItsBatch) {
  nn::UNet net(tiny_unet_config(), 1);
  net.eval();
  const ModelFn model = [&](const Tensor& x, const Tensor& t) { return net.forward(x, t); };
  const NoiseSchedule s = NoiseSchedule::cosine(1000);
  for (auto kind : {SamplerConfig::Kind::Ddim, SamplerConfig::Kind::Ddpm}) {
    SamplerConfig sc;
    sc.kind = kind;
    sc.steps = 4;
    sc.eta = 0.5;
    const Tensor all = sample(model, Prediction::V, s, sc, sample_noise({1, 8, 8}, 0, 3, 9, 0), 0, 9);
    const Tensor third = sample(model, Prediction::V, s, sc, sample_noise({1, 8, 8}, 2, 1, 9, 0), 2, 9);
    EXPECT_LT(max(abs(narrow(all, 0, 2, 1) - third)).item(), 1e-5);
    EXPECT_LE(max(abs(all)).item(), 1.0 + 1e-6);  // x0 clipped at the last step
  }
}

TrainOptions tiny_run(const std::string& dir, int64_t steps) {
  TrainOptions o;
  o.model = (fs::path(diffkd::testing::test_configs_dir()) / "tiny-unet.json").string();
  o.dataset = "synthetic";
  o.run_dir = dir;
  o.steps = steps;
  o.batch_size = 4;
  o.warmup = 2;
  o.log_every = 1;
  o.checkpoint_every = 3;
  o.sample_every = 0;
  o.pad_to = 0;
  o.quiet = true;
  return o;
}

std::string fresh_dir(const std::string& name) {
  const fs::path p = fs::path(::testing::TempDir()) / name;
  fs::remove_all(p);
  return p.string();
}

data::ImageDataset tiny_data() { return data::synthetic_shapes(64, 1, 8); }

TEST(Trainer, ResumedRunIsBitIdenticalToAnUninterruptedOne) {
  const data::ImageDataset d = tiny_data();
  const std::string straight = fresh_dir("run_straight"), split = fresh_dir("run_split");
  train_diffusion(tiny_run(straight, 7), d);
  train_diffusion(tiny_run(split, 4), d);  // stops after step 4 (checkpoint at 3 and 4)
  TrainOptions more = tiny_run(split, 7);
  more.resume = true;
  EXPECT_EQ(train_diffusion(more, d).step, 7);
  const auto a = safetensors::load(straight + "/model-raw.safetensors");
  const auto b = safetensors::load(split + "/model-raw.safetensors");
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i)
    ASSERT_EQ(a.tensors[i].second.to_vector(), b.tensors[i].second.to_vector()) << a.tensors[i].first;
  const auto ema_a = safetensors::load(straight + "/model.safetensors");
  const auto ema_b = safetensors::load(split + "/model.safetensors");
  for (size_t i = 0; i < ema_a.tensors.size(); ++i)
    ASSERT_EQ(ema_a.tensors[i].second.to_vector(), ema_b.tensors[i].second.to_vector());
  EXPECT_TRUE(fs::exists(split + "/loss.png"));
  // The model file alone says how to sample it.
  EXPECT_EQ(DiffusionSpec::from_json(a.metadata.at("diffusion"), "m").prediction, "v");
}

TEST(Trainer, RefusesToOverwriteARunWithoutResume) {
  const std::string dir = fresh_dir("run_guard");
  train_diffusion(tiny_run(dir, 3), tiny_data());
  try {
    train_diffusion(tiny_run(dir, 3), tiny_data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a run"), std::string::npos) << e.what();
  }
}

TEST(Trainer, ResumeRefusesAChangedModelDataOrSeedButTakesMoreSteps) {
  const std::string dir = fresh_dir("run_settings");
  train_diffusion(tiny_run(dir, 3), tiny_data());
  TrainOptions other_seed = tiny_run(dir, 5);
  other_seed.resume = true;
  other_seed.seed = 1;
  try {
    train_diffusion(other_seed, tiny_data());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("run.json records seed = 0, this command gives 1"), std::string::npos) << what;
  }
  TrainOptions other_batch = tiny_run(dir, 5);
  other_batch.resume = true;
  other_batch.batch_size = 8;
  EXPECT_THROW(train_diffusion(other_batch, tiny_data()), Error);
  TrainOptions longer = tiny_run(dir, 5);  // more steps and a lower lr are the run's to change
  longer.resume = true;
  longer.lr = 1e-4;
  EXPECT_EQ(train_diffusion(longer, tiny_data()).step, 5);
  std::ifstream settings(dir + "/run.json");
  const std::string text((std::istreambuf_iterator<char>(settings)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"steps\": 5"), std::string::npos) << text;
  EXPECT_NE(text.find("\"device\": \"cpu\""), std::string::npos) << text;  // a resume on another device is visible
}

TEST(Trainer, CheckpointsCarryTheTrainingTimeAcrossResumes) {
  const std::string dir = fresh_dir("run_time");
  train_diffusion(tiny_run(dir, 3), tiny_data());
  const auto state = safetensors::load(dir + "/checkpoints/step-0000003/state.safetensors");
  ASSERT_TRUE(state.metadata.count("train_seconds"));
  EXPECT_GE(std::stoll(state.metadata.at("train_seconds")), 0);
}

TEST(Trainer, HybridLossTrainsALearnedRangeModelThatSamplesEndToEnd) {
  const std::string dir = fresh_dir("run_hybrid");
  TrainOptions o = tiny_run(dir, 6);
  o.model = (fs::path(diffkd::testing::test_configs_dir()) / "tiny-unet-learned.json").string();
  o.prediction = "eps";
  o.loss = "hybrid";
  EXPECT_TRUE(std::isfinite(train_diffusion(o, tiny_data()).last_loss));
  LoadedModel model = load_diffusion_model(dir + "/model.safetensors");
  SamplerConfig ddpm;
  ddpm.kind = SamplerConfig::Kind::Ddpm;
  ddpm.steps = 4;
  ddpm.variance = SamplerConfig::Variance::FixedSmall;
  const Tensor a = generate(model, ddpm, 0, 3, 3, 5);
  // The model's own variance replaces the fixed one: the flag changes nothing.
  ddpm.variance = SamplerConfig::Variance::FixedLarge;
  const Tensor b = generate(model, ddpm, 0, 3, 3, 5);
  EXPECT_EQ(a.shape(), (Shape{3, 1, 8, 8}));
  EXPECT_EQ(a.to_vector(), b.to_vector());
  EXPECT_LE(max(abs(a)).item(), 1.0);
  SamplerConfig ddim;  // DDIM reads only the eps channels
  ddim.steps = 4;
  const Tensor c = generate(model, ddim, 0, 3, 3, 5);
  EXPECT_TRUE(std::isfinite(sum(c).item()));
  EXPECT_GT(max(abs(c - a)).item(), 0.0);
}

// Images from a given x_T (sample --noise): the drawn noise is initial_noise's, the given one is
// used, and a wrong shape is one line.
TEST(Generate, StartsFromGivenNoise) {
  const std::string dir = fresh_dir("run_given_noise");
  train_diffusion(tiny_run(dir, 2), tiny_data());
  LoadedModel model = load_diffusion_model(dir + "/model.safetensors");
  SamplerConfig ddim;
  ddim.steps = 3;
  const Tensor drawn = generate(model, ddim, 0, 3, 2, 5);
  const Tensor x_T = initial_noise(model, 0, 3, 5);
  EXPECT_EQ(generate(model, ddim, 0, 3, 2, 5, nullptr, x_T).to_vector(), drawn.to_vector());
  EXPECT_GT(max(abs(generate(model, ddim, 0, 3, 2, 5, nullptr, x_T * 0.5) - drawn)).item(), 1e-3);
  try {
    generate(model, ddim, 0, 2, 2, 5, nullptr, x_T);
    FAIL() << "noise of 3 images for 2 was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("expected [2,1,8,8]"), std::string::npos) << e.what();
  }
}

// A model file without diffusion settings (weights and config from elsewhere) needs the
// command line's; a file with them refuses a flag that disagrees and takes one that agrees.
TEST(Generate, DiffusionFlagsCompleteAFileWithoutSettingsAndMustAgreeWithOneThatHasThem) {
  const std::string dir = fresh_dir("run_flags");
  fs::create_directories(dir);
  const nn::UNet net(tiny_unet_config());
  const std::string bare = dir + "/bare.safetensors", full = dir + "/full.safetensors";
  nn::save_model(bare, net, tiny_unet_config().to_json());
  nn::save_model(full, net, tiny_unet_config().to_json(), {{"diffusion", DiffusionSpec{"cosine", 1000, "v"}.to_json()}});
  auto error_of = [](const std::string& path) {
    try {
      load_diffusion_model(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  set_diffusion_flags({});
  EXPECT_NE(error_of(bare).find("bare.safetensors: no diffusion settings in the metadata"), std::string::npos);
  set_diffusion_flags({"linear", "eps", 200});
  const LoadedModel completed = load_diffusion_model(bare);
  EXPECT_EQ(completed.spec.to_json(), (DiffusionSpec{"linear", 200, "eps"}.to_json()));
  EXPECT_EQ(completed.schedule.steps(), 200);
  EXPECT_EQ(error_of(full), full + ": its network was trained with schedule cosine; --schedule linear conflicts "
                                   "(a file's settings are what it was trained with; `diffkd convert` re-records an imported one)");
  set_diffusion_flags({"cosine", "v", 1000});
  EXPECT_EQ(error_of(full), "");
  set_diffusion_flags({"", "", 999});
  EXPECT_NE(error_of(full).find("--timesteps 999 conflicts"), std::string::npos);
  set_diffusion_flags({"betas", "eps", 0});
  EXPECT_NE(error_of(bare).find("--schedule betas is what a file with its own betas records"), std::string::npos);
  set_diffusion_flags({});
}

// `diffkd forward` writes the network's raw output for a given x and t: what the model computes
// in process; a t outside the schedule is one line.
TEST(Generate, ForwardCommandWritesTheRawNetworkOutput) {
  const std::string dir = fresh_dir("run_forward");
  train_diffusion(tiny_run(dir, 2), tiny_data());
  Generator gen(3);
  const Tensor x = randn({2, 1, 8, 8}, gen);
  safetensors::save(dir + "/x.safetensors", {{"x", x}});
  const std::string command = diffkd::testing::cli_path() + " forward --model " + dir + "/model.safetensors --input " +
                              dir + "/x.safetensors --out " + dir + "/out.safetensors";
  ASSERT_EQ(std::system((command + " --t 321 > /dev/null 2>&1").c_str()), 0);
  LoadedModel model = load_diffusion_model(dir + "/model.safetensors");
  model.net->eval();
  NoGradGuard no_grad;
  const Tensor expected = model.net->forward(x, model_time(model.schedule, {321, 321}));
  EXPECT_EQ(safetensors::load(dir + "/out.safetensors").at("output").to_vector(), expected.to_vector());
  EXPECT_NE(std::system((command + " --t 1000 > /dev/null 2>&1").c_str()), 0);  // T = 1000: 0..999
}

extern "C" void marker_handler(int) {}

TEST(Trainer, NonFiniteLossStopsAndKeepsTheLastGoodCheckpoint) {
  const auto before = std::signal(SIGINT, marker_handler);
  const std::string dir = fresh_dir("run_nan");
  TrainOptions o = tiny_run(dir, 3);
  train_diffusion(o, tiny_data());
  o.resume = true;
  o.steps = 20;
  o.lr = 1e30;  // diverges within a step or two
  o.warmup = 0;
  o.grad_clip = 0;
  try {
    train_diffusion(o, tiny_data());
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the loss is"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/step-0000003/model.safetensors"));
  // The run's Ctrl-C handler is gone with the run, even though it stopped with an error.
  EXPECT_EQ(std::signal(SIGINT, before), &marker_handler);
}

// SIGTERM (what mpirun sends each rank on Ctrl-C, and schedulers before a kill) asks the run to
// stop as Ctrl-C does; both handlers are restored after.
TEST(InterruptGuard, SigtermAndSigintRequestAStopAndTheHandlersComeBack) {
  const auto before_int = std::signal(SIGINT, marker_handler), before_term = std::signal(SIGTERM, marker_handler);
  for (const int sig : {SIGTERM, SIGINT}) {
    InterruptGuard guard;
    EXPECT_FALSE(guard.requested());
    std::raise(sig);
    EXPECT_TRUE(guard.requested()) << "signal " << sig;
  }
  EXPECT_EQ(std::signal(SIGINT, before_int), &marker_handler);
  EXPECT_EQ(std::signal(SIGTERM, before_term), &marker_handler);
}

}  // namespace
}  // namespace diffkd::testing

// Score identity Distillation (see sid.h).

#include "distill/sid.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "diffusion/generate.h"
#include "diffusion/losses.h"
#include "diffusion/noise.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "nn/checkpoint.h"
#include "nn/ema.h"
#include "tensor/philox.h"

namespace diffkd::distill {

namespace fs = std::filesystem;
using diffusion::Prediction;

int64_t sid_step_of_sigma(const diffusion::NoiseSchedule& schedule, double sigma) {
  DK_CHECK(sigma > 0 && std::isfinite(sigma), "sid: noise level ", sigma, " is not positive");
  const double target = std::log(sigma);
  int64_t best = 0;
  double best_distance = std::numeric_limits<double>::infinity();
  for (int64_t t = 0; t < schedule.steps(); ++t) {
    const double ab = schedule.alpha_bar(t);
    const double distance = std::abs(0.5 * std::log((1.0 - ab) / ab) - target);
    if (distance < best_distance) {  // strict: a tie keeps the smaller step
      best_distance = distance;
      best = t;
    }
  }
  return best;
}

double sid_sigma_of_draw(double u, double t_max) {
  // EDM's rho-spaced levels: s = 0 is sigma_min, s = 1 sigma_max; t_max / 1000 caps s.
  const double s = u * t_max / 1000.0;
  const double lo = std::pow(kSidSigmaMin, 1.0 / kSidRho), hi = std::pow(kSidSigmaMax, 1.0 / kSidRho);
  return std::pow(hi + (1.0 - s) * (lo - hi), kSidRho);
}

double sid_fake_sigma_of_draw(double n) { return std::exp(kSidFakeLogSigmaMean + kSidFakeLogSigmaStd * n); }

namespace {

// A network's output at (x, t) without a learned-range network's variance channels.
Tensor mean_output(nn::UNet& net, const diffusion::NoiseSchedule& schedule, const Tensor& x,
                   const std::vector<int64_t>& t) {
  const Tensor out = net.forward(x, diffusion::model_time(schedule, t));
  return out.size(1) == 2 * x.size(1) ? narrow(out, 1, 0, x.size(1)) : out;
}


}  // namespace

Tensor sid_denoised(nn::UNet& net, Prediction prediction, const diffusion::NoiseSchedule& schedule, const Tensor& x_t,
                    const std::vector<int64_t>& t) {
  return diffusion::denoise(mean_output(net, schedule, x_t, t), prediction, x_t,
                            diffusion::coefficients(schedule, t, x_t)).x0;
}

Tensor sid_generator_loss(const Tensor& x_g, const Tensor& teacher_x0, const Tensor& fake_x0, double alpha) {
  Tensor weight;
  {
    NoGradGuard no_grad;  // omega(t) / sigma^4 = 1 / sg(mean |x_g - f_phi|)
    weight = clamp_min(diffusion::per_sample_mean(abs(x_g - teacher_x0)), 1e-5);
  }
  const Tensor d = teacher_x0 - fake_x0;
  return mean(diffusion::per_sample_mean(d * ((teacher_x0 - x_g) - alpha * d)) / weight);
}

Tensor sid_fake_score_loss(nn::UNet& fake, Prediction prediction, const diffusion::NoiseSchedule& schedule,
                           const Tensor& x_g, const std::vector<int64_t>& t, const Tensor& eps) {
  diffusion::LossInputs in;
  in.x0 = x_g.detach();
  in.eps = eps;
  in.coefficients = diffusion::coefficients(schedule, t, in.x0);
  in.x_t = diffusion::q_sample(in.x0, eps, in.coefficients);
  in.output = mean_output(fake, schedule, in.x_t, t);
  // The teacher's own objective: the MSE of its prediction kind.
  return diffusion::diffusion_loss(diffusion::parse_loss(diffusion::prediction_name(prediction)), prediction, in);
}

namespace {

// Philox streams (xor-ed with the seed), each keyed by (iteration, sample index in the global batch).
constexpr uint64_t kFakeNoise = 0x51d1, kFakeEps = 0x51d2, kFakeLevel = 0x51d3, kGenNoise = 0x51d4,
                   kGenEps = 0x51d5, kGenLevel = 0x51d6;

// The teacher steps of this rank's samples of iteration `step`'s draws: SiD's generator levels,
// or (fake_levels) EDM's log-normal training levels.
std::vector<int64_t> draw_steps(const SidOptions& o, const diffusion::NoiseSchedule& s, uint64_t stream, int64_t step,
                                const dist::BatchShard& shard, bool fake_levels = false) {
  const uint64_t seed = o.run.seed ^ stream, offset = static_cast<uint64_t>(step);
  std::vector<int64_t> t;
  for (int64_t i = shard.first; i < shard.first + shard.count; ++i)
    t.push_back(sid_step_of_sigma(s, fake_levels ? sid_fake_sigma_of_draw(philox::normal_at(seed, offset, i))
                                                 : sid_sigma_of_draw(philox::uniform_at(seed, offset, i), o.t_max)));
  return t;
}

}  // namespace

SidResult sid_distillation(const SidOptions& o) {
  o.run.check("distill sid");
  DK_CHECK(o.batch_size > 0 && o.steps > 0, "distill sid: --batch and --steps must be positive");
  DK_CHECK(o.lr > 0 && o.fake_lr > 0, "distill sid: --lr and --fake-lr must be positive");
  DK_CHECK(o.t_max > 0 && o.t_max <= 1000, "distill sid: --t-max ", o.t_max, " is outside (0, 1000]");
  DK_CHECK(o.sigma_init > 0 && std::isfinite(o.alpha), "distill sid: --sigma-init must be positive and --alpha finite");
  DK_CHECK(o.fake_levels == "lognormal" || o.fake_levels == "generator", "distill sid: --fake-levels '", o.fake_levels,
           "' is not lognormal or generator");
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(o.teacher);
  DK_CHECK(teacher.net && teacher.one_step.empty(), "distill sid: --teacher ", o.teacher,
           " is a one-step generator, not a diffusion model (SiD needs the teacher's denoiser at every noise level)");
  const Prediction prediction = diffusion::parse_prediction(teacher.spec.prediction);
  const diffusion::NoiseSchedule& schedule = teacher.schedule;
  const int64_t t_init = sid_step_of_sigma(schedule, o.sigma_init);
  nn::UNetConfig config = teacher.net->config();
  config.dropout = 0.0;
  const Shape shape{config.in_channels, config.image_size, config.image_size};
  const Device device = o.run.device;

  const nlohmann::json settings = {{"method", "sid"},       {"teacher", o.teacher},     {"alpha", o.alpha},
                                   {"sigma_init", o.sigma_init}, {"t_max", o.t_max},   {"batch", o.batch_size},
                                   {"steps", o.steps},      {"lr", o.lr},               {"fake_lr", o.fake_lr},
                                   {"beta1", o.beta1},      {"beta2", o.beta2},         {"ema", o.ema},
                                   {"ema_rampup", o.ema_rampup}, {"fake_levels", o.fake_levels},
                                   {"seed", o.run.seed},    {"device", device.str()}};
  // Data-parallel (dist/): each rank draws and trains on its slice of every batch; rank 0 writes.
  dist::Communicator& comm = dist::world_for(device);
  DK_CHECK(o.batch_size >= comm.size(), "distill sid: --batch ", o.batch_size, " is smaller than the ", comm.size(),
           " ranks (each rank needs at least one sample of every batch)");
  const dist::BatchShard shard = dist::shard_of(o.batch_size, comm.rank(), comm.size());
  diffusion::RunFolder run(o.run.dir, settings,
                           {"teacher", "alpha", "sigma_init", "t_max", "batch", "beta1", "beta2", "ema_rampup",
                            "fake_levels", "seed"},
                           o.run.resume, o.run.quiet, comm);

  // The generator and the fake score network start as the teacher; the teacher is frozen (its
  // activations still carry the generator's gradient).
  nn::UNet generator(config), fake(config);
  generator.copy_weights_from(*teacher.net);
  fake.copy_weights_from(*teacher.net);
  teacher.net->to(device);
  teacher.net->set_requires_grad(false);
  generator.to(device);  // before the optimisers and the EMA take their tensors
  fake.to(device);
  generator.train();
  fake.train();
  // SiD's Adam (eps 1e-8) sees its losses summed over an image's pixels, the generator's also
  // scaled 100x (its fp16 loss scaling); ours are means over pixels. Adam is blind to a loss's
  // scale but for eps, so eps / scale gives SiD's updates exactly.
  const double pixels = static_cast<double>(numel_of(shape));
  AdamHyper hyper;
  hyper.beta1 = o.beta1;
  hyper.beta2 = o.beta2;
  hyper.eps = 1e-8 / (100 * pixels);
  hyper.lr = o.lr;
  nn::Adam adam_g(generator.named_parameters(), hyper);
  hyper.eps = 1e-8 / pixels;
  hyper.lr = o.fake_lr;
  nn::Adam adam_f(fake.named_parameters(), hyper);
  nn::Ema ema(generator, o.ema, 0, o.ema_rampup);

  SidResult result;
  result.model = (run.dir() / "generator.safetensors").string();
  result.t_init = t_init;
  int64_t start = 0;
  if (const auto latest = run.latest()) {
    nn::load_model((latest->second / "generator.safetensors").string(), generator);
    nn::load_model((latest->second / "fake.safetensors").string(), fake);
    const std::string state = (latest->second / "generator-state.safetensors").string();
    start = nn::metadata_int(nn::load_training_state(state, adam_g, &ema), "step", state);
    nn::load_training_state((latest->second / "fake-state.safetensors").string(), adam_f, nullptr);
  }
  if (!o.run.quiet)
    std::printf("distill sid: %s -> one step at t = %lld (sigma_init %g), data-free, alpha %g, batch %lld; %s at "
                "iteration %lld of %lld\n",
                o.teacher.c_str(), static_cast<long long>(t_init), o.sigma_init, o.alpha,
                static_cast<long long>(o.batch_size), start > 0 ? "resuming" : "starting", static_cast<long long>(start),
                static_cast<long long>(o.steps));

  auto save_generator = [&](int64_t step) {
    nn::UNet averaged(config);
    ema.copy_to(averaged);
    save_distilled_model(result.model, averaged, teacher.spec, "",
                         {{"method", "sid"}, {"teacher", o.teacher}, {"one_step", "x0"},
                          {"one_step_time", std::to_string(t_init)}, {"step", std::to_string(step)}});
  };
  auto save_checkpoint = [&](int64_t step) {
    const fs::path folder = run.checkpoint_folder(step);
    nn::save_model((folder / "generator.safetensors").string(), generator, config.to_json());
    nn::save_model((folder / "fake.safetensors").string(), fake, config.to_json());
    nn::save_training_state((folder / "generator-state.safetensors").string(), adam_g, &ema,
                            {{"step", std::to_string(step)}});
    nn::save_training_state((folder / "fake-state.safetensors").string(), adam_f, nullptr);
    if (run.writes()) save_generator(step);
    run.checkpoint_done(step, o.run.keep_last);
  };

  diffusion::InterruptGuard interrupt;
  diffusion::ProgressLine progress(o.steps);
  double fake_sum = 0, generator_sum = 0;
  int64_t window = 0;
  auto noise = [&](uint64_t stream, int64_t step) {
    return diffusion::sample_noise(shape, shard.first, shard.count, o.run.seed ^ stream, static_cast<uint64_t>(step),
                                   device);
  };
  for (int64_t step = start + 1; step <= o.steps; ++step) {
    // 1. The fake score network learns the current generator's images.
    Tensor x_fake_phase;
    {
      NoGradGuard no_grad;
      x_fake_phase = diffusion::one_step_image(generator, "x0", prediction, schedule, noise(kFakeNoise, step));
    }
    fake.set_requires_grad(true);
    const std::vector<int64_t> t_fake = draw_steps(o, schedule, kFakeLevel, step, shard, o.fake_levels == "lognormal");
    Tensor loss_f = dist::rank_share(
        sid_fake_score_loss(fake, prediction, schedule, x_fake_phase, t_fake, noise(kFakeEps, step)), shard);
    loss_f.backward();
    dist::all_reduce_gradients(fake.parameters(), 1.0, comm);
    adam_f.step();
    adam_f.zero_grad();
    // 2. The generator, through both (frozen) denoisers at its noised images.
    fake.set_requires_grad(false);
    const Tensor x_g = diffusion::one_step_image(generator, "x0", prediction, schedule, noise(kGenNoise, step));
    const std::vector<int64_t> t = draw_steps(o, schedule, kGenLevel, step, shard);
    const Tensor x_t = diffusion::q_sample(x_g, noise(kGenEps, step), diffusion::coefficients(schedule, t, x_g));
    Tensor loss_g = dist::rank_share(sid_generator_loss(x_g, sid_denoised(*teacher.net, prediction, schedule, x_t, t),
                                                        sid_denoised(fake, prediction, schedule, x_t, t), o.alpha),
                                     shard);
    std::vector<double> shares{loss_f.item(), loss_g.item()};
    const bool interrupted = dist::sum_step_scalars(shares, interrupt.requested(), comm);
    DK_CHECK(std::isfinite(shares[0]) && std::isfinite(shares[1]), "distill sid: iteration ", step,
             ": the fake-score loss is ", shares[0], " and the generator loss ", shares[1],
             "; stopping. The last good checkpoint is in ", (run.dir() / "checkpoints").string());
    loss_g.backward();
    dist::all_reduce_gradients(generator.parameters(), 1.0, comm);
    adam_g.step();
    adam_g.zero_grad();
    ema.update(generator, step);
    fake_sum += shares[0];
    generator_sum += shares[1];
    ++window;
    if (step % o.run.log_every == 0 || step == o.steps) {
      char fields[96];
      std::snprintf(fields, sizeof fields, "loss %.5f (fake score %.5f)", generator_sum / window, fake_sum / window);
      const double rate = progress.report(step, window, fields, o.run.quiet);
      run.log_metrics(step, {{"loss", generator_sum / window}, {"fake_score_loss", fake_sum / window},
                             {"steps_per_s", rate}});
      fake_sum = generator_sum = 0;
      window = 0;
    }
    if (o.run.finish_step(step, o.steps, false, interrupted, run, save_checkpoint)) {
      result.interrupted = true;
      break;
    }
  }
  run.write_loss_chart("SiD generator loss");
  return result;
}

}  // namespace diffkd::distill

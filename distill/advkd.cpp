// Adv-KD (see advkd.h).

#include "distill/advkd.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <utility>

#include "autograd/engine.h"
#include "data/image_io.h"
#include "diffusion/generate.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "nn/atomic_file.h"
#include "nn/checkpoint.h"
#include "nn/presets.h"
#include "tensor/creation.h"
#include "tensor/philox.h"

namespace diffkd::distill {

Tensor gradient_penalty(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                        const Tensor& alpha) {
  const Shape per_sample{alpha.size(0), 1, 1, 1};
  Tensor x_hat = (reshape(alpha, per_sample) * real + (1.0 - reshape(alpha, per_sample)) * fake.detach()).detach();
  x_hat.requires_grad_();
  // d sum(D(x^)) / d x^ with create_graph, so the penalty itself can be differentiated.
  const Tensor g = grad({sum(d.forward(x_hat, noise))}, {x_hat}, {}, true, true)[0];
  const Tensor norm = sqrt(sum(square(flatten(g, 1)), {1}));
  return mean(square(norm - 1.0));
}

namespace {

// D's logits for (real, fake): two passes, each batch with its own BatchNorm statistics (the
// official code), or one pass over both batches.
std::pair<Tensor, Tensor> real_and_fake_logits(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake,
                                               const Tensor& noise, const AdversarialOptions& o) {
  DK_CHECK(o.d_batch == "separate" || o.d_batch == "joint", "adv-kd: unknown D batch mode '", o.d_batch,
           "' (expected separate or joint)");
  if (o.d_batch == "separate") return {d.forward(real, noise), d.forward(fake, noise)};
  const int64_t n = real.size(0);
  const Tensor both = d.forward(concat({real, fake}, 0), concat({noise, noise}, 0));
  return {narrow(both, 0, 0, n), narrow(both, 0, n, fake.size(0))};
}

}  // namespace

Tensor discriminator_loss(nn::ConditionalDiscriminator& d, const Tensor& real, const Tensor& fake, const Tensor& noise,
                          const Tensor& alpha, const AdversarialOptions& o, DiscriminatorLossParts* parts) {
  const auto [d_real, d_fake] = real_and_fake_logits(d, real, fake.detach(), noise, o);
  const bool logistic = o.gan == "logistic";
  DK_CHECK(logistic || o.gan == "wgan", "adv-kd: unknown GAN loss '", o.gan, "' (expected logistic or wgan)");
  const Tensor real_term = logistic ? mean(softplus(-d_real)) : -mean(d_real);
  const Tensor fake_term = logistic ? mean(softplus(d_fake)) : mean(d_fake);
  Tensor total = real_term + fake_term;
  double gp_value = 0;
  if (o.gp_weight > 0) {
    const Tensor gp = gradient_penalty(d, real, fake, noise, alpha);
    gp_value = gp.item();
    total = total + o.gp_weight * gp;
  }
  if (parts) *parts = {real_term.item(), fake_term.item(), gp_value};
  return total;
}

Tensor generator_loss(nn::ConditionalDiscriminator& d, const Tensor& fake, const Tensor& noise, const AdversarialOptions& o,
                      const Tensor& real) {
  DK_CHECK(o.d_batch != "joint" || real.defined(), "adv-kd: a joint D batch needs the real batch for the generator loss");
  const Tensor d_fake = o.d_batch == "joint" ? real_and_fake_logits(d, real.detach(), fake, noise, o).second
                                             : d.forward(fake, noise);
  return o.gan == "logistic" ? mean(softplus(-d_fake)) : -mean(d_fake);
}

}  // namespace diffkd::distill

// ---------------------------------------------------------------------------------------------
// The trajectory set and the stage-by-stage training.

namespace diffkd::distill {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t stage_target_step(int64_t k, int64_t stages, int64_t steps) {
  // The official 11 stages of a 1000-step run: after the steps at t = 999, 899, ..., 99 (steps 1,
  // 101, ..., 901), then the final sample.
  if (k == stages - 1) return steps;
  return 1 + k * steps / (stages - 1);
}

namespace {

std::string shard_name(const fs::path& dir, int64_t k) {
  char name[48];
  std::snprintf(name, sizeof name, "trajectories-%04lld.safetensors", static_cast<long long>(k));
  return (dir / name).string();
}

}  // namespace

int64_t generate_trajectories(const TrajectoryOptions& o) {
  DK_CHECK(o.count > 0 && o.teacher_steps > 0 && o.shard_size > 0 && o.batch_size > 0,
           "advkd trajectories: --trajectories, --teacher-steps, --shard-size and --gen-batch must be positive");
  const nn::StagedGeneratorConfig g = nn::load_generator_config(o.generator);
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(o.teacher, o.device);
  DK_CHECK(teacher.net, o.teacher, ": the Adv-KD teacher must be a diffusion model");
  const nn::UNetConfig& tc = teacher.net->config();
  const int64_t size = g.resolutions.back(), pad = (size - tc.image_size) / 2;
  DK_CHECK(size >= tc.image_size && (size - tc.image_size) % 2 == 0 && g.image_channels == tc.in_channels,
           "advkd: the generator's final ", g.image_channels, "x", size, " images cannot hold the teacher's ",
           tc.in_channels, "x", tc.image_size, " (padded evenly)");
  const json settings = {{"teacher", o.teacher}, {"generator", json::parse(g.to_json())}, {"count", o.count},
                         {"teacher_steps", o.teacher_steps}, {"shard_size", o.shard_size},
                         {"quantise_noise", o.quantise_noise}, {"seed", o.seed}, {"image_size", tc.image_size}};
  // Data-parallel: every rank runs its slice of each shard's trajectories; rank 0 checks the
  // folder and writes.
  dist::Communicator& comm = dist::world_for(o.device);
  const bool writes = comm.rank() == 0;
  const fs::path dir(o.dir);
  if (writes) {
    fs::create_directories(dir);
    if (fs::exists(dir / "trajectories.json")) {
      const json was = diffusion::read_json_file(dir / "trajectories.json");
      DK_CHECK(was == settings, (dir / "trajectories.json").string(), " describes another trajectory set (",
               was.dump(), "); use another folder");
    } else {
      write_file_atomically((dir / "trajectories.json").string(), settings.dump(2) + "\n");
    }
  }
  diffusion::SamplerConfig ddpm;  // the teacher's own ancestral sampler, x0 clipped, respaced
  ddpm.kind = diffusion::SamplerConfig::Kind::Ddpm;
  ddpm.steps = o.teacher_steps;
  const diffusion::Prediction prediction = diffusion::parse_prediction(teacher.spec.prediction);
  const diffusion::ModelFn fn = [&](const Tensor& x, const Tensor& t) { return teacher.net->forward(x, t); };
  const Shape shape{tc.in_channels, tc.image_size, tc.image_size};
  const int64_t stages = g.stages(), shards = (o.count + o.shard_size - 1) / o.shard_size;
  if (!o.quiet)
    std::printf("advkd trajectories: %lld teacher DDPM runs of %lld steps from %s, %lld stage targets each, into %s\n",
                static_cast<long long>(o.count), static_cast<long long>(o.teacher_steps), o.teacher.c_str(),
                static_cast<long long>(stages), o.dir.c_str());
  const auto start = std::chrono::steady_clock::now();
  int64_t made = 0, done = 0;
  std::vector<uint8_t> present(static_cast<size_t>(shards), 0);  // as rank 0 sees the folder
  if (writes)
    for (int64_t k = 0; k < shards; ++k) present[k] = fs::exists(shard_name(dir, k)) ? 1 : 0;
  comm.broadcast(present.data(), shards, 0);
  for (int64_t k = 0; k < shards; ++k)
    if (present[k]) done += std::min(o.shard_size, o.count - k * o.shard_size);
  for (int64_t k = 0; k < shards; ++k) {
    const std::string path = shard_name(dir, k);
    if (present[k]) continue;
    const int64_t first = k * o.shard_size, n = std::min(o.shard_size, o.count - first);
    const dist::BatchShard mine = dist::shard_of(n, comm.rank(), comm.size());
    TensorList conditions, states;
    NoGradGuard no_grad;
    // Trajectory b's noise is keyed by b: the same whichever rank runs it.
    const int64_t my_first = first + mine.first, my_end = my_first + mine.count;
    for (int64_t b = my_first; b < my_end; b += o.batch_size) {
      const int64_t m = std::min(o.batch_size, my_end - b);
      const Tensor x_T = diffusion::sample_noise(shape, b, m, o.seed, 0, o.device);
      TensorList per_stage(stages);
      diffusion::sample(fn, prediction, teacher.schedule, ddpm, x_T, b, o.seed,
                        [&](int64_t step, int64_t total, const Tensor& x) {
                          for (int64_t s = 0; s < stages; ++s)
                            if (stage_target_step(s, stages, total) == step)
                              per_stage[s] = pad > 0 ? diffkd::pad(x, {pad, pad, pad, pad}, -1.0) : x;
                        });
      conditions.push_back(nn::adversarial_condition(to_device(x_T, cpu()), g.noise_size, o.quantise_noise));
      states.push_back(to_device(stack(per_stage, 1), cpu()));  // [m, stages, C, size, size]
    }
    // The shard's rows from every rank (a rank with none contributes an empty slice).
    auto gathered = [&](const TensorList& parts, Shape row) {
      row.insert(row.begin(), 0);
      return dist::gather_batch(parts.empty() ? zeros(row) : concat(parts, 0), mine, comm);
    };
    const Tensor condition = gathered(conditions, {tc.in_channels, g.noise_size, g.noise_size});
    const Tensor state = gathered(states, {stages, tc.in_channels, size, size});
    made += n;
    done += n;
    if (writes)
      safetensors::save(path, {{"condition", condition}, {"states", nn::to_png_bytes(state)}},
                        {{"first", std::to_string(first)}, {"count", std::to_string(n)}}, {{"states", "U8"}});
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!o.quiet) {
      std::printf("  shard %lld/%lld: %lld/%lld trajectories  %.1f ms each  ETA %s\n", static_cast<long long>(k + 1),
                  static_cast<long long>(shards), static_cast<long long>(done), static_cast<long long>(o.count),
                  1000 * seconds / made, diffusion::format_duration(seconds / made * (o.count - done)).c_str());
      std::fflush(stdout);
    }
  }
  comm.barrier();  // the shards are on disk before any rank reads them
  return o.count;
}

AdvKdResult train_advkd(const AdvKdOptions& o) {
  o.run.check("distill advkd");
  DK_CHECK(o.epochs > 0 && o.batch_size > 1, "distill advkd: --epochs and --batch (> 1: BatchNorm) must be positive");
  for (int64_t b : o.stage_batches)
    DK_CHECK(b > 1, "distill advkd: --stage-batches must be above 1 (BatchNorm), got ", b);
  const fs::path dir(o.trajectories);
  const json set = diffusion::read_json_file(dir / "trajectories.json");
  const nn::StagedGeneratorConfig g = nn::StagedGeneratorConfig::from_json(set.at("generator").dump(), o.trajectories);
  const int64_t count = set.at("count").get<int64_t>(), shard_size = set.at("shard_size").get<int64_t>();
  const int64_t stages = g.stages();
  // The whole set in memory: the generator inputs and every stage's target at its resolution.
  TensorList conditions, state_parts;
  for (int64_t k = 0, first = 0; first < count; ++k, first += shard_size) {
    const std::string path = shard_name(dir, k);
    DK_CHECK(fs::exists(path), o.trajectories, ": shard ", path, " is missing (generate the trajectories first; it resumes)");
    const safetensors::Contents shard = safetensors::load(path);
    conditions.push_back(shard.at("condition"));
    state_parts.push_back(shard.at("states"));
  }
  const Tensor condition = concat(conditions, 0), bytes = concat(state_parts, 0);
  std::vector<Tensor> targets(stages);
  for (int64_t s = 0; s < stages; ++s)
    targets[s] = nn::shrink_images(nn::from_png_bytes(contiguous(squeeze(narrow(bytes, 1, s, 1), 1))), g.resolutions[s]);
  DK_CHECK(o.stage_batches.empty() || static_cast<int64_t>(o.stage_batches.size()) == stages,
           "distill advkd: --stage-batches gives ", o.stage_batches.size(), " batch sizes for the generator's ",
           stages, " stages");
  // Stage s: batch_of[s] images a step, batches[s] steps an epoch (drop_last, as the official).
  std::vector<int64_t> batch_of(stages, o.batch_size), batches(stages);
  if (!o.stage_batches.empty()) batch_of = o.stage_batches;
  for (int64_t s = 0; s < stages; ++s) {
    batches[s] = count / batch_of[s];
    DK_CHECK(batches[s] > 0, o.trajectories, ": ", count, " trajectories are fewer than one batch of ", batch_of[s],
             " (stage ", s, ")");
  }
  std::vector<int64_t> stage_end(stages);  // the last global step of each stage
  for (int64_t s = 0, total = 0; s < stages; ++s) stage_end[s] = total += o.epochs * (s + 1) * batches[s];
  const int64_t total = stage_end.back();

  const json settings = {{"method", "advkd"}, {"teacher", o.teacher}, {"trajectories", set}, {"epochs", o.epochs},
                         {"batch", o.stage_batches.empty() ? json(o.batch_size) : json(batch_of)}, {"lr", o.lr}, {"ndf", o.ndf}, {"max_channels", o.max_channels},
                         {"hidden", o.hidden}, {"gan", o.adversarial.gan}, {"gp_weight", o.adversarial.gp_weight},
                         {"clip", o.adversarial.clip}, {"d_batch", o.adversarial.d_batch}, {"seed", o.run.seed}, {"device", o.run.device.str()}};
  // Data-parallel (dist/): each rank trains on its slice of every batch, BatchNorm statistics
  // taken over the whole batch (synced); rank 0 writes.
  dist::Communicator& comm = dist::world_for(o.run.device);
  for (int64_t s = 0; s < stages; ++s)
    DK_CHECK(batch_of[s] >= comm.size(), "distill advkd: stage ", s + 1, "'s batch of ", batch_of[s],
             " is smaller than the ", comm.size(), " ranks (each rank needs at least one image of every batch)");
  dist::Communicator* sync = comm.size() > 1 ? &comm : nullptr;
  diffusion::RunFolder run(o.run.dir, settings, {"trajectories", "epochs", "batch", "ndf", "max_channels", "hidden", "gan",
                                                 "gp_weight", "clip", "d_batch", "seed"},
                           o.run.resume, o.run.quiet, comm);
  nn::StagedGenerator generator(g, o.run.seed);
  generator.to(o.run.device);  // before the optimisers take its tensors
  generator.train();
  nn::sync_batch_norms(generator, sync);
  std::unique_ptr<nn::ConditionalDiscriminator> d;
  std::unique_ptr<nn::Adam> adam_g, adam_d;
  int64_t stage = -1;
  auto begin_stage = [&](int64_t s) {
    stage = s;
    nn::DiscriminatorConfig dc;
    dc.image_channels = g.image_channels;
    dc.noise_channels = g.noise_channels;
    dc.noise_size = g.noise_size;
    dc.resolution = g.resolutions[s];
    dc.ndf = o.ndf;
    dc.max_channels = o.max_channels;
    dc.hidden = o.hidden;
    d = std::make_unique<nn::ConditionalDiscriminator>(dc, o.run.seed * 1000 + 7 + s);  // a new D per stage
    d->to(o.run.device);
    d->train();
    nn::sync_batch_norms(*d, sync);
    AdamHyper hyper;
    hyper.lr = o.lr;
    hyper.beta1 = 0.5;
    hyper.beta2 = 0.999;
    adam_g = std::make_unique<nn::Adam>(generator.stage_parameters(s), hyper);  // blocks 0..s
    adam_d = std::make_unique<nn::Adam>(d->named_parameters(), hyper);
  };
  auto stage_of = [&](int64_t step) {
    return static_cast<int64_t>(std::lower_bound(stage_end.begin(), stage_end.end(), step) - stage_end.begin());
  };
  AdvKdResult result;
  result.model = (run.dir() / "generator.safetensors").string();
  const diffusion::DiffusionSpec spec = diffusion::load_diffusion_model(o.teacher).spec;
  auto save_generator = [&](int64_t trained_stages) {
    nn::save_model(result.model, generator, g.to_json(),
                   {{"generator", "advkd"}, {"diffusion", spec.to_json()}, {"teacher", o.teacher},
                    {"image_size", std::to_string(set.at("image_size").get<int64_t>())},
                    {"quantise_noise", set.at("quantise_noise").get<bool>() ? "1" : "0"},
                    {"stages_trained", std::to_string(trained_stages)}});
  };
  auto save_checkpoint = [&](int64_t step) {
    const fs::path folder = run.checkpoint_folder(step);
    nn::save_model((folder / "generator.safetensors").string(), generator, g.to_json());
    nn::save_model((folder / "discriminator.safetensors").string(), *d, "{}");
    nn::save_training_state((folder / "generator-state.safetensors").string(), *adam_g, nullptr,
                            {{"step", std::to_string(step)}});
    nn::save_training_state((folder / "discriminator-state.safetensors").string(), *adam_d, nullptr);
    run.checkpoint_done(step, o.run.keep_last);
  };
  int64_t start = 0;
  if (const auto latest = run.latest()) {
    start = latest->first;
    nn::load_model((latest->second / "generator.safetensors").string(), generator);
    if (start < total) {
      begin_stage(stage_of(start + 1));
      if (stage_of(start) == stage) {  // mid-stage: D and both optimisers as they were
        nn::load_model((latest->second / "discriminator.safetensors").string(), *d);
        nn::load_training_state((latest->second / "generator-state.safetensors").string(), *adam_g, nullptr);
        nn::load_training_state((latest->second / "discriminator-state.safetensors").string(), *adam_d, nullptr);
      }
    }
  }
  if (!o.run.quiet)
    std::printf("distill advkd: %lld stages (%s), %lld trajectories, batch %s, %lld steps in all; %s at step %lld\n",
                static_cast<long long>(stages), g.to_json().c_str(), static_cast<long long>(count),
                json(batch_of).dump().c_str(), static_cast<long long>(total), start > 0 ? "resuming" : "starting",
                static_cast<long long>(start));

  diffusion::InterruptGuard interrupt;
  diffusion::ProgressLine progress(total);
  double sum_d = 0, sum_g = 0, sum_gp = 0;
  int64_t window = 0;
  for (int64_t step = start + 1; step <= total; ++step) {
    if (stage_of(step) != stage) begin_stage(stage_of(step));
    // The batch: position within the stage's epoch order, keyed by (seed, stage, epoch).
    const int64_t stage_start = stage == 0 ? 0 : stage_end[stage - 1];
    const int64_t batch = batch_of[stage];
    const dist::BatchShard shard = dist::shard_of(batch, comm.rank(), comm.size());  // this rank's rows
    const int64_t within = step - stage_start - 1, epoch = within / batches[stage], b = within % batches[stage];
    const std::vector<int64_t> order = keyed_permutation(count, count, o.run.seed ^ streams::kAdvKdEpochOrder,
                                                         static_cast<uint64_t>(stage * 100000 + epoch));
    const auto mine = order.begin() + b * batch + shard.first;
    std::vector<double> idx(mine, mine + shard.count);
    const Tensor rows = from_vector(idx, {shard.count}, DType::I64);
    const Tensor z = to_device(index_select(condition, 0, rows), o.run.device);
    const Tensor real = to_device(index_select(targets[stage], 0, rows), o.run.device);
    std::vector<double> alpha(shard.count);
    for (int64_t i = 0; i < shard.count; ++i)  // keyed by the row's place in the global batch
      alpha[i] = philox::uniform_at(o.run.seed ^ streams::kAdvKdGpMix, static_cast<uint64_t>(step), shard.first + i);

    // One D step (then its weights clipped), then one G step on a fresh generator pass.
    DiscriminatorLossParts parts;
    Tensor loss_d = dist::rank_share(discriminator_loss(*d, real, generator.forward(z, stage).detach(), z,
                                                        from_vector(alpha, {shard.count}, DType::F32, o.run.device),
                                                        o.adversarial, &parts),
                                     shard);
    std::vector<double> d_shares{loss_d.item(), parts.gp * shard.weight()};
    const bool interrupted = dist::sum_step_scalars(d_shares, interrupt.requested(), comm);
    const double value_d = d_shares[0];
    DK_CHECK(std::isfinite(value_d), "distill advkd: step ", step, ": the discriminator loss is ", value_d);
    loss_d.backward();
    dist::all_reduce_gradients(d->parameters(), 1.0, comm);
    adam_d->step();
    adam_d->zero_grad();
    if (o.adversarial.clip > 0) d->clip_weights(o.adversarial.clip);
    Tensor loss_g = dist::rank_share(generator_loss(*d, generator.forward(z, stage), z, o.adversarial, real), shard);
    std::vector<double> g_shares{loss_g.item()};
    dist::sum_step_scalars(g_shares, false, comm);
    const double value_g = g_shares[0];
    DK_CHECK(std::isfinite(value_g), "distill advkd: step ", step, ": the generator loss is ", value_g);
    loss_g.backward();
    dist::all_reduce_gradients(generator.parameters(), 1.0, comm);
    adam_g->step();
    adam_g->zero_grad();
    d->zero_grad();  // L_G's gradients reached D too; they are not D's to apply
    sum_d += value_d;
    sum_g += value_g;
    sum_gp += d_shares[1];
    ++window;
    const bool stage_done = step == stage_end[stage];
    if (step % o.run.log_every == 0 || stage_done) {
      char fields[128];
      std::snprintf(fields, sizeof fields, "stage %lld/%lld (%lldx%lld)  loss_d %.4f  loss_g %.4f  gp %.4f",
                    static_cast<long long>(stage + 1), static_cast<long long>(stages),
                    static_cast<long long>(g.resolutions[stage]), static_cast<long long>(g.resolutions[stage]),
                    sum_d / window, sum_g / window, sum_gp / window);
      const double rate = progress.report(step, window, fields, o.run.quiet);
      run.log_metrics(step, {{"stage", static_cast<double>(stage + 1)}, {"loss", sum_d / window},
                             {"loss_g", sum_g / window}, {"gp", sum_gp / window}, {"steps_per_s", rate}});
      sum_d = sum_g = sum_gp = 0;
      window = 0;
    }
    if (stage_done && run.writes()) {
      save_generator(stage + 1);
      generator.eval();
      NoGradGuard no_grad;
      data::write_png((run.dir() / ("stage-" + std::to_string(stage + 1) + ".png")).string(),
                      data::make_grid(to_device(generator.forward(to_device(narrow(condition, 0, 0, std::min<int64_t>(64, count)),
                                                                            o.run.device),
                                                                  stage),
                                                cpu()),
                                      8));
      generator.train();
    }
    if (o.run.finish_step(step, total, stage_done, interrupted, run, save_checkpoint)) {
      result.interrupted = true;
      break;
    }
  }
  run.write_loss_chart("Adv-KD discriminator loss");
  return result;
}

}  // namespace diffkd::distill

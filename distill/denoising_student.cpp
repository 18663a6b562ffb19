// Denoising Student (see denoising_student.h).

#include "distill/denoising_student.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "diffusion/generate.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "nn/atomic_file.h"
#include "nn/checkpoint.h"
#include "nn/ema.h"
#include "nn/lr_schedule.h"
#include "tensor/creation.h"
#include "tensor/philox.h"

namespace diffkd::distill {

namespace fs = std::filesystem;
using nlohmann::json;

Tensor quantise_target(const Tensor& images) {
  const std::vector<double> values = images.to_vector();
  std::vector<double> bytes(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    DK_CHECK(std::isfinite(values[i]), "denoising student: the teacher produced a non-finite pixel (", values[i],
             "); is the teacher checkpoint sound?");
    // In float32 and truncated, as the official float_to_image: astype('uint8') of x*127.5 + 127.5.
    const float clipped = std::clamp(static_cast<float>(values[i]), -1.0f, 1.0f);
    bytes[i] = static_cast<double>(static_cast<uint8_t>(clipped * 127.5f + 127.5f));
  }
  return from_vector(bytes, images.shape(), DType::I64);
}

Tensor dequantise_target(const Tensor& bytes) {
  std::vector<double> values = bytes.to_vector();
  for (double& v : values) v = v / 127.5 - 1.0;
  return from_vector(values, bytes.shape(), DType::F32);
}

Tensor denoising_student_loss(const std::string& kind, const Tensor& student_image, const Tensor& target) {
  const double batch = static_cast<double>(student_image.size(0));
  if (kind == "l1") return sum(abs(target - student_image)) / batch;
  DK_CHECK(kind == "l2", "denoising student: unknown loss '", kind, "' (expected l1 or l2)");
  return sum(square(target - student_image)) / batch;
}

namespace {

std::string shard_path(const fs::path& dir, int64_t k) {
  char name[48];
  std::snprintf(name, sizeof name, "pairs-%04lld.safetensors", static_cast<long long>(k));
  return (dir / name).string();
}

diffusion::SamplerConfig teacher_sampler(const PairOptions& o) {
  diffusion::SamplerConfig c;
  c.kind = diffusion::SamplerConfig::Kind::Ddim;
  c.steps = o.steps;
  c.eta = 0.0;
  c.clip_x0 = false;  // the official teacher never clips
  c.spacing = o.spacing;
  c.quadratic_last = o.quadratic_last;
  return c;
}

// What a pair set is: recorded in pairs.json, and every shard must agree with it.
json pair_settings(const PairOptions& o) {
  return {{"teacher", o.teacher},   {"count", o.count},       {"held_out", o.held_out}, {"shard_size", o.shard_size},
          {"steps", o.steps},       {"spacing", o.spacing},   {"quadratic_last", o.quadratic_last},
          {"quantise", o.quantise}, {"seed", o.seed}};
}

}  // namespace

int64_t generate_pairs(const PairOptions& o) {
  DK_CHECK(o.count > 0 && o.held_out > 0 && o.shard_size > 0 && o.batch_size > 0 && o.steps > 0,
           "student pairs: --pairs, --held-out, --shard-size, --batch and --teacher-steps must be positive");
  // Data-parallel: every rank makes its slice of each shard; rank 0 checks the folder and writes.
  dist::Communicator& comm = dist::world_for(o.device);
  const bool writes = comm.rank() == 0;
  const fs::path dir(o.dir);
  const json settings = pair_settings(o);
  const fs::path settings_path = dir / "pairs.json";
  if (writes) {
    fs::create_directories(dir);
    if (fs::exists(settings_path)) {
      const json was = diffusion::read_json_file(settings_path);
      DK_CHECK(was == settings, settings_path.string(), " describes another pair set (", was.dump(),
               "); this command asks for ", settings.dump(), ": use another folder");
    } else {
      write_file_atomically(settings_path.string(), settings.dump(2) + "\n");
    }
  }
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(o.teacher, o.device);
  const diffusion::SamplerConfig sampler = teacher_sampler(o);
  diffusion::sampler_steps(teacher.schedule, sampler);  // a bad sequence fails before any work
  const int64_t total = o.held_out + o.count, shards = (total + o.shard_size - 1) / o.shard_size;
  // Which shards exist, as rank 0 sees them (shards are written atomically: present means complete).
  std::vector<uint8_t> present(static_cast<size_t>(shards), 0);
  if (writes)
    for (int64_t k = 0; k < shards; ++k) present[k] = fs::exists(shard_path(dir, k)) ? 1 : 0;
  comm.broadcast(present.data(), shards, 0);
  int64_t done = 0;
  for (int64_t k = 0; k < shards; ++k)
    if (present[k]) done += std::min(o.shard_size, total - k * o.shard_size);
  if (!o.quiet)
    std::printf("pairs: %lld held-out + %lld training pairs from %s, DDIM %lld steps (%s, eta 0, unclipped), %s "
                "targets; %lld of %lld already in %s\n",
                static_cast<long long>(o.held_out), static_cast<long long>(o.count), o.teacher.c_str(),
                static_cast<long long>(o.steps), o.spacing.c_str(), o.quantise ? "8-bit" : "float32",
                static_cast<long long>(done), static_cast<long long>(total), o.dir.c_str());
  const auto start = std::chrono::steady_clock::now();
  int64_t made = 0;
  for (int64_t k = 0; k < shards; ++k) {
    const std::string path = shard_path(dir, k);
    if (present[k]) continue;
    const int64_t first = k * o.shard_size, n = std::min(o.shard_size, total - first);
    NoGradGuard no_grad;
    // Pair i's noise is keyed by i: the rows are the same whichever rank makes them.
    const dist::BatchShard part = dist::shard_of(n, comm.rank(), comm.size());
    Tensor images;
    if (comm.size() == 1) {
      images = diffusion::generate(teacher, sampler, first, n, o.batch_size, o.seed);
    } else {
      Shape row = {teacher.net->config().in_channels, teacher.net->config().image_size, teacher.net->config().image_size};
      Shape mine = row;
      mine.insert(mine.begin(), part.count);
      const Tensor rows = part.count > 0
                              ? diffusion::generate(teacher, sampler, first + part.first, part.count, o.batch_size, o.seed)
                              : zeros(mine);
      images = dist::gather_batch(to_device(rows, cpu()), part, comm);
    }
    made += n;
    done += n;
    if (!writes) continue;
    const nn::Metadata meta = {{"first", std::to_string(first)}, {"count", std::to_string(n)},
                               {"pairs", settings.dump()}};
    if (o.quantise) safetensors::save(path, {{"target", quantise_target(images)}}, meta, {{"target", "U8"}});
    else safetensors::save(path, {{"target", images}}, meta);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!o.quiet) {
      std::printf("  shard %lld/%lld: %lld/%lld pairs  %.1f ms/pair  ETA %s\n", static_cast<long long>(k + 1),
                  static_cast<long long>(shards), static_cast<long long>(done), static_cast<long long>(total),
                  1000.0 * seconds / made, diffusion::format_duration(seconds / made * (total - done)).c_str());
      std::fflush(stdout);
    }
  }
  comm.barrier();  // the shards are on disk before any rank reads them
  return total;
}

namespace {

// The pair set in memory: targets in [-1, 1] for sample indices 0 .. total - 1.
struct PairSet {
  json settings;
  Tensor targets;  // [total, C, H, W] f32
  int64_t held_out = 0, total = 0;
  uint64_t seed = 0;
};

PairSet load_pairs(const std::string& folder) {
  const fs::path dir(folder);
  PairSet set;
  set.settings = diffusion::read_json_file(dir / "pairs.json");
  try {
    set.held_out = set.settings.at("held_out").get<int64_t>();
    set.total = set.held_out + set.settings.at("count").get<int64_t>();
    set.seed = set.settings.at("seed").get<uint64_t>();
  } catch (const json::exception& e) {
    fail((dir / "pairs.json").string(), ": expected held_out, count and seed (", e.what(), ")");
  }
  const int64_t shard_size = set.settings.at("shard_size").get<int64_t>();
  TensorList parts;
  for (int64_t k = 0, first = 0; first < set.total; ++k, first += shard_size) {
    const std::string path = shard_path(dir, k);
    DK_CHECK(fs::exists(path), folder, ": shard ", path, " is missing (generate the pairs first; it resumes)");
    const safetensors::Contents shard = safetensors::load(path);
    const Tensor& t = shard.at("target");
    DK_CHECK(nn::metadata_int(shard.metadata, "first", path) == first &&
                 t.size(0) == std::min(shard_size, set.total - first),
             path, ": holds pairs from ", nn::metadata_int(shard.metadata, "first", path), ", expected ", first);
    parts.push_back(t.dtype() == DType::I64 ? dequantise_target(t) : t);
  }
  set.targets = parts.size() == 1 ? parts[0] : concat(parts, 0);
  return set;
}

// The noise x_T of pairs `indices` (sample index = pair index).
Tensor noise_of(const std::vector<int64_t>& indices, const Shape& shape, uint64_t seed, Device device) {
  TensorList parts;
  for (int64_t i : indices) parts.push_back(diffusion::sample_noise(shape, i, 1, seed, 0, device));
  return concat(parts, 0);
}

// The epoch's order of the training pairs (held_out .. total - 1): a Fisher-Yates shuffle keyed by
// (seed, epoch), so a resumed run draws the same batches.
std::vector<int64_t> epoch_order(const PairSet& set, uint64_t seed, int64_t epoch) {
  const int64_t n = set.total - set.held_out;
  std::vector<int64_t> order = keyed_permutation(n, n, seed ^ streams::kStudentEpochOrder, static_cast<uint64_t>(epoch));
  for (int64_t& i : order) i += set.held_out;
  return order;
}

}  // namespace

std::string one_step_form(const std::string& requested, diffusion::Prediction teacher_prediction) {
  DK_CHECK(requested == "auto" || requested == "residual" || requested == "x0", "distill student: --form '",
           requested, "', expected auto, residual or x0");
  if (requested != "auto") return requested;
  // x_T - net(x_T, T - 1) is Luhman & Luhman's form for an eps teacher, whose output at T - 1 is
  // nearly x_T itself. A v teacher's output there is ~ -x0 and an x0 teacher's is x0, so the
  // residual would start the student from noise plus an image: read them as the x0 they imply.
  return teacher_prediction == diffusion::Prediction::Eps ? "residual" : "x0";
}

StudentResult train_denoising_student(const StudentOptions& o) {
  o.run.check("distill student");
  DK_CHECK(o.steps > 0 && o.batch_size > 0 && o.eval_every > 0,
           "distill student: --steps, --batch and --eval-every must be positive");
  const PairSet pairs = load_pairs(o.pairs);
  const std::string pairs_teacher = pairs.settings.value("teacher", "");
  DK_CHECK(fs::exists(pairs_teacher) && fs::equivalent(pairs_teacher, o.teacher), o.pairs,
           "/pairs.json: the pairs come from the teacher ", pairs_teacher, ", not ", o.teacher,
           " (the student starts from the teacher it distils)");
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(o.teacher);
  const diffusion::Prediction prediction = diffusion::parse_prediction(teacher.spec.prediction);
  const std::string form = one_step_form(o.form, prediction);
  nn::UNetConfig config = teacher.net->config();
  config.dropout = 0.0;  // the official re-implementation has none
  const Shape shape{config.in_channels, config.image_size, config.image_size};
  DK_CHECK(pairs.targets.size(1) == shape[0] && pairs.targets.size(2) == shape[1], o.pairs, ": targets of ",
           pairs.targets.size(1), "x", pairs.targets.size(2), " images, the teacher ", o.teacher, " makes ", shape[0],
           "x", shape[1]);
  DK_CHECK(pairs.total - pairs.held_out >= o.batch_size, o.pairs, ": fewer training pairs than one batch");

  const json settings = {{"method", "student"}, {"teacher", o.teacher}, {"pairs", pairs.settings}, {"loss", o.loss},
                         {"form", form},        {"steps", o.steps},     {"batch", o.batch_size},  {"lr", o.lr},
                         {"warmup", o.warmup},  {"beta2", o.beta2},     {"ema", o.ema},           {"grad_clip", o.grad_clip},
                         {"eval_every", o.eval_every}, {"seed", o.run.seed}, {"device", o.run.device.str()}};
  // Data-parallel (dist/): each rank trains on its slice of every batch; rank 0 writes.
  dist::Communicator& comm = dist::world_for(o.run.device);
  DK_CHECK(o.batch_size >= comm.size(), "distill student: --batch ", o.batch_size, " is smaller than the ",
           comm.size(), " ranks (each rank needs at least one pair of every batch)");
  const dist::BatchShard shard = dist::shard_of(o.batch_size, comm.rank(), comm.size());
  diffusion::RunFolder run(o.run.dir, settings, {"teacher", "pairs", "loss", "form", "batch", "seed"}, o.run.resume,
                           o.run.quiet, comm);
  const Device device = o.run.device;
  nn::UNet student(config);
  student.copy_weights_from(*teacher.net);  // the student starts as the teacher
  student.to(device);  // before the optimiser and the EMA take its tensors
  student.train();
  AdamHyper hyper;
  hyper.lr = o.lr;
  hyper.beta1 = 0.9;
  hyper.beta2 = o.beta2;
  hyper.eps = 1e-8;
  nn::Adam adam(student.named_parameters(), hyper);
  nn::Ema ema(student, o.ema);
  nn::LrSchedule lr_schedule;
  lr_schedule.base_lr = o.lr;
  lr_schedule.warmup_steps = o.warmup;

  StudentResult result;
  result.model = (run.dir() / "student.safetensors").string();
  result.best_held_out_loss = std::numeric_limits<double>::infinity();
  int64_t start = 0, epoch = 0, position = 0;
  if (const auto latest = run.latest()) {
    nn::load_model((latest->second / "model.safetensors").string(), student);
    const std::string state = (latest->second / "state.safetensors").string();
    const nn::Metadata meta = nn::load_training_state(state, adam, &ema);
    start = nn::metadata_int(meta, "step", state);
    epoch = nn::metadata_int(meta, "epoch", state);
    position = nn::metadata_int(meta, "position", state);
    result.best_held_out_loss = std::stod(meta.at("best_held_out_loss"));
  }
  if (!o.run.quiet)
    std::printf("distill student: %s -> one step (%s form), %lld training + %lld held-out pairs from %s, loss %s, "
                "batch %lld; %s at step %lld of %lld\n",
                o.teacher.c_str(), form.c_str(), static_cast<long long>(pairs.total - pairs.held_out),
                static_cast<long long>(pairs.held_out), o.pairs.c_str(), o.loss.c_str(),
                static_cast<long long>(o.batch_size), start > 0 ? "resuming" : "starting", static_cast<long long>(start),
                static_cast<long long>(o.steps));

  // The held-out loss of the EMA weights; keeps the best as the result (official early stopping).
  // Each rank scores its slice of the held-out pairs.
  auto evaluate = [&](int64_t step) {
    NoGradGuard no_grad;
    nn::UNet averaged(config);
    averaged.to(device);
    ema.copy_to(averaged);
    averaged.eval();
    const dist::BatchShard mine = dist::shard_of(pairs.held_out, comm.rank(), comm.size());
    double total = 0;
    for (int64_t first = mine.first; first < mine.first + mine.count; first += o.batch_size) {
      std::vector<int64_t> idx(std::min(o.batch_size, mine.first + mine.count - first));
      std::iota(idx.begin(), idx.end(), first);
      const Tensor image = diffusion::one_step_image(averaged, form, prediction, teacher.schedule,
                                                     noise_of(idx, shape, pairs.seed, device));
      total += denoising_student_loss(o.loss, image, rows_on(pairs.targets, idx, device)).item() * static_cast<double>(idx.size());
    }
    const double held_out = comm.sum(total) / pairs.held_out;
    const bool best = held_out < result.best_held_out_loss;
    if (best) result.best_held_out_loss = held_out;
    if (best && run.writes()) {
      save_distilled_model(result.model, averaged, teacher.spec, "",
                           {{"method", "student"}, {"teacher", o.teacher}, {"one_step", form},
                            {"step", std::to_string(step)}, {"held_out_loss", std::to_string(held_out)}});
    }
    if (!o.run.quiet) std::printf("  held-out loss of the EMA at step %lld: %.5f%s\n", static_cast<long long>(step), held_out,
                              best ? " (best so far: saved)" : "");
    return held_out;
  };
  auto save_checkpoint = [&](int64_t step) {
    const fs::path folder = run.checkpoint_folder(step);
    nn::save_model((folder / "model.safetensors").string(), student, config.to_json());
    char best[32];
    std::snprintf(best, sizeof best, "%.17g", result.best_held_out_loss);
    nn::save_training_state((folder / "state.safetensors").string(), adam, &ema,
                            {{"step", std::to_string(step)}, {"epoch", std::to_string(epoch)},
                             {"position", std::to_string(position)}, {"best_held_out_loss", best}});
    run.checkpoint_done(step, o.run.keep_last);
  };

  diffusion::InterruptGuard interrupt;
  diffusion::ProgressLine progress(o.steps);
  std::vector<int64_t> order = epoch_order(pairs, o.run.seed, epoch);
  double loss_sum = 0;
  int64_t window = 0;
  for (int64_t step = start + 1; step <= o.steps; ++step) {
    if (position + o.batch_size > static_cast<int64_t>(order.size())) {  // the epoch's last partial batch is skipped
      order = epoch_order(pairs, o.run.seed, ++epoch);
      position = 0;
    }
    // This rank's pairs of the batch.
    const std::vector<int64_t> idx(order.begin() + position + shard.first,
                                   order.begin() + position + shard.first + shard.count);
    position += o.batch_size;
    const double lr = lr_schedule.at(step);
    adam.set_lr(lr);
    const Tensor image = diffusion::one_step_image(student, form, prediction, teacher.schedule,
                                                   noise_of(idx, shape, pairs.seed, device));
    Tensor loss = dist::rank_share(denoising_student_loss(o.loss, image, rows_on(pairs.targets, idx, device)), shard);
    std::vector<double> shares{loss.item()};
    const bool interrupted = dist::sum_step_scalars(shares, interrupt.requested(), comm);
    const double value = shares[0];
    DK_CHECK(std::isfinite(value), "distill student: step ", step, ": the loss is ", value,
             "; stopping. The last good checkpoint is in ", (run.dir() / "checkpoints").string());
    loss.backward();
    dist::all_reduce_gradients(student.parameters(), 1.0, comm);
    const double grad_norm = nn::clip_grad_norm(student.parameters(), o.grad_clip > 0 ? o.grad_clip : INFINITY);
    DK_CHECK(std::isfinite(grad_norm), "distill student: step ", step, ": the gradient norm is ", grad_norm);
    adam.step();
    adam.zero_grad();
    ema.update(student, step);
    loss_sum += value;
    ++window;
    if (step % o.run.log_every == 0 || step == o.steps) {
      char fields[96];
      std::snprintf(fields, sizeof fields, "loss %.5f  lr %.2e", loss_sum / window, lr);
      const double rate = progress.report(step, window, fields, o.run.quiet);
      run.log_metrics(step, {{"loss", loss_sum / window}, {"grad_norm", grad_norm}, {"lr", lr}, {"steps_per_s", rate}});
      loss_sum = 0;
      window = 0;
    }
    if (step % o.eval_every == 0 || step == o.steps) evaluate(step);
    if (o.run.finish_step(step, o.steps, false, interrupted, run, save_checkpoint)) {
      result.interrupted = true;
      break;
    }
  }
  run.write_loss_chart("Denoising Student loss");
  return result;
}

}  // namespace diffkd::distill

// Progressive Distillation (see progressive.h).

#include "distill/progressive.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>

#include "data/loader.h"
#include "diffusion/generate.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "nn/checkpoint.h"
#include "nn/lr_schedule.h"
#include "tensor/philox.h"

namespace diffkd::distill {

namespace fs = std::filesystem;
using diffusion::Coefficients;
using diffusion::Prediction;

PdTimes pd_times(int64_t total_steps, int64_t student_steps, const std::vector<int64_t>& i) {
  DK_CHECK(2 * student_steps <= total_steps, "progressive distillation: a ", student_steps,
           "-step student needs a ", 2 * student_steps, "-step teacher, more than the schedule's ", total_steps);
  // idx_n(k) = round(k T / n) - 1, the trailing grid, and -1 (clean) at k = 0. On RDD's 1025-entry
  // schedule (T = 1024 plus one) the official grid instead: index k * 1024 / n, k = 0 being index 0
  // (METHODS.md 4.2), which needs n to divide 1024.
  const bool rdd_grid = total_steps == 1025;
  DK_CHECK(!rdd_grid || 1024 % (2 * student_steps) == 0, "progressive distillation: on the 1025-step schedule a ",
           student_steps, "-step student's grid needs ", 2 * student_steps, " to divide 1024");
  auto idx = [&](int64_t n, int64_t k) {
    if (rdd_grid) return k * 1024 / n;
    return k == 0 ? int64_t{-1} : static_cast<int64_t>(std::llround(static_cast<double>(k) * total_steps / n)) - 1;
  };
  PdTimes times;
  for (int64_t k : i) {
    DK_CHECK(k >= 1 && k <= student_steps, "pd_times: step ", k, " outside 1..", student_steps);
    times.t.push_back(idx(student_steps, k));
    times.t_mid.push_back(idx(2 * student_steps, 2 * k - 1));
    times.t_next.push_back(idx(student_steps, k - 1));
  }
  return times;
}

Coefficients grid_coefficients(const diffusion::NoiseSchedule& s, const std::vector<int64_t>& t, const Tensor& like) {
  std::vector<double> signal, noise;
  for (int64_t step : t) {
    signal.push_back(step < 0 ? 1.0 : s.signal(step));
    noise.push_back(step < 0 ? 0.0 : s.noise(step));
  }
  return {diffusion::per_sample(signal, like), diffusion::per_sample(noise, like)};
}

namespace {

// One unclipped teacher DDIM step (eta 0) from z at t to `next`: the teacher's x0 and the new state.
std::pair<Tensor, Tensor> teacher_step(const diffusion::ModelFn& teacher, Prediction p, const diffusion::NoiseSchedule& s,
                                       const Tensor& z, const std::vector<int64_t>& t, const std::vector<int64_t>& next) {
  const Coefficients c = grid_coefficients(s, t, z), cn = grid_coefficients(s, next, z);
  const Tensor out = teacher(z, diffusion::model_time(s, t));
  const Tensor x0 = diffusion::denoise(out, p, z, c).x0;
  const Tensor eps = (z - c.signal * x0) / c.noise;
  return {x0, cn.signal * x0 + cn.noise * eps};
}

}  // namespace

PdTarget progressive_target(const diffusion::ModelFn& teacher, Prediction teacher_prediction,
                            const diffusion::NoiseSchedule& s, const Tensor& z_t, const PdTimes& times) {
  NoGradGuard no_grad;
  PdTarget target;
  target.z_mid = teacher_step(teacher, teacher_prediction, s, z_t, times.t, times.t_mid).second;
  target.z_next = teacher_step(teacher, teacher_prediction, s, target.z_mid, times.t_mid, times.t_next).second;
  const Coefficients c = grid_coefficients(s, times.t, z_t), cn = grid_coefficients(s, times.t_next, z_t);
  // PD eq. 8: the x~ for which one DDIM step from z_t lands on z_t''.
  const Tensor ratio = cn.noise / c.noise;
  target.x_tilde = (target.z_next - ratio * z_t) / (cn.signal - ratio * c.signal);
  target.eps_tilde = (z_t - c.signal * target.x_tilde) / c.noise;
  return target;
}

Tensor progressive_loss(const std::string& kind, const Tensor& student_out, Prediction student_prediction,
                        const Tensor& z_t, const Coefficients& c, const PdTarget& target) {
  diffusion::LossKind loss;
  if (kind == "snr-trunc") loss = diffusion::LossKind::SnrTrunc;
  else if (kind == "v-mse") loss = diffusion::LossKind::V;
  else if (kind == "x-mse") loss = diffusion::LossKind::X0;
  else fail("progressive distillation: unknown loss '", kind, "' (expected snr-trunc, v-mse or x-mse)");
  return diffusion::diffusion_loss(loss, student_prediction, {student_out, target.x_tilde, target.eps_tilde, z_t, c, nullptr, {}});
}

namespace {

constexpr uint64_t kStepStream = 9101, kNoiseStream = 9102;

std::string student_file(const fs::path& dir, int64_t steps) {
  char name[64];
  std::snprintf(name, sizeof name, "students/steps-%04lld.safetensors", static_cast<long long>(steps));
  return (dir / name).string();
}

}  // namespace

ProgressiveResult progressive_distillation(const ProgressiveOptions& o, const data::ImageDataset& train_set,
                                           StageObjective* objective) {
  const std::string method = objective ? objective->method() : "progressive";
  o.run.check("distill progressive");
  DK_CHECK(o.updates_per_stage > 0 && o.batch_size > 0 && o.few_step_update_factor > 0,
           "distill progressive: --updates, --batch and the few-step update factor must be positive");
  DK_CHECK(o.end_steps >= 1 && o.start_steps > o.end_steps && (o.start_steps % o.end_steps) == 0 &&
               std::has_single_bit(static_cast<uint64_t>(o.start_steps / o.end_steps)),
           "distill progressive: --start-steps (", o.start_steps, ") must be --end-steps (", o.end_steps,
           ") times a power of two");
  diffusion::LoadedModel original = diffusion::load_diffusion_model(o.teacher);
  const Prediction prediction = diffusion::parse_prediction(original.spec.prediction);
  const diffusion::NoiseSchedule& schedule = original.schedule;
  nn::UNetConfig config = original.net->config();
  config.dropout = 0.0;  // PD trains without dropout
  int64_t stages = 0;
  for (int64_t n = o.start_steps; n > o.end_steps; n /= 2) ++stages;
  auto student_steps = [&](int64_t k) { return o.start_steps >> (k + 1); };
  // Stage k ends at global step stage_end[k]; the 2- and 1-step students train
  // few_step_update_factor times longer (RDD: 2x, METHODS.md 4.1).
  std::vector<int64_t> stage_end(stages);
  for (int64_t k = 0, end = 0; k < stages; ++k)
    stage_end[k] = end += o.updates_per_stage * (student_steps(k) <= 2 ? o.few_step_update_factor : 1);
  const int64_t total = stage_end.back();
  auto stage_start = [&](int64_t k) { return k == 0 ? int64_t{0} : stage_end[k - 1]; };
  auto stage_of = [&](int64_t step) {  // the stage that global step `step` (1-based) belongs to
    return static_cast<int64_t>(std::lower_bound(stage_end.begin(), stage_end.end(), step) - stage_end.begin());
  };

  const nlohmann::json settings = {
      {"method", method}, {"objective", objective ? objective->settings() : nlohmann::json()}, {"teacher", o.teacher}, {"data", o.dataset}, {"start_steps", o.start_steps},
      {"end_steps", o.end_steps}, {"updates_per_stage", o.updates_per_stage},
      {"few_step_update_factor", o.few_step_update_factor}, {"batch", o.batch_size},
      {"lr", o.lr}, {"lr_anneal", o.lr_anneal}, {"loss", o.loss}, {"grad_clip", o.grad_clip},
      {"pad_to", o.pad_to}, {"flip", o.horizontal_flip}, {"seed", o.run.seed}, {"device", o.run.device.str()}};
  // Data-parallel (dist/): each rank trains on its slice of every global batch; rank 0 writes.
  dist::Communicator& comm = dist::world_for(o.run.device);
  DK_CHECK(o.batch_size >= comm.size(), "distill ", method, ": --batch ", o.batch_size, " is smaller than the ",
           comm.size(), " ranks (each rank needs at least one image of every batch)");
  const dist::BatchShard shard = dist::shard_of(o.batch_size, comm.rank(), comm.size());
  diffusion::RunFolder run(o.run.dir, settings,
                           {"method", "objective", "teacher", "data", "start_steps", "end_steps", "updates_per_stage",
                            "few_step_update_factor", "batch", "pad_to", "seed"},
                           o.run.resume, o.run.quiet, comm);
  fs::create_directories(run.dir() / "students");
  data::BatchLoader loader(train_set, {o.batch_size, o.run.seed, o.horizontal_flip, o.pad_to});
  DK_CHECK(loader.image_size() == config.image_size && train_set.channels == config.in_channels, "distill: dataset ",
           train_set.source, " gives ", train_set.channels, "x", loader.image_size(), " images, the teacher ", o.teacher,
           " expects ", config.in_channels, "x", config.image_size, " (use --pad-to)");

  // The state of the current stage: its teacher (the previous stage's student), the student and Adam.
  int64_t stage = -1;
  std::unique_ptr<nn::UNet> teacher, student;
  std::unique_ptr<nn::Adam> adam;
  auto begin_stage = [&](int64_t k) {
    stage = k;
    teacher = std::make_unique<nn::UNet>(config);
    if (k == 0) {
      teacher->copy_weights_from(*original.net);
      teacher->to(o.run.device);
    } else if (student) {  // the stage just trained (its file may still be being written by rank 0)
      teacher->to(o.run.device);
      teacher->copy_weights_from(*student);
    } else {  // resuming: the previous stage's student from its file
      nn::load_model(student_file(run.dir(), student_steps(k - 1)), *teacher);
      teacher->to(o.run.device);
    }
    teacher->eval();
    student = std::make_unique<nn::UNet>(config);
    student->to(o.run.device);  // before Adam takes its tensors
    student->copy_weights_from(*teacher);  // PD: the student starts as its teacher
    student->train();
    AdamHyper hyper;
    hyper.lr = o.lr;
    adam = std::make_unique<nn::Adam>(student->named_parameters(), hyper);
    if (objective) objective->begin_stage(k);
  };

  auto save_checkpoint = [&](int64_t step) {
    const fs::path folder = run.checkpoint_folder(step);
    nn::save_model((folder / "model.safetensors").string(), *student, config.to_json());
    const data::LoaderPosition pos = loader.position();
    nn::save_training_state((folder / "state.safetensors").string(), *adam, nullptr,
                            {{"step", std::to_string(step)},
                             {"loader_epoch", std::to_string(pos.epoch)},
                             {"loader_index", std::to_string(pos.index)}});
    if (objective) objective->save(folder.string());
    run.checkpoint_done(step, o.run.keep_last);
  };

  int64_t start = 0;
  if (const auto latest = run.latest()) {
    start = latest->first;
    if (start < total && start != stage_start(stage_of(start + 1))) {  // mid-stage: the student and Adam as they were
      begin_stage(stage_of(start + 1));
      nn::load_model((latest->second / "model.safetensors").string(), *student);
      const std::string state = (latest->second / "state.safetensors").string();
      const nn::Metadata meta = nn::load_training_state(state, *adam, nullptr);
      loader.seek({nn::metadata_int(meta, "loader_epoch", state), nn::metadata_int(meta, "loader_index", state)});
      if (objective) objective->load(latest->second.string());
    } else if (start > 0) {  // at a stage boundary the next stage starts fresh from the saved student
      const std::string state = (latest->second / "state.safetensors").string();
      const nn::Metadata meta = safetensors::load(state).metadata;
      loader.seek({nn::metadata_int(meta, "loader_epoch", state), nn::metadata_int(meta, "loader_index", state)});
    }
  }
  ProgressiveResult result;
  for (int64_t k = 0; k < stages && stage_end[k] <= start; ++k)
    result.students.push_back(student_file(run.dir(), student_steps(k)));
  if (!o.run.quiet)
    std::printf("distill %s: %s (%s-prediction), %lld -> %lld steps in %lld stages of %lld updates (x%lld for "
                "the 2- and 1-step students), batch %lld, loss %s; %s at step %lld of %lld\n",
                method.c_str(), o.teacher.c_str(), original.spec.prediction.c_str(), static_cast<long long>(o.start_steps),
                static_cast<long long>(o.end_steps), static_cast<long long>(stages),
                static_cast<long long>(o.updates_per_stage), static_cast<long long>(o.few_step_update_factor),
                static_cast<long long>(o.batch_size),
                objective ? objective->settings().dump().c_str() : o.loss.c_str(),
                start > 0 ? "resuming" : "starting", static_cast<long long>(start), static_cast<long long>(total));

  diffusion::InterruptGuard interrupt;
  diffusion::ProgressLine progress(total);
  const diffusion::ModelFn teacher_fn = [&](const Tensor& x, const Tensor& t) { return teacher->forward(x, t); };
  nn::LrSchedule lr_schedule;
  lr_schedule.kind = nn::LrSchedule::parse_kind(o.lr_anneal);
  lr_schedule.base_lr = o.lr;
  double loss_sum = 0;
  std::map<std::string, double> part_sums;
  int64_t window = 0;
  for (int64_t step = start + 1; step <= total; ++step) {
    if (stage_of(step) != stage) begin_stage(stage_of(step));
    const int64_t n = student_steps(stage), within = step - stage_start(stage);
    lr_schedule.total_steps = stage_end[stage] - stage_start(stage);
    const double lr = lr_schedule.at(within - 1);  // the stage's first update at the base rate, as PD's step 0
    adam->set_lr(lr);
    // This rank's rows of the global batch; every draw keyed by the global image index.
    const Tensor x = to_device(loader.next(shard.first, shard.count).images, o.run.device);
    const int64_t b = shard.count, first = (step - 1) * o.batch_size + shard.first;
    std::vector<int64_t> i(b);
    for (int64_t j = 0; j < b; ++j)  // i ~ U{1..N}, keyed by (seed, global image index)
      i[j] = 1 + std::min<int64_t>(n - 1, static_cast<int64_t>(philox::uniform_at(o.run.seed ^ kStepStream, 0, first + j) * n));
    const PdTimes times = pd_times(schedule.steps(), n, i);
    const Shape sample_shape(x.shape().begin() + 1, x.shape().end());
    const Tensor eps = diffusion::sample_noise(sample_shape, first, b, o.run.seed ^ kNoiseStream, 0, o.run.device);
    const Coefficients c = grid_coefficients(schedule, times.t, x);
    const Tensor z_t = c.signal * x + c.noise * eps;
    const PdTarget target = progressive_target(teacher_fn, prediction, schedule, z_t, times);
    const Tensor out = student->forward(z_t, diffusion::model_time(schedule, times.t));
    std::vector<std::pair<std::string, double>> parts;
    Tensor loss = objective ? objective->loss({step, z_t, c, target, out, prediction, comm, shard}, parts)
                            : dist::rank_share(progressive_loss(o.loss, out, prediction, z_t, c, target), shard);
    std::vector<double> shares{loss.item()};
    for (const auto& part : parts) shares.push_back(part.second);
    const bool interrupted = dist::sum_step_scalars(shares, interrupt.requested(), comm);
    const double value = shares[0];
    for (size_t k = 0; k < parts.size(); ++k) parts[k].second = shares[k + 1];
    DK_CHECK(std::isfinite(value), "distill progressive: step ", step, ": the loss is ", value,
             "; stopping. The last good checkpoint is in ", (run.dir() / "checkpoints").string());
    loss.backward();
    TensorList trained = student->parameters();
    if (objective) for (const Tensor& p : objective->parameters()) trained.push_back(p);
    dist::all_reduce_gradients(trained, 1.0, comm);
    const double grad_norm = nn::clip_grad_norm(student->parameters(), o.grad_clip > 0 ? o.grad_clip : INFINITY);
    DK_CHECK(std::isfinite(grad_norm), "distill progressive: step ", step, ": the gradient norm is ", grad_norm,
             "; stopping before the update");
    adam->step();
    adam->zero_grad();
    if (objective) objective->after_update();
    for (const auto& [name, v] : parts) part_sums[name] += v;
    loss_sum += value;
    ++window;
    const bool stage_done = step == stage_end[stage];
    if (step % o.run.log_every == 0 || stage_done) {
      char fields[160];
      std::snprintf(fields, sizeof fields, "stage %lld/%lld (%lld -> %lld steps)  loss %.5f  lr %.2e",
                    static_cast<long long>(stage + 1), static_cast<long long>(stages), static_cast<long long>(2 * n),
                    static_cast<long long>(n), loss_sum / window, lr);
      const double rate = progress.report(step, window, fields, o.run.quiet);
      std::vector<std::pair<std::string, double>> row = {{"stage", static_cast<double>(stage + 1)},
                                                          {"student_steps", static_cast<double>(n)},
                                                          {"loss", loss_sum / window}};
      for (const auto& [name, sum] : part_sums) row.emplace_back(name, sum / window);
      row.insert(row.end(), {{"grad_norm", grad_norm}, {"lr", lr}, {"steps_per_s", rate}});
      run.log_metrics(step, row);
      part_sums.clear();
      loss_sum = 0;
      window = 0;
    }
    if (stage_done) {  // the stage's student, before the checkpoint that points past it
      const std::string file = student_file(run.dir(), n);
      if (run.writes())
        save_distilled_model(file, *student, original.spec, "ddim:" + std::to_string(n) + ":trailing",
                             {{"method", method}, {"teacher", o.teacher}, {"stage", std::to_string(stage + 1)}});
      result.students.push_back(file);
      if (!o.run.quiet) std::printf("stage %lld done: %lld-step student in %s\n", static_cast<long long>(stage + 1),
                                static_cast<long long>(n), file.c_str());
    }
    if (o.run.finish_step(step, total, stage_done, interrupted, run, save_checkpoint)) {
      result.interrupted = true;
      break;
    }
  }
  run.write_loss_chart(method + " distillation loss");
  return result;
}

}  // namespace diffkd::distill

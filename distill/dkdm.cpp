// DKDM data-free distillation (see dkdm.h).

#include "distill/dkdm.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <tuple>

#include "diffusion/generate.h"
#include "diffusion/losses.h"
#include "diffusion/noise.h"
#include "diffusion/run_folder.h"
#include "dist/batch_collectives.h"
#include "distill/common.h"
#include "nn/checkpoint.h"
#include "nn/ema.h"
#include "nn/presets.h"
#include "tensor/creation.h"
#include "tensor/philox.h"

namespace diffkd::distill {

namespace fs = std::filesystem;
using diffusion::Prediction;

TeacherStep dkdm_teacher_step(const diffusion::ModelFn& teacher, Prediction prediction, const diffusion::NoiseSchedule& s,
                              const Tensor& x_t, const std::vector<int64_t>& t, const Tensor& z) {
  NoGradGuard no_grad;
  const int64_t c = x_t.size(1);
  const Tensor out = teacher(x_t, diffusion::model_time(s, t));
  const bool learned = out.size(1) == 2 * c;
  const diffusion::Coefficients coef = diffusion::coefficients(s, t, x_t);
  const diffusion::Denoised d = diffusion::denoise(learned ? narrow(out, 1, 0, c) : out, prediction, x_t, coef);
  TeacherStep step;
  step.eps = d.eps;
  const diffusion::Posterior q = diffusion::q_posterior(clamp(d.x0, -1.0, 1.0), x_t, s, t);  // clip_denoised
  step.mean = q.mean;
  step.log_variance = learned ? diffusion::learned_log_variance(narrow(out, 1, c, c), s, t) : q.log_variance;
  std::vector<double> noisy;
  for (int64_t step_t : t) noisy.push_back(step_t > 0 ? 1.0 : 0.0);
  step.x_prev = step.mean + diffusion::per_sample(noisy, x_t) * exp(0.5 * step.log_variance) * z;
  return step;
}

Tensor dkdm_loss(const Tensor& student_out, const TeacherStep& teacher, const diffusion::NoiseSchedule& s,
                 const Tensor& x_t, const std::vector<int64_t>& t, DkdmLossParts* parts) {
  const int64_t c = x_t.size(1);
  const bool learned = student_out.size(1) == 2 * c;
  DK_CHECK(learned || student_out.size(1) == c, "dkdm: the student outputs ", student_out.size(1), " channels for ", c,
           "-channel images (expected ", c, ", or ", 2 * c, " with learned variance)");
  const Tensor eps_s = learned ? narrow(student_out, 1, 0, c) : student_out;
  const Tensor mse = diffusion::per_sample_mean(square(teacher.eps - eps_s));
  Tensor total = mse;
  Tensor vb;
  if (learned) {
    // mu_S from the student's eps with stop-gradient and no clipping; only Sigma_S is trained.
    const diffusion::Coefficients coef = diffusion::coefficients(s, t, x_t);
    const Tensor x0_s = diffusion::denoise(eps_s.detach(), Prediction::Eps, x_t, coef).x0;
    const Tensor mean_s = diffusion::q_posterior(x0_s, x_t, s, t).mean;
    const Tensor log_var_s = diffusion::learned_log_variance(narrow(student_out, 1, c, c), s, t);
    vb = diffusion::per_sample_mean(diffusion::normal_kl(teacher.mean, teacher.log_variance, mean_s, log_var_s)) /
         std::log(2.0);
    total = total + vb;
  }
  if (parts) *parts = {mean(mse).item(), learned ? mean(vb).item() : 0.0};
  return mean(total);
}

std::string dkdm_pool_identity(const DkdmOptions& o, int64_t size, const Shape& shape, int64_t steps) {
  return nlohmann::json{{"teacher", o.teacher}, {"mode", o.mode}, {"size", size}, {"shape", shape},
                        {"steps", steps}, {"seed", o.run.seed}}.dump();
}

namespace {

constexpr uint64_t kPoolNoise = 8101, kStopStream = 8102, kResetNoise = 8104, kStepNoise = 8105;

// The pool of noisy states: x [P, C, H, W] and the counters (T: fresh noise; 0: a clean sample).
struct Pool {
  Tensor x;
  std::vector<int64_t> t;
};

void save_pool(const std::string& path, const Pool& pool, const nn::Metadata& meta) {
  std::vector<double> t(pool.t.begin(), pool.t.end());
  safetensors::save(path, {{"x", pool.x}, {"t", from_vector(t, {static_cast<int64_t>(t.size())}, DType::I64)}}, meta);
}

Pool load_pool(const std::string& path, nn::Metadata* meta) {
  const safetensors::Contents file = safetensors::load(path);
  Pool pool{file.at("x"), {}};
  for (double v : file.at("t").to_vector()) pool.t.push_back(static_cast<int64_t>(v));
  DK_CHECK(static_cast<int64_t>(pool.t.size()) == pool.x.size(0), path, ": ", pool.t.size(), " counters for ",
           pool.x.size(0), " states");
  if (meta) *meta = file.metadata;
  return pool;
}

// Writes rows back into the pool (a plain host buffer: no gradient flows through the pool).
void write_rows(Tensor& all, const std::vector<int64_t>& idx, const Tensor& rows) {
  const Tensor src = contiguous(to_device(to_dtype(rows, all.dtype()), cpu()));
  const int64_t row = all.numel() / all.size(0);
  DK_CHECK(src.size(0) == static_cast<int64_t>(idx.size()) && src.numel() == src.size(0) * row,
           "dkdm pool: writing ", src.size(0), " rows of ", src.numel() / std::max<int64_t>(1, src.size(0)),
           " values into rows of ", row);
  for (int64_t i : idx) DK_CHECK(i >= 0 && i < all.size(0), "dkdm pool: row ", i, " outside 0..", all.size(0) - 1);
  for (size_t j = 0; j < idx.size(); ++j)
    std::copy(src.data<float>() + j * row, src.data<float>() + (j + 1) * row, all.data<float>() + idx[j] * row);
}

// Prepares the pool (dynamic_prepare.py): entry i starts from noise at T and runs teacher
// ancestral steps until its own stop t_end_i ~ U{1..T-1}. Resumable: the file (rank 0 writes it)
// keeps the counter c the preparation has reached. Returns the pool; `evaluations`: the teacher
// evaluations spent. With several ranks each steps its slice of every level's entries, and the
// slices are gathered (each entry's noise is keyed by its index, whichever rank steps it).
Pool prepare_pool(diffusion::LoadedModel& teacher, const DkdmOptions& o, int64_t size, const Shape& shape,
                  const std::string& path, dist::Communicator& comm, int64_t& evaluations) {
  evaluations = 0;
  const int64_t T = teacher.schedule.steps();
  std::vector<int64_t> stop(size);
  for (int64_t i = 0; i < size; ++i)
    stop[i] = 1 + std::min<int64_t>(T - 2, static_cast<int64_t>(philox::uniform_at(o.run.seed ^ kStopStream, 0, i) * (T - 1)));
  if (o.mode == "iterative") std::fill(stop.begin(), stop.end(), T);  // all b states start at T together
  Pool pool;
  int64_t c = T;  // every entry with stop < c still has to step from c to c - 1
  nn::Metadata meta;
  const std::string identity = dkdm_pool_identity(o, size, shape, T);
  if (fs::exists(path)) {
    pool = load_pool(path, &meta);
    DK_CHECK(meta.count("pool") && meta.at("pool") == identity, path, " was prepared for another run (",
             meta.count("pool") ? meta.at("pool") : std::string("no identity"), "; this one: ", identity,
             "): delete it or use another --run-dir");
    c = nn::metadata_int(meta, "prepared_to", path);
    if (c <= 1 || o.mode == "iterative") return pool;
  } else {
    pool.x = diffusion::sample_noise(shape, 0, size, o.run.seed ^ kPoolNoise, 0);
    pool.t.assign(size, T);
  }
  const bool writes = comm.rank() == 0;
  int64_t total = 0;
  for (int64_t i = 0; i < size; ++i) total += T - stop[i];
  const diffusion::Prediction prediction = diffusion::parse_prediction(teacher.spec.prediction);
  const diffusion::ModelFn fn = [&](const Tensor& x, const Tensor& t) { return teacher.net->forward(x, t); };
  const auto start = std::chrono::steady_clock::now();
  int64_t done = 0;
  for (int64_t i = 0; i < size; ++i) done += T - std::max(stop[i], c);
  for (; c > 1; --c) {
    std::vector<int64_t> active;
    for (int64_t i = 0; i < size; ++i)
      if (stop[i] < c) active.push_back(i);
    const dist::BatchShard mine = dist::shard_of(std::max<int64_t>(1, active.size()), comm.rank(), comm.size());
    TensorList stepped;  // this rank's new states, when they must be gathered
    for (int64_t first = mine.first; first < std::min<int64_t>(active.size(), mine.first + mine.count);
         first += o.prepare_batch) {
      const std::vector<int64_t> idx(active.begin() + first,
                                     active.begin() + std::min<int64_t>(mine.first + mine.count, first + o.prepare_batch));
      const std::vector<int64_t> t(idx.size(), c - 1);
      TensorList z;
      for (int64_t i : idx) z.push_back(diffusion::sample_noise(shape, i, 1, o.run.seed ^ kPoolNoise, c, o.run.device));
      const TeacherStep step =
          dkdm_teacher_step(fn, prediction, teacher.schedule, rows_on(pool.x, idx, o.run.device), t, concat(z, 0));
      if (comm.size() == 1) write_rows(pool.x, idx, step.x_prev);
      else stepped.push_back(to_device(step.x_prev, cpu()));
    }
    if (comm.size() > 1 && !active.empty()) {
      Shape none = shape;
      none.insert(none.begin(), 0);
      NoGradGuard no_grad;
      write_rows(pool.x, active, dist::gather_batch(stepped.empty() ? zeros(none) : concat(stepped, 0), mine, comm));
    }
    for (int64_t i : active) pool.t[i] = c - 1;
    evaluations += static_cast<int64_t>(active.size());
    done += static_cast<int64_t>(active.size());
    const bool report = c % 50 == 0 || c == 2;
    if ((report || c % 100 == 0) && writes)
      save_pool(path, pool, {{"prepared_to", std::to_string(c - 1)}, {"pool", identity}});
    if (report && !o.run.quiet) {
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("  pool: t = %lld, %lld/%lld teacher steps  %.2f ms/step  ETA %s\n", static_cast<long long>(c - 1),
                  static_cast<long long>(done), static_cast<long long>(total), 1000 * seconds / std::max<int64_t>(1, evaluations),
                  diffusion::format_duration(seconds / std::max<int64_t>(1, evaluations) * (total - done)).c_str());
      std::fflush(stdout);
    }
  }
  if (writes) save_pool(path, pool, {{"prepared_to", "1"}, {"pool", identity}});
  return pool;
}

}  // namespace

DkdmResult dkdm_distillation(const DkdmOptions& o) {
  DK_CHECK(o.mode == "dynamic" || o.mode == "iterative" || o.mode == "shuffled", "distill dkdm: unknown --mode '",
           o.mode, "' (expected dynamic, iterative or shuffled)");
  o.run.check("distill dkdm");
  DK_CHECK(o.batch_size > 0 && o.steps > 0 && o.rho > 0, "distill dkdm: --batch, --steps and --rho must be positive");
  diffusion::LoadedModel teacher = diffusion::load_diffusion_model(o.teacher, o.run.device);
  const diffusion::Prediction prediction = diffusion::parse_prediction(teacher.spec.prediction);
  const int64_t T = teacher.schedule.steps();
  const nn::UNetConfig config = nn::load_unet_config(o.student_model);
  const nn::UNetConfig& tc = teacher.net->config();
  DK_CHECK(config.in_channels == tc.in_channels && config.image_size == tc.image_size, "distill dkdm: the student ",
           o.student_model, " takes ", config.in_channels, "x", config.image_size, " images, the teacher ", tc.in_channels,
           "x", tc.image_size);
  const Shape shape{config.in_channels, config.image_size, config.image_size};
  // P = round(rho T) b for the dynamic pool; b states for the ablations.
  const int64_t pool_size =
      o.mode == "dynamic" ? std::max<int64_t>(1, std::llround(o.rho * T)) * o.batch_size : o.batch_size;
  DK_CHECK(pool_size >= o.batch_size, "distill dkdm: a pool of ", pool_size, " is smaller than the batch");

  const nlohmann::json settings = {{"method", "dkdm"},        {"teacher", o.teacher}, {"student", o.student_model},
                                   {"unet", nlohmann::json::parse(config.to_json())},
                                   {"mode", o.mode},          {"rho", o.rho},         {"pool_size", pool_size},
                                   {"batch", o.batch_size},   {"steps", o.steps},     {"lr", o.lr},
                                   {"ema", o.ema},            {"seed", o.run.seed},   {"device", o.run.device.str()}};
  // Data-parallel (dist/): every rank holds the pool and steps its slice of each batch; rank 0 writes.
  dist::Communicator& comm = dist::world_for(o.run.device);
  DK_CHECK(o.batch_size >= comm.size(), "distill dkdm: --batch ", o.batch_size, " is smaller than the ", comm.size(),
           " ranks (each rank needs at least one state of every batch)");
  const dist::BatchShard shard = dist::shard_of(o.batch_size, comm.rank(), comm.size());
  diffusion::RunFolder run(o.run.dir, settings, {"teacher", "unet", "mode", "rho", "pool_size", "batch", "seed"},
                           o.run.resume, o.run.quiet, comm);
  DkdmResult result;
  result.pool_size = pool_size;
  result.model = (run.dir() / "student.safetensors").string();
  if (!o.run.quiet)
    std::printf("distill dkdm: %s -> %s (%lld parameters), data-free, %s pool of %lld states (rho %g, batch %lld)\n",
                o.teacher.c_str(), o.student_model.c_str(), static_cast<long long>(nn::UNet(config).parameter_count()),
                o.mode.c_str(), static_cast<long long>(pool_size), o.rho, static_cast<long long>(o.batch_size));
  const std::string pool_path = (run.dir() / "pool.safetensors").string();
  Pool pool = prepare_pool(teacher, o, pool_size, shape, pool_path, comm, result.teacher_evaluations);

  nn::UNet student(config, o.run.seed);  // any architecture, from scratch
  student.to(o.run.device);              // before Adam and the EMA take its tensors
  student.train();
  AdamHyper hyper;
  hyper.lr = o.lr;
  hyper.decoupled_weight_decay = true;  // AdamW, weight decay 0 (as the official)
  nn::Adam adam(student.named_parameters(), hyper);
  nn::Ema ema(student, o.ema);
  int64_t start = 0;
  default_generator() = Generator(o.run.seed ^ 0xd40);  // dropout masks, drawn for the global batch
  if (comm.size() > 1)
    std::tie(default_generator().shard_first, default_generator().shard_count, default_generator().shard_rows) =
        std::tuple(shard.first, shard.count, shard.total);
  if (const auto latest = run.latest()) {
    nn::load_model((latest->second / "model.safetensors").string(), student);
    const std::string state = (latest->second / "state.safetensors").string();
    const nn::Metadata meta = nn::load_training_state(state, adam, &ema);
    start = nn::metadata_int(meta, "step", state);
    default_generator().seed = static_cast<uint64_t>(nn::metadata_int(meta, "dropout_seed", state));
    default_generator().offset = static_cast<uint64_t>(nn::metadata_int(meta, "dropout_offset", state));
    pool = load_pool((latest->second / "pool.safetensors").string(), nullptr);
    DK_CHECK(static_cast<int64_t>(pool.t.size()) == pool_size && pool.x.size(1) == shape[0] && pool.x.size(2) == shape[1],
             (latest->second / "pool.safetensors").string(), ": a pool of ", pool.t.size(), " states, expected ", pool_size);
  }
  diffusion::DiffusionSpec student_spec = teacher.spec;
  student_spec.prediction = "eps";
  auto save_student = [&](int64_t step) {
    nn::UNet averaged(config);
    ema.copy_to(averaged);
    save_distilled_model(result.model, averaged, student_spec, "",
                         {{"method", "dkdm"}, {"teacher", o.teacher}, {"step", std::to_string(step)}});
  };
  auto save_checkpoint = [&](int64_t step) {
    const fs::path folder = run.checkpoint_folder(step);
    nn::save_model((folder / "model.safetensors").string(), student, config.to_json());
    nn::save_training_state((folder / "state.safetensors").string(), adam, &ema,
                            {{"step", std::to_string(step)},
                             {"dropout_seed", std::to_string(default_generator().seed)},
                             {"dropout_offset", std::to_string(default_generator().offset)}});
    save_pool((folder / "pool.safetensors").string(), pool, {});
    save_student(step);
    run.checkpoint_done(step, o.run.keep_last);
  };

  const diffusion::ModelFn teacher_fn = [&](const Tensor& x, const Tensor& t) { return teacher.net->forward(x, t); };
  diffusion::InterruptGuard interrupt;
  diffusion::ProgressLine progress(o.steps);
  double loss_sum = 0, mse_sum = 0, vb_sum = 0;
  int64_t window = 0;
  for (int64_t step = start + 1; step <= o.steps; ++step) {
    // b distinct entries: the first b of a permutation keyed by (seed, step); the ablations use all.
    std::vector<int64_t> idx = keyed_permutation(pool_size, o.mode == "dynamic" ? o.batch_size : 0,
                                                 o.run.seed ^ streams::kDkdmPick, static_cast<uint64_t>(step));
    if (o.mode != "dynamic") {  // the ablations use every state, in order
      idx.resize(pool_size);
      for (int64_t i = 0; i < pool_size; ++i) idx[i] = i;
    }
    // Finished entries (counter 0) start again from fresh noise at T.
    const Tensor fresh = diffusion::sample_noise(shape, 0, o.batch_size, o.run.seed ^ kResetNoise, static_cast<uint64_t>(step));
    std::vector<int64_t> t(o.batch_size);
    for (int64_t j = 0; j < o.batch_size; ++j) {
      if (pool.t[idx[j]] == 0) {
        write_rows(pool.x, {idx[j]}, narrow(fresh, 0, j, 1));
        pool.t[idx[j]] = T;
      }
      t[j] = pool.t[idx[j]] - 1;  // x is ready to be denoised at schedule index t
    }
    // This rank's states of the batch.
    const std::vector<int64_t> my_idx(idx.begin() + shard.first, idx.begin() + shard.first + shard.count);
    const std::vector<int64_t> my_t(t.begin() + shard.first, t.begin() + shard.first + shard.count);
    const Tensor x_t = rows_on(pool.x, my_idx, o.run.device);
    const Tensor z = diffusion::sample_noise(shape, shard.first, shard.count, o.run.seed ^ kStepNoise,
                                             static_cast<uint64_t>(step), o.run.device);
    const TeacherStep target = dkdm_teacher_step(teacher_fn, prediction, teacher.schedule, x_t, my_t, z);
    DkdmLossParts parts;
    Tensor loss = dist::rank_share(dkdm_loss(student.forward(x_t, diffusion::model_time(teacher.schedule, my_t)),
                                             target, teacher.schedule, x_t, my_t, &parts),
                                   shard);
    std::vector<double> shares{loss.item(), parts.mse * shard.weight(), parts.vb * shard.weight()};
    const bool interrupted = dist::sum_step_scalars(shares, interrupt.requested(), comm);
    const double value = shares[0];
    DK_CHECK(std::isfinite(value), "distill dkdm: step ", step, ": the loss is ", value,
             "; stopping. The last good checkpoint is in ", (run.dir() / "checkpoints").string());
    loss.backward();
    dist::all_reduce_gradients(student.parameters(), 1.0, comm);
    adam.step();
    adam.zero_grad();
    ema.update(student, step);
    {  // the selected states advance by one step (every rank's, on every rank)
      NoGradGuard no_grad;
      write_rows(pool.x, idx, dist::gather_batch(to_device(target.x_prev, cpu()), shard, comm));
    }
    for (int64_t j = 0; j < o.batch_size; ++j) pool.t[idx[j]] = t[j];
    loss_sum += value;
    mse_sum += shares[1];
    vb_sum += shares[2];
    ++window;
    if (step % o.run.log_every == 0 || step == o.steps) {
      char fields[128];
      std::snprintf(fields, sizeof fields, "loss %.5f (mse %.5f, vb %.5f)", loss_sum / window, mse_sum / window,
                    vb_sum / window);
      const double rate = progress.report(step, window, fields, o.run.quiet);
      run.log_metrics(step, {{"loss", loss_sum / window}, {"mse", mse_sum / window}, {"vb", vb_sum / window},
                             {"steps_per_s", rate}});
      loss_sum = mse_sum = vb_sum = 0;
      window = 0;
    }
    if (o.run.finish_step(step, o.steps, false, interrupted, run, save_checkpoint)) {
      result.interrupted = true;
      break;
    }
  }
  run.write_loss_chart("DKDM loss");
  return result;
}

}  // namespace diffkd::distill

// `diffkd distill --method <name>`: distils a teacher into a faster student (distill/). Each method
// has a preset at MNIST scale (the default) and one with its paper's recipe (distill/presets.h says
// which teacher each fits); any flag given overrides its preset's value.

#include <cstdio>
#include <filesystem>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "data/registry.h"
#include "distill/advkd.h"
#include "distill/denoising_student.h"
#include "distill/dkdm.h"
#include "distill/presets.h"
#include "distill/progressive.h"
#include "distill/rdd.h"
#include "distill/sid.h"
#include "dist/communicator.h"
#include "eval/classifier_eval.h"

namespace diffkd::apps {

namespace {

struct {
  std::string method = "student";
  std::string preset = "mnist";
  std::string teacher = "models/mnist-teacher.safetensors";
  std::string data = "mnist";
  std::string run_dir;
  bool resume = false;
  uint64_t seed = 0;
  int64_t batch = 64, log_every = 50, checkpoint_every = 500, keep_last = 2, pad_to = 0;
  double lr = 1e-4;
  // Denoising Student
  std::string pairs_dir;
  int64_t pairs = 10000, held_out = 1000, shard_size = 1000, teacher_steps = 50, quadratic_last = 800, gen_batch = 100;
  std::string spacing = "uniform", student_loss = "l1", form = "auto";
  bool no_quantise = false;
  int64_t steps = 5000, warmup = 500, eval_every = 500;
  double ema = 0.995, beta2 = 0.98;
  // Progressive (and RDD, which runs on its stages)
  int64_t start_steps = 128, end_steps = 1, updates = 2000, few_step_factor = 1;
  std::string lr_anneal = "linear", pd_loss = "snr-trunc";
  // RDD
  std::string from = "runs/progressive/students/steps-0008.safetensors", feature_net, queue = "clean";
  int64_t queue_rows = 4096, contrast_rows = 512, enqueue = 128;
  double pd_weight = 0, tau_cfd = 0.9, tau_isp2p = 1.0, tau_contrast = 0.1, tau_kd = 1.0;
  // DKDM
  std::string student_model = "dkdm-mnist-student", mode = "dynamic";
  double rho = 0.02;
  // Adv-KD
  std::string generator = "advkd-mnist", gan = "logistic";
  int64_t trajectories = 2000, epochs = 2, ndf = 32;
  double gp_weight = 10, clip = 0.1;
  std::string d_batch = "separate";
  std::vector<int64_t> stage_batches;
  bool no_quantise_noise = false;
  // SiD
  double alpha = 1.2, sigma_init = 2.5, t_max = 800, fake_lr = 0, ema_rampup = 0.05;
  std::string fake_levels = "lognormal";
} opts;

CLI::App* command = nullptr;

// A preset's value for a flag the user did not give.
template <typename T>
void preset_value(const std::string& flag, T& variable, const T& value) {
  if (command->get_option(flag)->count() == 0) variable = value;
}

// The preset's hyperparameters for the flags not given, after refusing a run the preset does not
// fit (distill/presets.h): a flag it needs left at its MNIST default, or a model made for another
// recipe.
void apply_preset() {
  const distill::DistillPreset& preset = distill::find_distill_preset(opts.method, opts.preset);
  const std::string who = "distill --method " + opts.method + " --preset " + opts.preset;
  for (const std::string& flag : preset.required)
    DK_CHECK(command->get_option(flag)->count() > 0, who, ": give ", flag, " (the preset is for ", preset.fit.kind,
             "; the default is the MNIST one)");
  if (opts.preset == "mnist") return;  // the flags' defaults are the MNIST presets
  // The papers' settings (METHODS.md 1.5, 0.5, 2, 3.3 and 4.1), for a machine that can afford them.
  if (opts.method == "student") {
    preset_value("--pairs", opts.pairs, int64_t{1024000});
    preset_value("--held-out", opts.held_out, int64_t{51200});
    preset_value("--shard-size", opts.shard_size, int64_t{12800});
    preset_value("--teacher-steps", opts.teacher_steps, int64_t{100});
    preset_value("--spacing", opts.spacing, std::string("quadratic"));
    preset_value("--loss", opts.student_loss, std::string("l1"));
    preset_value("--batch", opts.batch, int64_t{512});
    preset_value("--lr", opts.lr, 2e-4);
    preset_value("--warmup", opts.warmup, int64_t{5000});
    preset_value("--steps", opts.steps, int64_t{50000});  // 25 epochs of 1.024M pairs at batch 512
    preset_value("--eval-every", opts.eval_every, int64_t{2000});
  } else if (opts.method == "advkd") {  // METHODS.md 2: CelebA-HQ 256, 11 stages
    preset_value("--generator", opts.generator, std::string("advkd-celebahq"));
    preset_value("--trajectories", opts.trajectories, int64_t{20000});
    preset_value("--teacher-steps", opts.teacher_steps, int64_t{1000});
    preset_value("--epochs", opts.epochs, int64_t{10});
    preset_value("--stage-batches", opts.stage_batches, std::vector<int64_t>{64, 64, 64, 64, 64, 64, 64, 64, 32, 16, 16});
  } else if (opts.method == "dkdm") {  // METHODS.md 3.3: the 57M -> 14M CIFAR-10 pair
    preset_value("--student-model", opts.student_model, std::string("dkdm-cifar10-student"));
    preset_value("--rho", opts.rho, 0.4);
    preset_value("--batch", opts.batch, int64_t{128});
    preset_value("--ema", opts.ema, 0.9999);
    preset_value("--steps", opts.steps, int64_t{200000});
  } else if (opts.method == "sid") {  // SiD's CIFAR-10 settings (sid.h)
    preset_value("--batch", opts.batch, int64_t{256});
    preset_value("--lr", opts.lr, 1e-5);
    preset_value("--ema", opts.ema, 0.999645);  // a half-life of 500k images at batch 256
    preset_value("--steps", opts.steps, int64_t{200000});
  } else if (opts.method == "rdd") {  // train_rdd.sh: 20k steps per halving, batch 128, lr 5e-5
    preset_value("--updates", opts.updates, int64_t{20000});
    preset_value("--batch", opts.batch, int64_t{128});
    preset_value("--lr", opts.lr, 5e-5);
    preset_value("--queue-rows", opts.queue_rows, int64_t{20000});
    preset_value("--contrast-rows", opts.contrast_rows, int64_t{4096});
  } else {
    preset_value("--start-steps", opts.start_steps, int64_t{512});  // 8192 officially; T = 1000 allows 512
    preset_value("--updates", opts.updates, int64_t{50000});
    preset_value("--batch", opts.batch, int64_t{128});
    preset_value("--lr", opts.lr, 5e-5);
    preset_value("--pd-loss", opts.pd_loss, std::string("snr-trunc"));
  }
  distill::ModelFit fit = preset.fit;
  if (opts.method == "student") {  // the noise check is of the sequence's first step
    if (opts.spacing == "quadratic") fit.first_step = opts.quadratic_last;
    else fit.max_alpha_bar = 0;  // uniform steps start at T - 1
  }
  distill::check_model_fits(who, opts.method == "rdd" ? opts.from : opts.teacher, preset.model_flag, fit);
}

// Under mpirun rank 0 speaks for all (every rank runs the method; dist/).
bool lead() { return dist::world().rank() == 0; }

// The run-control flags every method shares.
diffusion::RunControl run_control(const std::string& dir) {
  diffusion::RunControl r;
  r.dir = dir;
  r.seed = opts.seed;
  r.log_every = opts.log_every;
  r.checkpoint_every = opts.checkpoint_every;
  r.keep_last = opts.keep_last;
  r.resume = opts.resume;
  r.device = selected_device();
  r.quiet = !lead();
  return r;
}

int run_distill() {
  apply_preset();
  const Device device = selected_device();  // the networks' device; pools, pairs and queues stay on the host
  const std::string run_dir = opts.run_dir.empty() ? "runs/" + opts.method : opts.run_dir;
  if (opts.method == "student") {
    distill::PairOptions p;
    p.teacher = opts.teacher;
    p.dir = opts.pairs_dir.empty() ? run_dir + "/pairs" : opts.pairs_dir;
    p.count = opts.pairs;
    p.held_out = opts.held_out;
    p.shard_size = opts.shard_size;
    p.steps = opts.teacher_steps;
    p.spacing = opts.spacing;
    p.quadratic_last = opts.quadratic_last;
    p.quantise = !opts.no_quantise;
    p.batch_size = opts.gen_batch;
    p.seed = opts.seed;
    p.device = device;
    p.quiet = !lead();
    distill::generate_pairs(p);
    distill::StudentOptions s;
    s.teacher = opts.teacher;
    s.pairs = p.dir;
    s.run = run_control(run_dir);
    s.loss = opts.student_loss;
    s.form = opts.form;
    s.steps = opts.steps;
    s.batch_size = opts.batch;
    s.lr = opts.lr;
    s.warmup = opts.warmup;
    s.beta2 = opts.beta2;
    s.ema = opts.ema;
    s.eval_every = opts.eval_every;
    const distill::StudentResult r = distill::train_denoising_student(s);
    if (!r.interrupted && lead())
      std::printf("distill student: the one-step student (best held-out loss %.5f) is %s\n", r.best_held_out_loss,
                  r.model.c_str());
    return r.interrupted ? 130 : 0;
  }
  if (opts.method == "advkd") {
    distill::TrajectoryOptions t;
    t.teacher = opts.teacher;
    t.dir = run_dir + "/trajectories";
    t.generator = opts.generator;
    t.count = opts.trajectories;
    t.teacher_steps = command->get_option("--teacher-steps")->count() || opts.preset != "mnist" ? opts.teacher_steps : 100;
    t.shard_size = opts.shard_size;
    t.batch_size = opts.gen_batch;
    t.quantise_noise = !opts.no_quantise_noise;
    t.seed = opts.seed;
    t.device = device;
    t.quiet = !lead();
    distill::generate_trajectories(t);
    distill::AdvKdOptions a;
    a.teacher = opts.teacher;
    a.trajectories = t.dir;
    a.run = run_control(run_dir);
    a.epochs = opts.epochs;
    a.batch_size = opts.batch;
    a.stage_batches = opts.stage_batches;
    a.lr = opts.lr;
    a.ndf = opts.ndf;
    a.adversarial.gan = opts.gan;
    a.adversarial.gp_weight = opts.gp_weight;
    a.adversarial.clip = opts.clip;
    a.adversarial.d_batch = opts.d_batch;
    const distill::AdvKdResult r = distill::train_advkd(a);
    if (!r.interrupted && lead()) std::printf("distill advkd: the generator is %s (one pass per image)\n", r.model.c_str());
    return r.interrupted ? 130 : 0;
  }
  if (opts.method == "dkdm") {  // data-free: no dataset is opened
    distill::DkdmOptions d;
    d.teacher = opts.teacher;
    d.student_model = opts.student_model;
    d.run = run_control(run_dir);
    d.mode = opts.mode;
    d.rho = opts.rho;
    d.batch_size = opts.batch;
    d.steps = opts.steps;
    d.lr = opts.lr;
    d.ema = command->get_option("--ema")->count() ? opts.ema : (opts.preset == "mnist" ? 0.999 : opts.ema);
    const distill::DkdmResult r = distill::dkdm_distillation(d);
    if (!r.interrupted && lead())
      std::printf("distill dkdm: the student (EMA) is %s; pool of %lld states (%lld teacher evaluations to prepare)\n",
                  r.model.c_str(), static_cast<long long>(r.pool_size), static_cast<long long>(r.teacher_evaluations));
    return r.interrupted ? 130 : 0;
  }
  if (opts.method == "sid") {  // data-free: no dataset is opened
    distill::SidOptions d;
    d.teacher = opts.teacher;
    d.run = run_control(run_dir);
    d.alpha = opts.alpha;
    d.sigma_init = opts.sigma_init;
    d.t_max = opts.t_max;
    d.batch_size = opts.batch;
    const bool mnist = opts.preset == "mnist";
    d.steps = command->get_option("--steps")->count() || !mnist ? opts.steps : 2000;
    d.lr = command->get_option("--lr")->count() || !mnist ? opts.lr : 2e-5;
    d.fake_lr = command->get_option("--fake-lr")->count() ? opts.fake_lr : d.lr;
    d.ema = opts.ema;
    d.ema_rampup = opts.ema_rampup;
    d.fake_levels = opts.fake_levels;
    const distill::SidResult r = distill::sid_distillation(d);
    if (!r.interrupted && lead())
      std::printf("distill sid: the one-step generator (EMA, at t = %lld) is %s\n", static_cast<long long>(r.t_init),
                  r.model.c_str());
    return r.interrupted ? 130 : 0;
  }
  const bool rdd = opts.method == "rdd";
  distill::ProgressiveOptions p;
  p.teacher = rdd ? opts.from : opts.teacher;
  p.dataset = opts.data;
  p.run = run_control(run_dir);
  // RDD distils 8 -> 4 -> 2 -> 1 from PD's 8-step student (METHODS.md 4.1).
  p.start_steps = rdd && command->get_option("--start-steps")->count() == 0 ? 8 : opts.start_steps;
  p.end_steps = opts.end_steps;
  p.updates_per_stage = opts.updates;
  p.batch_size = opts.batch;
  p.lr = opts.lr;
  // RDD's released recipe (METHODS.md 4.1): cosine annealing per stage, twice the updates for the
  // 2- and 1-step students.
  p.lr_anneal = rdd && command->get_option("--lr-anneal")->count() == 0 ? "cosine" : opts.lr_anneal;
  p.few_step_update_factor =
      rdd && command->get_option("--few-step-factor")->count() == 0 ? 2 : opts.few_step_factor;
  p.loss = opts.pd_loss;
  p.pad_to = opts.pad_to;
  const data::ImageDataset train_set = data::load_dataset(opts.data, data::Split::Train);
  p.horizontal_flip = train_set.channels == 3;  // as `train`: colour images (CIFAR) flip, digits never
  std::unique_ptr<distill::RddObjective> objective;
  if (rdd) {
    distill::RddOptions r;
    r.feature_net = opts.feature_net.empty() ? run_dir + "/feature-net.safetensors" : opts.feature_net;
    if (opts.feature_net.empty() && !std::filesystem::exists(r.feature_net) && lead()) {
      // RDD's own feature network: a classifier on [-1, 1] images, never the evaluation one
      // (trained by rank 0 alone; the other ranks wait for the file).
      std::printf("distill rdd: training the feature network %s (train-classifier, seed 2, 2 epochs)\n",
                  r.feature_net.c_str());
      std::filesystem::create_directories(run_dir);
      eval::ClassifierTrainOptions c;
      c.epochs = 2;
      c.seed = 2;
      eval::train_classifier(train_set, data::load_dataset(opts.data, data::Split::Test), c, r.feature_net);
    }
    dist::world().barrier();
    r.weights.pd = opts.pd_weight;
    r.weights.tau_cfd = opts.tau_cfd;
    r.weights.tau_isp2p = opts.tau_isp2p;
    r.weights.tau_contrast = opts.tau_contrast;
    r.weights.tau_kd = opts.tau_kd;
    r.queue_rows = opts.queue_rows;
    r.contrast_rows = opts.contrast_rows;
    r.enqueue = opts.enqueue;
    r.faithful_queue = opts.queue == "faithful";
    r.head_lr = opts.lr;
    r.seed = opts.seed;
    r.device = device;
    objective = std::make_unique<distill::RddObjective>(r);
  }
  const distill::ProgressiveResult r = distill::progressive_distillation(p, train_set, objective.get());
  if (!r.interrupted && !r.students.empty() && lead())
    std::printf("distill %s: students %s ... %s (each samples with its own steps by default)\n", opts.method.c_str(),
                r.students.front().c_str(), r.students.back().c_str());
  return r.interrupted ? 130 : 0;
}

}  // namespace

void add_distill_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("distill", "Distil a teacher into a faster student");
  command = c;
  c->add_option("--method", opts.method,
                "student (Denoising Student), progressive (Progressive Distillation) or rdd (Relational Diffusion "
                "Distillation, on PD's stages), dkdm (data-free, any student architecture) or advkd (adversarial, "
                "a one-pass staged generator) or sid (Score identity Distillation: data-free, one step)")
      ->capture_default_str()->check(CLI::IsMember({"student", "progressive", "rdd", "dkdm", "advkd", "sid"}));
  c->add_option("--preset", opts.preset,
                "mnist (the flags' defaults), or the paper's recipe for the teacher it was written for, refused on "
                "another: cifar10 (student, progressive, rdd, dkdm, sid; student: Ho et al.'s linear-beta DDPM) or "
                "celeba-hq-256 (advkd); needs --teacher (rdd: --from) and, for progressive and rdd, --data")
      ->capture_default_str()->check(CLI::IsMember({"mnist", "cifar10", "celeba-hq-256"}));
  c->add_option("--teacher", opts.teacher, "teacher model file (from `diffkd train`)")->capture_default_str();
  c->add_option("--run-dir", opts.run_dir, "run folder (default: runs/<method>)");
  c->add_flag("--resume", opts.resume, "continue the run in --run-dir from its latest checkpoint");
  c->add_option("--seed", opts.seed, "seed of every random draw")->capture_default_str();
  c->add_option("--batch", opts.batch, "training batch size")->capture_default_str();
  c->add_option("--lr", opts.lr, "Adam learning rate")->capture_default_str();
  c->add_option("--log-every", opts.log_every, "steps between progress lines")->capture_default_str();
  c->add_option("--checkpoint-every", opts.checkpoint_every, "steps between checkpoints")->capture_default_str();
  c->add_option("--keep-last", opts.keep_last, "checkpoints kept")->capture_default_str();
  // Denoising Student
  c->add_option("--pairs-dir", opts.pairs_dir, "student: folder of (noise, teacher image) pairs (default: <run-dir>/pairs)");
  c->add_option("--pairs", opts.pairs, "student: training pairs to generate")->capture_default_str();
  c->add_option("--held-out", opts.held_out, "student: held-out pairs (model selection)")->capture_default_str();
  c->add_option("--shard-size", opts.shard_size, "student, advkd: pairs (trajectories) per shard file")->capture_default_str();
  c->add_option("--teacher-steps", opts.teacher_steps,
                "student: the teacher's DDIM steps (eta 0); advkd: its DDPM steps (default there 100)")->capture_default_str();
  c->add_option("--spacing", opts.spacing, "student: the teacher's steps, uniform or quadratic (ending at --quadratic-last)")
      ->capture_default_str()->check(CLI::IsMember({"uniform", "quadratic"}));
  c->add_option("--quadratic-last", opts.quadratic_last, "student: last index of the quadratic sequence")->capture_default_str();
  c->add_flag("--no-quantise", opts.no_quantise, "student: keep float32 targets (default: 8-bit, as the official code)");
  c->add_option("--gen-batch", opts.gen_batch, "student, advkd: teacher batch when generating the set")->capture_default_str();
  c->add_option("--loss", opts.student_loss, "student: l1 (CIFAR-10 in the paper) or l2")->capture_default_str()
      ->check(CLI::IsMember({"l1", "l2"}));
  c->add_option("--form", opts.form,
                "student: the one-step output, residual (x_T - net(x_T), official, for an eps teacher) or x0 (the "
                "x0 the teacher's prediction implies); auto picks residual for eps teachers, x0 for v and x0 ones")
      ->capture_default_str()->check(CLI::IsMember({"auto", "residual", "x0"}));
  c->add_option("--steps", opts.steps, "student and dkdm: optimiser steps; sid: iterations (default 2000 at MNIST)")
      ->capture_default_str();
  c->add_option("--warmup", opts.warmup, "student: linear LR warm-up steps")->capture_default_str();
  c->add_option("--ema", opts.ema, "student, dkdm and sid: EMA decay (dkdm's MNIST default 0.999)")->capture_default_str();
  c->add_option("--beta2", opts.beta2, "student: Adam beta2")->capture_default_str();
  c->add_option("--eval-every", opts.eval_every, "student: steps between held-out evaluations of the EMA")->capture_default_str();
  // Progressive
  c->add_option("--data", opts.data, std::string("progressive: training images: ") + data::kDatasetHelp)->capture_default_str();
  c->add_option("--pad-to", opts.pad_to, "progressive: zero-pad images to this size (0: as they are)")->capture_default_str();
  c->add_option("--start-steps", opts.start_steps, "progressive: the teacher's DDIM steps (trailing grid); the first student has half")
      ->capture_default_str();
  c->add_option("--end-steps", opts.end_steps, "progressive: the last student's steps")->capture_default_str();
  c->add_option("--updates", opts.updates, "progressive: optimiser steps per halving")->capture_default_str();
  c->add_option("--lr-anneal", opts.lr_anneal,
                "progressive and rdd: per-stage LR anneal to 0, linear or cosine (rdd's default, its released recipe)")
      ->capture_default_str()->check(CLI::IsMember({"linear", "cosine"}));
  c->add_option("--few-step-factor", opts.few_step_factor,
                "progressive and rdd: the 2- and 1-step students train this many times --updates (default: 1; rdd: "
                "2, its released recipe)")
      ->capture_default_str();
  c->add_option("--pd-loss", opts.pd_loss, "progressive: snr-trunc, v-mse or x-mse")->capture_default_str()
      ->check(CLI::IsMember({"snr-trunc", "v-mse", "x-mse"}));
  // RDD
  c->add_option("--from", opts.from, "rdd: the PD student to start from (its steps: --start-steps, default 8)")
      ->capture_default_str();
  c->add_option("--feature-net", opts.feature_net,
                "rdd: feature classifier (default: <run-dir>/feature-net.safetensors, trained if missing)");
  c->add_option("--queue", opts.queue, "rdd: memory-bank flatten, clean (pixels) or faithful (the official raw view)")
      ->capture_default_str()->check(CLI::IsMember({"clean", "faithful"}));
  c->add_option("--queue-rows", opts.queue_rows, "rdd: memory-bank rows")->capture_default_str();
  c->add_option("--contrast-rows", opts.contrast_rows, "rdd: fixed, evenly spaced contrast rows")->capture_default_str();
  c->add_option("--enqueue", opts.enqueue, "rdd: teacher pixels enqueued per step (K)")->capture_default_str();
  c->add_option("--pd-weight", opts.pd_weight, "rdd: weight of PD's pixel loss (0: off, as the released command)")
      ->capture_default_str();
  c->add_option("--tau-cfd", opts.tau_cfd, "rdd: teacher-side temperature of the feature KL")->capture_default_str();
  c->add_option("--tau-isp2p", opts.tau_isp2p, "rdd: pixel-relation temperature")->capture_default_str();
  c->add_option("--tau-contrast", opts.tau_contrast, "rdd: memory-bank contrast temperature")->capture_default_str();
  c->add_option("--tau-kd", opts.tau_kd, "rdd: memory-bank KD temperature")->capture_default_str();
  // DKDM
  c->add_option("--student-model", opts.student_model, "dkdm: the student's preset or JSON config (any architecture)")
      ->capture_default_str();
  c->add_option("--mode", opts.mode, "dkdm: dynamic (the method), iterative or shuffled (the paper's ablations)")
      ->capture_default_str()->check(CLI::IsMember({"dynamic", "iterative", "shuffled"}));
  c->add_option("--rho", opts.rho, "dkdm: pool factor, pool = round(rho T) batch states (the paper: 0.4)")
      ->capture_default_str();
  // Adv-KD
  c->add_option("--generator", opts.generator, "advkd: the staged generator's preset or JSON")->capture_default_str();
  c->add_option("--trajectories", opts.trajectories, "advkd: teacher DDPM trajectories to record")->capture_default_str();
  c->add_option("--epochs", opts.epochs, "advkd: stage k trains epochs * (k + 1) epochs (the official: 10)")
      ->capture_default_str();
  c->add_option("--stage-batches", opts.stage_batches,
                "advkd: one batch size per generator stage, comma-separated (default: --batch for all; "
                "celeba-hq-256: 64 x 8, 32, 16, 16)")
      ->delimiter(',');
  c->add_option("--gan", opts.gan, "advkd: logistic (non-saturating, official) or wgan")->capture_default_str()
      ->check(CLI::IsMember({"logistic", "wgan"}));
  c->add_option("--gp-weight", opts.gp_weight, "advkd: WGAN-GP penalty weight (0: off)")->capture_default_str();
  c->add_option("--clip", opts.clip, "advkd: clip D's weights to +-clip after each step (0: off)")->capture_default_str();
  c->add_option("--d-batch", opts.d_batch,
                "advkd: separate (real and fake through D in two passes, each its own BatchNorm statistics, official) "
                "or joint (one pass)")
      ->capture_default_str()
      ->check(CLI::IsMember({"separate", "joint"}));
  c->add_option("--ndf", opts.ndf, "advkd: the discriminator's first width")->capture_default_str();
  c->add_flag("--no-quantise-noise", opts.no_quantise_noise,
              "advkd: the generator's input from the exact noise (default: as an 8-bit image, as the official)");
  // SiD
  c->add_option("--alpha", opts.alpha, "sid: the generator loss's alpha (the paper: 1.2)")->capture_default_str();
  c->add_option("--sigma-init", opts.sigma_init, "sid: the generator's noise level (its step: the teacher's nearest)")
      ->capture_default_str();
  c->add_option("--t-max", opts.t_max, "sid: the highest of SiD's noise levels, 0..1000 (800: sigma ~ 24.5)")
      ->capture_default_str();
  c->add_option("--fake-lr", opts.fake_lr, "sid: the fake score network's learning rate (default: --lr; MNIST: 2e-5)");
  c->add_option("--fake-levels", opts.fake_levels,
                "sid: the fake score's noise levels: lognormal (EDM's training levels, as SiD) or generator (the "
                "generator loss's levels)")
      ->capture_default_str()->check(CLI::IsMember({"lognormal", "generator"}));
  c->add_option("--ema-rampup", opts.ema_rampup,
                "sid: the EMA's half-life at most this fraction of the iterations taken (EDM's 0.05; 0: --ema alone)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  add_diffusion_flags(c);
  on_run(c, run_distill);
}

}  // namespace diffkd::apps

// `diffkd eval`: scores generated images against a dataset's test set on the evaluation
// classifier's features: FID-proxy, KID, IS-proxy, class histogram, and (with --teacher) the
// fidelity of the model to a teacher fed the same noise. Also the calibration rows: --source
// real (training images), blurred (test images blurred) or noise. Prints and writes JSON.
// --teacher-samples keeps the teacher's images in a file, so that many students scored against the
// same teacher sampler generate them once (the benchmark table scores a dozen).

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/sampler_flags.h"
#include "apps/sampler_spec.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/registry.h"
#include "diffusion/generate.h"
#include "eval/classifier_eval.h"
#include "eval/metrics.h"
#include "eval/score.h"
#include "nn/safetensors.h"

namespace diffkd::apps {

namespace {

struct {
  std::string model, teacher, teacher_sampler, classifier = "classifier.safetensors", data = "mnist", source = "model";
  std::string out, teacher_samples, grid, strip;
  SamplerFlags sampler;
  int64_t count = 1000, batch = 100, strip_count = 10;
  uint64_t seed = 0;
} opts;

// The teacher file's identity beyond its name: FNV-1a (64-bit) of its bytes, in hex. A teacher
// re-trained and shipped under the same name must not reuse the old teacher's cached images.
std::string file_fingerprint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DK_CHECK(in, path, ": cannot read the file");
  uint64_t hash = 14695981039346656037ull;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    for (std::streamsize i = 0; i < in.gcount(); ++i) hash = (hash ^ static_cast<unsigned char>(buffer[i])) * 1099511628211ull;
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

// The teacher's images from the same noise: read from `cache` when it holds exactly these (teacher
// file by name and contents, sampler, seed, N), otherwise generated and written there. Another
// run's file is an error, not silently reused.
Tensor teacher_images(diffusion::LoadedModel& teacher, const diffusion::SamplerConfig& config, const std::string& cache,
                      const std::function<void(const diffusion::GenerateProgress&)>& progress) {
  namespace fs = std::filesystem;
  const safetensors::Metadata key = {{"teacher", fs::path(opts.teacher).filename().string()},
                                     {"teacher_fnv1a", file_fingerprint(opts.teacher)},
                                     {"sampler", describe_model_sampler(teacher, config)},
                                     {"seed", std::to_string(opts.seed)},
                                     {"count", std::to_string(opts.count)}};
  if (!cache.empty() && fs::exists(cache)) {
    const safetensors::Contents c = safetensors::load(cache);
    for (const auto& [name, value] : key) {
      const auto found = c.metadata.find(name);
      DK_CHECK(found != c.metadata.end() && found->second == value, cache, ": teacher samples for ", name, " = ",
               found == c.metadata.end() ? std::string("(missing)") : found->second, ", expected ", value,
               " (delete the file to regenerate it)");
    }
    std::printf("eval: the teacher's images from %s\n", cache.c_str());
    return c.at("images");
  }
  const Tensor images = diffusion::generate(teacher, config, 0, opts.count, opts.batch, opts.seed, progress);
  if (!cache.empty()) safetensors::save(cache, {{"images", images}}, key);
  return images;
}

int run_eval() {
  // Flag errors before any file's. A distilled student usually runs fewer steps than its teacher:
  // the teacher's sampler is its own.
  opts.sampler.config();
  if (!opts.teacher_sampler.empty()) parse_sampler_spec(opts.teacher_sampler, opts.count, "eval: --teacher-sampler");
  eval::LoadedClassifier classifier = eval::load_classifier(opts.classifier);
  const data::ImageDataset test = data::load_dataset(opts.data, data::Split::Test);
  DK_CHECK(opts.count <= test.count, "eval: --count ", opts.count, " exceeds the ", test.count, " test images of ", opts.data);
  nlohmann::json report = {{"N", opts.count}, {"seed", opts.seed}, {"reference", opts.data + " test[0:" + std::to_string(opts.count) + "]"},
                           {"classifier", opts.classifier}, {"source", opts.source}};
  Tensor images;
  if (opts.source == "model") {
    DK_CHECK(!opts.model.empty(), "eval: --model is required with --source model");
    diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model, selected_device());
    const diffusion::SamplerConfig sampler = opts.sampler.config_for(model);
    std::printf("eval: %lld samples from %s (%s)\n", static_cast<long long>(opts.count), opts.model.c_str(),
                describe_model_sampler(model, sampler).c_str());
    double seconds = 0;
    const auto print_progress = [&](const diffusion::GenerateProgress& p) {
      seconds = p.seconds;
      std::printf("  %lld/%lld images  %.1f ms/image  ETA %.0fs\n", static_cast<long long>(p.done),
                  static_cast<long long>(p.total), 1000 * p.seconds / p.done, p.seconds / p.done * (p.total - p.done));
      std::fflush(stdout);
    };
    images = diffusion::generate(model, sampler, 0, opts.count, opts.batch, opts.seed, print_progress);
    const double model_seconds = seconds;
    report["model"] = opts.model;
    report["sampler"] = describe_model_sampler(model, sampler);
    report["nfe"] = model_nfe(model, sampler);
    report["ms_per_image"] = 1000 * model_seconds / opts.count;
    if (!opts.teacher.empty()) {
      diffusion::LoadedModel teacher = diffusion::load_diffusion_model(opts.teacher, selected_device());
      // The teacher's sampler is its own: a distilled student usually runs fewer steps.
      const diffusion::SamplerConfig teacher_config =
          opts.teacher_sampler.empty() ? opts.sampler.config_for(teacher)
                                       : parse_sampler_spec(opts.teacher_sampler, opts.count, "eval: --teacher-sampler").config;
      std::printf("eval: the teacher %s (%s) from the same noise\n", opts.teacher.c_str(),
                  describe_model_sampler(teacher, teacher_config).c_str());
      const Tensor reference = teacher_images(teacher, teacher_config, opts.teacher_samples, print_progress);
      const eval::Fidelity f = eval::fidelity(images, reference);
      report["fidelity_to_teacher"] = {{"teacher", opts.teacher}, {"teacher_sampler", describe_model_sampler(teacher, teacher_config)},
                                       {"mse", f.mse}, {"psnr", f.psnr}};
    }
  } else if (opts.source == "real") {
    images = data::images_in_order(data::load_dataset(opts.data, data::Split::Train), 0, opts.count);
  } else if (opts.source == "blurred") {
    images = eval::box_blur(data::images_in_order(test, 0, opts.count));
  } else {
    Generator gen(opts.seed);
    images = clamp(randn({opts.count, test.channels, test.height, test.width}, gen), -1, 1);
  }
  const std::map<std::string, std::string> text_chunks = {{"source", opts.source}, {"model", opts.model},
                                     {"sampler", report.value("sampler", std::string())}, {"seed", std::to_string(opts.seed)}};
  if (!opts.grid.empty())
    data::write_png(opts.grid, data::make_grid(narrow(images, 0, 0, std::min<int64_t>(64, opts.count)), 8), text_chunks);
  if (!opts.strip.empty()) {
    const int64_t shown = std::min(opts.strip_count, opts.count);
    data::write_png(opts.strip, data::make_grid(narrow(images, 0, 0, shown), shown), text_chunks);
  }
  const eval::ImageScores scores =
      eval::score_images(classifier, images, data::images_in_order(test, 0, opts.count));
  report["fid_proxy"] = scores.fid_proxy;
  report["kid"] = scores.kid;
  report["is_proxy"] = scores.is_proxy;
  report["class_fraction"] = scores.class_fraction;
  const std::string text = report.dump(2);
  std::printf("%s\n", text.c_str());
  if (!opts.out.empty()) std::ofstream(opts.out) << text << '\n';
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("eval", "Score samples: FID-proxy, KID, IS-proxy, class histogram, fidelity");
  c->add_option("--model", opts.model, "diffusion model checkpoint to sample");
  c->add_option("--teacher", opts.teacher, "also measure fidelity to this model from the same noise");
  c->add_option("--teacher-sampler", opts.teacher_sampler,
                "the teacher's sampler, e.g. ddim:50 or ddpm:100:large (default: the model's flags)");
  c->add_option("--classifier", opts.classifier, "evaluation classifier (from train-classifier)")->capture_default_str();
  c->add_option("--data", opts.data, std::string("reference dataset, its test split: ") + data::kDatasetHelp)->capture_default_str();
  c->add_option("--source", opts.source, "model, or a calibration row: real, blurred, noise")->capture_default_str()
      ->check(CLI::IsMember({"model", "real", "blurred", "noise"}));
  c->add_option("--count", opts.count, "N: samples and reference images (scores depend on N)")->capture_default_str()
      ->check(CLI::Range(2, 1000000));
  c->add_option("--batch", opts.batch, "generation batch size")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--seed", opts.seed, "noise seed")->capture_default_str();
  c->add_option("--out", opts.out, "also write the JSON report here");
  c->add_option("--teacher-samples", opts.teacher_samples,
                "with --teacher: a file keeping the teacher's images (read when it holds this teacher, sampler, "
                "seed and N; written otherwise)");
  c->add_option("--grid", opts.grid, "also write the first 64 images as an 8-column PNG grid");
  c->add_option("--strip", opts.strip, "also write the first --strip-count images as one PNG row");
  c->add_option("--strip-count", opts.strip_count, "images in the --strip row")->capture_default_str()
      ->check(CLI::PositiveNumber);
  opts.sampler.add_to(c);
  add_diffusion_flags(c);
  on_run(c, run_eval);
}

}  // namespace diffkd::apps

// `diffkd sample`: images from a trained model: a PNG grid (parameters in its tEXt chunks),
// optionally one PNG per image and the raw samples as safetensors; prints ms per image. --noise
// starts from a given x_T and --save-noise writes the one used, so that a run can be matched
// against another framework's from the same noise.

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/commands.h"
#include "apps/sampler_flags.h"
#include "data/image_io.h"
#include "diffusion/generate.h"
#include "nn/safetensors.h"

namespace diffkd::apps {

namespace {

struct SampleOptions {
  std::string model;
  SamplerFlags sampler;
  int64_t count = 64;
  int64_t batch = 64;
  uint64_t seed = 0;
  std::string out = "samples.png";
  std::string images_dir;
  std::string tensor_out;
  std::string noise_in, noise_out;
} opts;
CLI::Option* count_flag = nullptr;

// x_T from --noise: the tensor "x_T", or the file's only tensor.
Tensor read_noise(const std::string& path) {
  const safetensors::Contents file = safetensors::load(path);
  if (file.contains("x_T")) return file.at("x_T");
  DK_CHECK(file.tensors.size() == 1, path, ": --noise expects a tensor named x_T, or a single tensor; the file has ",
           file.tensors.size());
  return file.tensors[0].second;
}

int run_sample() {
  opts.sampler.config();  // flag errors before the file's
  diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model, selected_device());
  const diffusion::SamplerConfig config = opts.sampler.config_for(model);
  const std::string sampler = describe_model_sampler(model, config);
  Tensor x_T;
  if (!opts.noise_in.empty()) {
    x_T = read_noise(opts.noise_in);
    if (count_flag->count() == 0 && x_T.dim() >= 1) opts.count = x_T.size(0);  // every image of the file
    diffusion::check_initial_noise(model, x_T, opts.count, opts.noise_in);
  }
  if (!opts.noise_out.empty())
    safetensors::save(opts.noise_out, {{"x_T", x_T.defined() ? x_T : diffusion::initial_noise(model, 0, opts.count, opts.seed)}},
                      {{"model", opts.model}, {"seed", std::to_string(opts.seed)},
                       {"source", opts.noise_in.empty() ? "drawn" : opts.noise_in}});
  std::printf("sample: %lld images from %s, %s, seed %llu%s\n", static_cast<long long>(opts.count),
              opts.model.c_str(), sampler.c_str(), static_cast<unsigned long long>(opts.seed),
              opts.noise_in.empty() ? "" : (", x_T from " + opts.noise_in).c_str());
  // The first batch also pays for allocating every buffer; "warm" is the rate after it, what a
  // long-running sampler sees.
  double seconds = 0, first_batch_seconds = 0;
  int64_t first_batch_images = 0;
  const Tensor images = diffusion::generate(
      model, config, 0, opts.count, opts.batch, opts.seed, [&](const diffusion::GenerateProgress& p) {
        if (first_batch_images == 0) {
          first_batch_images = p.done;
          first_batch_seconds = p.seconds;
        }
        seconds = p.seconds;
        std::printf("  %lld/%lld images  %.1f ms/image  ETA %.0fs\n", static_cast<long long>(p.done),
                    static_cast<long long>(p.total), 1000.0 * p.seconds / p.done,
                    p.seconds / p.done * (p.total - p.done));
        std::fflush(stdout);
      },
      x_T);
  const std::map<std::string, std::string> text = {
      {"model", opts.model}, {"sampler", sampler}, {"seed", std::to_string(opts.seed)},
      {"count", std::to_string(opts.count)}};
  const int64_t columns = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(opts.count))));
  data::write_png(opts.out, data::make_grid(images, columns), text);
  if (!opts.images_dir.empty()) {
    std::filesystem::create_directories(opts.images_dir);
    for (int64_t i = 0; i < opts.count; ++i) {
      char name[32];
      std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
      auto per_image = text;
      per_image["index"] = std::to_string(i);
      data::write_png((std::filesystem::path(opts.images_dir) / name).string(), data::tensor_image(images, i), per_image);
    }
  }
  if (!opts.tensor_out.empty())
    safetensors::save(opts.tensor_out, {{"images", images}},
                      {{"model", opts.model}, {"sampler", sampler}, {"seed", std::to_string(opts.seed)}});
  std::printf("wrote %s; %.2f ms per image (batch %lld)", opts.out.c_str(), 1000.0 * seconds / opts.count,
              static_cast<long long>(opts.batch));
  if (opts.count > first_batch_images)
    std::printf("; %.2f ms per image warm (after the first batch)",
                1000.0 * (seconds - first_batch_seconds) / static_cast<double>(opts.count - first_batch_images));
  std::printf("\n");
  return 0;
}

}  // namespace

void add_sample_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("sample", "Draw images from a trained diffusion model");
  c->add_option("--model", opts.model, "model checkpoint (.safetensors from `diffkd train`)")->required();
  opts.sampler.add_to(c);
  count_flag = c->add_option("--count", opts.count, "number of images (with --noise: those of the file)")
                   ->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--batch", opts.batch, "images per batch (does not change the images)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", opts.seed, "noise seed: image i depends only on (seed, i)")->capture_default_str();
  c->add_option("--out", opts.out, "PNG grid")->capture_default_str();
  c->add_option("--images-dir", opts.images_dir, "also write one PNG per image here");
  c->add_option("--save-tensor", opts.tensor_out, "also save the images [N, C, H, W] in [-1, 1] as safetensors");
  c->add_option("--noise", opts.noise_in,
                "start from this x_T [N, C, H, W] (safetensors: a tensor x_T or the only one) instead of drawing it "
                "(DDPM's per-step noise still comes from --seed)");
  c->add_option("--save-noise", opts.noise_out, "also save the x_T the images start from (tensor x_T)");
  add_diffusion_flags(c);
  on_run(c, run_sample);
}

}  // namespace diffkd::apps

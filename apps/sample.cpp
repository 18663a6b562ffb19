// `diffkd sample`: images from a trained model: a PNG grid (parameters in its tEXt chunks),
// optionally one PNG per image and the raw samples as safetensors; prints ms per image.

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
} opts;

int run_sample() {
  opts.sampler.config();  // flag errors before the file's
  diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model, selected_device());
  const diffusion::SamplerConfig config = opts.sampler.config_for(model);
  const std::string sampler = describe_model_sampler(model, config);
  std::printf("sample: %lld images from %s, %s, seed %llu\n", static_cast<long long>(opts.count),
              opts.model.c_str(), sampler.c_str(), static_cast<unsigned long long>(opts.seed));
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
      });
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
  c->add_option("--count", opts.count, "number of images")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--batch", opts.batch, "images per batch (does not change the images)")->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--seed", opts.seed, "noise seed: image i depends only on (seed, i)")->capture_default_str();
  c->add_option("--out", opts.out, "PNG grid")->capture_default_str();
  c->add_option("--images-dir", opts.images_dir, "also write one PNG per image here");
  c->add_option("--save-tensor", opts.tensor_out, "also save the images [N, C, H, W] in [-1, 1] as safetensors");
  on_run(c, run_sample);
}

}  // namespace diffkd::apps

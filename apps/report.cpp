// `diffkd report`: the main job. Samples a diffusion model with several samplers from the same
// noise, scores each against the test set on the evaluation classifier (FID-proxy, KID, IS-proxy,
// class histogram) at a stated N, adds calibration rows (real training images, blurred test
// images, noise) at the same N, and writes PNG grids, a side-by-side sampler comparison, a
// Markdown table and JSON. With no flags: the shipped MNIST teacher and classifier in models/.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
#include "apps/sampler_spec.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/registry.h"
#include "diffusion/generate.h"
#include "eval/score.h"

namespace diffkd::apps {

namespace {

struct {
  std::string model = "models/mnist-teacher.safetensors";
  std::string classifier = "models/mnist-classifier.safetensors";
  std::string data = "mnist";
  std::vector<std::string> samplers = {"ddim:50", "ddim:20", "ddim:10"};
  std::vector<std::string> calibration = {"real", "blurred", "noise"};
  std::string out_dir = "report";
  int64_t count = 1000, batch = 100, grid = 64, compare = 10;
  uint64_t seed = 0;
} opts;

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

int run_report() {
  namespace fs = std::filesystem;
  std::vector<SamplerSpec> rows;
  for (const std::string& s : opts.samplers) rows.push_back(parse_sampler_spec(s, opts.count, "report: --samplers"));
  eval::LoadedClassifier classifier = eval::load_classifier(opts.classifier);
  diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model, selected_device());
  const data::ImageDataset test = data::load_dataset(opts.data, data::Split::Test);
  for (const SamplerSpec& r : rows)
    DK_CHECK(r.count <= test.count, "report: N = ", r.count, " exceeds the ", test.count, " test images of ", opts.data);
  fs::create_directories(opts.out_dir);
  std::printf("report: %s, classifier %s (test accuracy %.2f%%), reference %s test images, N = %lld\n",
              opts.model.c_str(), opts.classifier.c_str(), 100 * classifier.test_accuracy, opts.data.c_str(),
              static_cast<long long>(opts.count));

  nlohmann::json json = {{"model", opts.model}, {"classifier", opts.classifier}, {"data", opts.data},
                         {"seed", opts.seed}, {"N", opts.count},
                         {"reference", opts.data + " test images [0, N) of each row"},
                         {"rows", nlohmann::json::array()}};
  std::ostringstream table;
  table << "| images | N | NFE | ms/image | FID-proxy | KID | IS-proxy | smallest class | grid |\n"
        << "|---|---:|---:|---:|---:|---:|---:|---:|---|\n";
  auto add_row = [&](const std::string& label, const eval::ImageScores& s, const std::string& nfe,
                     const std::string& ms, const std::string& grid_file) {
    table << "| " << label << " | " << s.count << " | " << nfe << " | " << ms << " | " << fixed(s.fid_proxy, 2)
          << " | " << fixed(s.kid, 4) << " | " << fixed(s.is_proxy, 2) << " | "
          << fixed(100 * s.min_class_fraction(), 1) << "% | " << (grid_file.empty() ? "" : "[" + grid_file + "](" + grid_file + ")")
          << " |\n";
    json["rows"].push_back({{"images", label}, {"N", s.count}, {"nfe", nfe}, {"ms_per_image", ms},
                            {"fid_proxy", s.fid_proxy}, {"kid", s.kid}, {"is_proxy", s.is_proxy},
                            {"class_fraction", s.class_fraction}, {"grid", grid_file}});
  };

  std::vector<Tensor> firsts;  // the first images of every sampler, for the comparison figure
  for (size_t i = 0; i < rows.size(); ++i) {
    const SamplerSpec& r = rows[i];
    std::printf("[%zu/%zu] %s: %lld images\n", i + 1, rows.size(), describe_model_sampler(model, r.config).c_str(),
                static_cast<long long>(r.count));
    std::fflush(stdout);
    double seconds = 0;
    const Tensor images = diffusion::generate(
        model, r.config, 0, r.count, opts.batch, opts.seed, [&](const diffusion::GenerateProgress& p) {
          seconds = p.seconds;
          std::printf("  %lld/%lld images  %.1f ms/image  ETA %.0fs\n", static_cast<long long>(p.done),
                      static_cast<long long>(p.total), 1000.0 * p.seconds / p.done,
                      p.seconds / p.done * (p.total - p.done));
          std::fflush(stdout);
        });
    const std::string grid_file = r.name + ".png";
    const int64_t shown = std::min(opts.grid, r.count);
    data::write_png((fs::path(opts.out_dir) / grid_file).string(),
                    data::make_grid(narrow(images, 0, 0, shown), 8),
                    {{"model", opts.model}, {"sampler", describe_model_sampler(model, r.config)}, {"seed", std::to_string(opts.seed)}});
    firsts.push_back(narrow(images, 0, 0, std::min(opts.compare, r.count)));
    const eval::ImageScores s = eval::score_images(classifier, images, data::images_in_order(test, 0, r.count));
    add_row(describe_model_sampler(model, r.config), s, std::to_string(model_nfe(model, r.config)),
            fixed(1000 * seconds / r.count, 1), grid_file);
  }
  // Calibration at every N a row was scored at: FID-proxy depends strongly on N.
  std::set<int64_t, std::greater<>> counts = {opts.count};
  for (const SamplerSpec& r : rows) counts.insert(r.count);
  for (const int64_t n : counts)
  for (const std::string& source : opts.calibration) {
    const Tensor reference = data::images_in_order(test, 0, n);
    Tensor images;
    std::string label;
    if (source == "real") {
      images = data::images_in_order(data::load_dataset(opts.data, data::Split::Train), 0, n);
      label = "calibration: real training images (the floor)";
    } else if (source == "blurred") {
      images = eval::box_blur(reference);
      label = "calibration: test images, 3x3 box blur";
    } else {
      Generator gen(opts.seed);
      images = clamp(randn(reference.shape(), gen), -1, 1);
      label = "calibration: Gaussian noise";
    }
    std::printf("calibration: %s at N = %lld\n", source.c_str(), static_cast<long long>(n));
    add_row(label, eval::score_images(classifier, images, reference), "-", "-", "");
  }
  if (!firsts.empty()) {
    // One row per sampler, the same noise in every column.
    int64_t columns = firsts[0].size(0);
    for (const Tensor& f : firsts) columns = std::min(columns, f.size(0));
    TensorList parts;
    for (const Tensor& f : firsts) parts.push_back(narrow(f, 0, 0, columns));
    data::write_png((fs::path(opts.out_dir) / "samplers.png").string(), data::make_grid(concat(parts, 0), columns));
  }
  const std::string md = table.str();
  std::ofstream(fs::path(opts.out_dir) / "report.md") << md;
  std::ofstream(fs::path(opts.out_dir) / "report.json") << json.dump(2) << '\n';
  std::printf("\n%s\nwrote %s/{report.md,report.json,samplers.png,<sampler>.png}\n", md.c_str(), opts.out_dir.c_str());
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand(
      "report", "The main job: sample a model with several samplers, score each at a stated N, write grids and a table");
  c->add_option("--model", opts.model, "diffusion model checkpoint")->capture_default_str();
  c->add_option("--classifier", opts.classifier, "evaluation classifier")->capture_default_str();
  c->add_option("--data", opts.data, std::string("reference dataset, its test split: ") + data::kDatasetHelp)->capture_default_str();
  c->add_option("--samplers", opts.samplers,
                "comma-separated rows: ddim:STEPS[:eta=E] or ddpm:STEPS[:small|large], optionally @N")
      ->delimiter(',')->capture_default_str();
  c->add_option("--calibration", opts.calibration, "calibration rows at the same N: real, blurred, noise")
      ->delimiter(',')->capture_default_str()->check(CLI::IsMember({"real", "blurred", "noise"}));
  c->add_option("--count", opts.count, "N: samples and reference images per row")->capture_default_str()
      ->check(CLI::Range(2, 1000000));
  c->add_option("--batch", opts.batch, "generation batch size")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--grid", opts.grid, "images in each sampler's PNG grid")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--seed", opts.seed, "noise seed (the same noise for every sampler)")->capture_default_str();
  c->add_option("--out-dir", opts.out_dir, "output folder")->capture_default_str();
  add_diffusion_flags(c);
  on_run(c, run_report);
}

}  // namespace diffkd::apps

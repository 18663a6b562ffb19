// `diffkd report`: the main job. Samples a diffusion model with several samplers from the same
// noise, scores each against the test set on the evaluation classifier (FID-proxy, KID, IS-proxy,
// class histogram) at a stated N, adds calibration rows (real training images, blurred test
// images, noise) at the same N, and writes PNG grids, a side-by-side sampler comparison, a
// Markdown table and JSON. With no flags: the shipped MNIST teacher and classifier in models/.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "apps/commands.h"
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

// One sampler row: "ddim:STEPS[:eta=E]" or "ddpm:STEPS[:small|large]", optionally "@N" for a
// row at its own (smaller) N, e.g. "ddpm:1000@200".
struct SamplerRow {
  std::string spec, name;
  diffusion::SamplerConfig config;
  int64_t count = 0;
};

SamplerRow parse_sampler(const std::string& spec, int64_t default_count) {
  SamplerRow row;
  row.spec = spec;
  row.count = default_count;
  std::string body = spec;
  if (const size_t at = body.find('@'); at != std::string::npos) {
    try {
      row.count = std::stoll(body.substr(at + 1));
    } catch (const std::exception&) {
      fail("report: --samplers '", spec, "': expected a count after @");
    }
    body = body.substr(0, at);
  }
  std::vector<std::string> parts;
  std::stringstream ss(body);
  for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
  DK_CHECK(parts.size() >= 2 && (parts[0] == "ddim" || parts[0] == "ddpm"), "report: --samplers '",
           spec, "': expected ddim:STEPS[:eta=E] or ddpm:STEPS[:small|large], optionally @N");
  diffusion::SamplerConfig& c = row.config;
  c.kind = parts[0] == "ddpm" ? diffusion::SamplerConfig::Kind::Ddpm : diffusion::SamplerConfig::Kind::Ddim;
  try {
    c.steps = std::stoll(parts[1]);
  } catch (const std::exception&) {
    fail("report: --samplers '", spec, "': steps '", parts[1], "' is not a number");
  }
  DK_CHECK(c.steps > 0 && row.count >= 2, "report: --samplers '", spec, "': steps must be >= 1 and N >= 2");
  row.name = parts[0] + "-" + parts[1];
  for (size_t i = 2; i < parts.size(); ++i) {
    if (parts[i] == "large" || parts[i] == "small") {
      c.variance = parts[i] == "large" ? diffusion::SamplerConfig::Variance::FixedLarge
                                       : diffusion::SamplerConfig::Variance::FixedSmall;
      row.name += "-" + parts[i];
    } else if (parts[i].rfind("eta=", 0) == 0) {
      try {
        c.eta = std::stod(parts[i].substr(4));
      } catch (const std::exception&) {
        fail("report: --samplers '", spec, "': eta '", parts[i].substr(4), "' is not a number");
      }
      row.name += "-eta" + parts[i].substr(4);
    } else {
      fail("report: --samplers '", spec, "': unknown option '", parts[i], "'");
    }
  }
  return row;
}

std::string describe(const diffusion::SamplerConfig& c) {
  std::ostringstream os;
  if (c.kind == diffusion::SamplerConfig::Kind::Ddim) os << "DDIM " << c.steps << " (eta " << c.eta << ")";
  else
    os << "DDPM " << c.steps << " ("
       << (c.variance == diffusion::SamplerConfig::Variance::FixedLarge ? "large" : "small") << " variance)";
  return os.str();
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

int run_report() {
  namespace fs = std::filesystem;
  std::vector<SamplerRow> rows;
  for (const std::string& s : opts.samplers) rows.push_back(parse_sampler(s, opts.count));
  eval::LoadedClassifier classifier = eval::load_classifier(opts.classifier);
  diffusion::LoadedModel model = diffusion::load_diffusion_model(opts.model);
  const data::ImageDataset test = data::load_dataset(opts.data, data::Split::Test);
  for (const SamplerRow& r : rows)
    DK_CHECK(r.count <= test.count, "report: N = ", r.count, " exceeds the ", test.count, " test images of ", opts.data);
  fs::create_directories(opts.out_dir);
  std::printf("report: %s, classifier %s (test accuracy %.2f%%), reference %s test images, N = %lld\n",
              opts.model.c_str(), opts.classifier.c_str(), 100 * classifier.test_accuracy, opts.data.c_str(),
              static_cast<long long>(opts.count));

  nlohmann::json json = {{"model", opts.model}, {"classifier", opts.classifier}, {"data", opts.data},
                         {"seed", opts.seed}, {"rows", nlohmann::json::array()}};
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
    const SamplerRow& r = rows[i];
    std::printf("[%zu/%zu] %s: %lld images\n", i + 1, rows.size(), describe(r.config).c_str(),
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
                    {{"model", opts.model}, {"sampler", describe(r.config)}, {"seed", std::to_string(opts.seed)}});
    firsts.push_back(narrow(images, 0, 0, std::min(opts.compare, r.count)));
    const eval::ImageScores s = eval::score_images(classifier, images, data::images_in_order(test, 0, r.count));
    add_row(describe(r.config), s, std::to_string(diffusion::sampler_nfe(model.schedule, r.config)),
            fixed(1000 * seconds / r.count, 1), grid_file);
  }
  for (const std::string& source : opts.calibration) {
    const Tensor reference = data::images_in_order(test, 0, opts.count);
    Tensor images;
    std::string label;
    if (source == "real") {
      images = data::images_in_order(data::load_dataset(opts.data, data::Split::Train), 0, opts.count);
      label = "calibration: real training images (the floor)";
    } else if (source == "blurred") {
      images = eval::box_blur(reference);
      label = "calibration: test images, 3x3 box blur";
    } else {
      Generator gen(opts.seed);
      images = clamp(randn(reference.shape(), gen), -1, 1);
      label = "calibration: Gaussian noise";
    }
    std::printf("calibration: %s\n", source.c_str());
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
  c->add_option("--data", opts.data, "reference dataset (its test split)")->capture_default_str();
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
  on_run(c, run_report);
}

}  // namespace diffkd::apps

// diffkd convert against independent PyTorch implementations of the three foreign layouts
// (tests/golden/make_convert_goldens.py): the script's foreign model is rebuilt here from its
// state_dict names and shapes and the shared counter-based fill (so the goldens hold no weights),
// converted, and our UNet's output compared with the foreign forward. The five cases cover every
// time-embedding variant ([sin, cos] with Ho et al.'s 10000^(-j/(half-1)), [cos, sin], pytorch-ddpm's
// interleaved table), TensorFlow's SAME downsampling, both attention naming schemes of diffusers,
// improved-diffusion's legacy qkv order and guided-diffusion's new one with up/down ResBlocks and
// classes. Then: the wrong layout, a misshapen and an extra tensor are one-line errors naming the
// tensor, and a converted teacher samples and distils from the command line.
//
// Tolerance: max |ours - torch| <= 2e-5 * max |torch| + 10 x the script's own f32-vs-f64
// deviation (the floor any f32 implementation can reach).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/grad_mode.h"
#include "convert/convert.h"
#include "diffusion/generate.h"
#include "nn/safetensors.h"
#include "nn/unet.h"
#include "tensor/error.h"
#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The shared fill: splitmix64 of the running counter k, as a uniform value in [-scale, scale).
float fill_value(uint64_t seed, uint64_t k, double scale) {
  uint64_t z = seed + (k + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  const double u = static_cast<double>(z >> 40) * 0x1p-24;
  return static_cast<float>((2.0 * u - 1.0) * scale);
}

struct ForeignCase {
  safetensors::Contents golden;
  fs::path dir;
  convert::ConvertOptions options;
};

// Writes the case's foreign checkpoint (and diffusers' JSON files) into a fresh folder.
ForeignCase make_foreign(const std::string& name) {
  ForeignCase fc;
  fc.golden = safetensors::load(diffkd::testing::golden_dir() + "/convert_" + name + ".safetensors");
  const auto& meta = fc.golden.metadata;
  fc.dir = fs::path(::testing::TempDir()) / ("convert-" + name);
  fs::remove_all(fc.dir);
  fs::create_directories(fc.dir);
  const uint64_t seed = std::stoull(meta.at("seed"));
  safetensors::NamedTensors foreign;
  uint64_t k = 0;
  for (const json& entry : json::parse(meta.at("random_tensors"))) {
    const Shape shape = entry.at(1).get<Shape>();
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    const double scale = shape.size() >= 2 ? 1.0 / std::sqrt(static_cast<double>(numel / shape[0])) : 0.5;
    std::vector<double> values(static_cast<size_t>(numel));
    for (double& v : values) v = fill_value(seed, k++, scale);
    foreign.emplace_back(entry.at(0).get<std::string>(), from_vector(values, shape));
  }
  for (const auto& [tensor_name, tensor] : fc.golden.tensors)
    if (tensor_name.rfind("source.", 0) == 0) foreign.emplace_back(tensor_name.substr(7), tensor);
  const std::string layout = meta.at("layout");
  const std::string file = layout == "diffusers" ? "diffusion_pytorch_model.safetensors" : "model.safetensors";
  safetensors::save((fc.dir / file).string(), foreign);
  if (layout == "diffusers") {
    std::ofstream(fc.dir / "config.json") << meta.at("config_json");
    std::ofstream(fc.dir / "scheduler_config.json") << meta.at("scheduler_json");
  }
  fc.options.layout = layout;
  fc.options.input = (fc.dir / file).string();
  const std::vector<std::string> args = json::parse(meta.at("convert_args")).get<std::vector<std::string>>();
  for (size_t i = 0; i + 1 < args.size(); i += 2) {
    const std::string& flag = args[i];
    const std::string& value = args[i + 1];
    if (flag == "--image-size") fc.options.image_size = std::stoll(value);
    else if (flag == "--num-heads") fc.options.num_heads = std::stoll(value);
    else if (flag == "--num-head-channels") fc.options.num_head_channels = std::stoll(value);
    else if (flag == "--attention-order") fc.options.attention_order = value;
    else if (flag == "--schedule") fc.options.schedule = value;
    else if (flag == "--timesteps") fc.options.timesteps = std::stoll(value);
    else if (flag == "--rescale-timesteps") fc.options.rescale_timesteps = value == "true";
    else ADD_FAILURE() << "unknown convert_args flag " << flag;
  }
  return fc;
}

class ConvertGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(ConvertGolden, OurUNetComputesTheForeignForward) {
  const ForeignCase fc = make_foreign(GetParam());
  const convert::Converted converted = convert::convert_checkpoint(fc.options);
  const json expected = json::parse(fc.golden.metadata.at("expected_diffusion"));
  EXPECT_EQ(converted.spec.schedule, expected.at("schedule").get<std::string>());
  EXPECT_EQ(converted.spec.timesteps, expected.at("timesteps").get<int64_t>());
  EXPECT_EQ(converted.spec.prediction, expected.at("prediction").get<std::string>());
  EXPECT_EQ(converted.spec.rescale_timesteps, expected.value("rescale_timesteps", false));
  if (expected.contains("betas")) {
    const auto betas = expected.at("betas").get<std::vector<double>>();
    ASSERT_EQ(converted.spec.betas.size(), betas.size());
    for (size_t i = 0; i < betas.size(); ++i) EXPECT_NEAR(converted.spec.betas[i], betas[i], 1e-12) << i;
  }

  // Through the written file, as sample and distill will read it.
  const std::string out = (fc.dir / "converted.safetensors").string();
  convert::save_converted(converted, fc.options, out);
  const diffusion::LoadedModel model = diffusion::load_diffusion_model(out);
  ASSERT_TRUE(model.net);
  EXPECT_EQ(model.spec.to_json(), converted.spec.to_json());
  NoGradGuard no_grad;
  model.net->eval();
  const Tensor y = fc.golden.contains("y") ? fc.golden.at("y") : Tensor();
  const Tensor ours = model.net->forward(fc.golden.at("x"), fc.golden.at("t"), y);
  const Tensor& torch = fc.golden.at("output");
  ASSERT_EQ(ours.shape(), torch.shape());
  const std::vector<double> a = ours.to_vector(), b = torch.to_vector();
  double max_b = 0, max_diff = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    max_b = std::max(max_b, std::abs(b[i]));
    max_diff = std::max(max_diff, std::abs(a[i] - b[i]));
  }
  const double floor = 10 * std::stod(fc.golden.metadata.at("f64_deviation"));
  EXPECT_LE(max_diff, 2e-5 * max_b + floor) << GetParam() << ": output max " << max_b;
  EXPECT_GT(max_b, 0.1) << "a degenerate golden output";
  fs::remove_all(fc.dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, ConvertGolden,
                         ::testing::Values("diffusers_ho", "diffusers_legacy_names", "pytorch_ddpm",
                                           "improved_legacy", "guided_new"));

// The error convert_checkpoint throws, or "" when it converts.
std::string conversion_error(const convert::ConvertOptions& options) {
  try {
    convert::convert_checkpoint(options);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Convert, ALayoutThatIsNotTheFilesNamesTheMissingTensor) {
  ForeignCase fc = make_foreign("diffusers_ho");
  fc.options.layout = "pytorch-ddpm";
  const std::string error = conversion_error(fc.options);
  EXPECT_NE(error.find("pytorch-ddpm layout: no tensor 'head.weight' (the file's first is '"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos);
  fc.options.layout = "improved-diffusion";
  EXPECT_NE(conversion_error(fc.options).find("improved-diffusion layout: no tensor 'input_blocks.0.0.weight'"),
            std::string::npos);
  fs::remove_all(fc.dir);
}

// Rewrites the foreign file with `edit` applied to its tensors.
void edit_foreign(const ForeignCase& fc, const std::function<void(safetensors::NamedTensors&)>& edit) {
  safetensors::NamedTensors tensors = safetensors::load(fc.options.input).tensors;
  edit(tensors);
  safetensors::save(fc.options.input, tensors);
}

TEST(Convert, AMisshapenTensorIsNamedWithBothShapes) {
  const ForeignCase fc = make_foreign("diffusers_ho");
  edit_foreign(fc, [](safetensors::NamedTensors& tensors) {
    for (auto& [name, tensor] : tensors)
      if (name == "down_blocks.1.resnets.0.conv2.weight") tensor = narrow(tensor, 3, 0, 2);
  });
  const std::string error = conversion_error(fc.options);
  EXPECT_NE(error.find("diffusers layout: tensor 'down_blocks.1.resnets.0.conv2.weight' is [128,128,3,2], the derived "
                       "model expects [128,128,3,3]"),
            std::string::npos)
      << error;
  fs::remove_all(fc.dir);
}

TEST(Convert, ATensorTheModelHasNoPlaceForIsNamed) {
  const ForeignCase fc = make_foreign("pytorch_ddpm");
  edit_foreign(fc, [](safetensors::NamedTensors& tensors) {
    tensors.emplace_back("ema_model.downblocks.0.extra.weight", zeros({4}));
  });
  const std::string error = conversion_error(fc.options);
  EXPECT_NE(error.find("pytorch-ddpm layout: tensor 'ema_model.downblocks.0.extra.weight' [4] has no place in the "
                       "model derived from the file"),
            std::string::npos)
      << error;
  fs::remove_all(fc.dir);
}

TEST(Convert, ADiffusersFolderIsReadThroughItsWeightsFile) {
  ForeignCase fc = make_foreign("diffusers_ho");
  const nn::NamedTensors from_file = convert::convert_checkpoint(fc.options).state;
  fc.options.input = fc.dir.string();
  const nn::NamedTensors from_folder = convert::convert_checkpoint(fc.options).state;
  ASSERT_EQ(from_folder.size(), from_file.size());
  EXPECT_EQ(from_folder[0].second.to_vector(), from_file[0].second.to_vector());
  fc.options.input = (fc.dir / "empty").string();
  fs::create_directories(fc.options.input);
  EXPECT_NE(conversion_error(fc.options).find("a folder without diffusion_pytorch_model.safetensors"), std::string::npos);
  fs::remove_all(fc.dir);
}

// What a hostile or unusual file gets: a time-embedding table narrower than the model (its
// sinusoid check would read past it), a diffusers config that leaves attention_head_dim to
// UNet2DModel's default (8, not one head), and --timesteps alone on a file with its own betas.
TEST(Convert, UnusualFilesAreReadAsTheirCodebaseReadsThemOrRefused) {
  ForeignCase ddpm = make_foreign("pytorch_ddpm");
  edit_foreign(ddpm, [](safetensors::NamedTensors& tensors) {
    for (auto& [name, tensor] : tensors)
      if (name == "ema_model.time_embedding.timembedding.0.weight") tensor = narrow(tensor, 1, 0, 32);
  });
  EXPECT_NE(conversion_error(ddpm.options).find("time_embedding.timembedding.0.weight is [100,32], expected [T,64]"),
            std::string::npos)
      << conversion_error(ddpm.options);
  ForeignCase own_betas = make_foreign("pytorch_ddpm");
  own_betas.options.timesteps = 50;
  EXPECT_NE(conversion_error(own_betas.options).find("--timesteps 50 differs from the 100 rows of its time-embedding table"),
            std::string::npos);

  ForeignCase diffusers = make_foreign("diffusers_legacy_names");
  json config = json::parse(diffusers.golden.metadata.at("config_json"));
  config.erase("attention_head_dim");
  std::ofstream(diffusers.dir / "config.json") << config.dump();
  EXPECT_EQ(convert::convert_checkpoint(diffusers.options).config.num_head_channels, 8);
  json scheduler = json::parse(diffusers.golden.metadata.at("scheduler_json"));
  scheduler["beta_schedule"] = "scaled_linear";
  std::ofstream(diffusers.dir / "scheduler_config.json") << scheduler.dump();
  EXPECT_EQ(convert::convert_checkpoint(diffusers.options).spec.schedule, "betas");
  diffusers.options.timesteps = 500;
  EXPECT_NE(conversion_error(diffusers.options).find("alone cannot say which betas to use at that T"), std::string::npos);
  diffusers.options.schedule = "cosine";
  EXPECT_EQ(convert::convert_checkpoint(diffusers.options).spec.to_json(), (diffusion::DiffusionSpec{"cosine", 500, "v"}.to_json()));
  fs::remove_all(ddpm.dir);
  fs::remove_all(own_betas.dir);
  fs::remove_all(diffusers.dir);
}

// A torch.save checkpoint (here the golden of nn/torch_checkpoint_test: a pytorch-ddpm-style dict
// of a small module) is read without Python, its dict flattened: the EMA weights are looked up
// under ema_model., where the layout's first tensor is then missing.
TEST(Convert, ReadsTorchSaveCheckpointsThroughTheirFlattenedDict) {
  convert::ConvertOptions options;
  options.layout = "pytorch-ddpm";
  options.input = diffkd::testing::golden_dir() + "/torch_ckpt_ddpm_style.pt";
  const std::string error = conversion_error(options);
  EXPECT_NE(error.find("torch_ckpt_ddpm_style.pt: pytorch-ddpm layout: no tensor 'ema_model.head.weight' (the file's "
                       "first is 'ema_model.fc.weight')"),
            std::string::npos)
      << error;
}

TEST(Convert, PytorchDdpmTakesTheEmaOrTheRawWeightsOfItsCheckpointDict) {
  ForeignCase fc = make_foreign("pytorch_ddpm");
  const safetensors::Contents foreign = safetensors::load(fc.options.input);
  auto head_of = [](const convert::Converted& c) {
    for (const auto& [name, tensor] : c.state)
      if (name == "input_blocks.0.0.weight") return tensor.to_vector();
    return std::vector<double>{};
  };
  EXPECT_EQ(head_of(convert::convert_checkpoint(fc.options)), foreign.at("ema_model.head.weight").to_vector());
  fc.options.weights = "net";
  EXPECT_EQ(head_of(convert::convert_checkpoint(fc.options)), foreign.at("net_model.head.weight").to_vector());
  fs::remove_all(fc.dir);
}

TEST(Convert, AnOverrideReplacesTheLayoutsDiffusionSettings) {
  ForeignCase fc = make_foreign("diffusers_ho");
  fc.options.prediction = "v";
  fc.options.schedule = "cosine";
  const convert::Converted c = convert::convert_checkpoint(fc.options);
  EXPECT_EQ(c.spec.prediction, "v");
  EXPECT_EQ(c.spec.schedule, "cosine");
  fc.options.prediction = "score";
  EXPECT_NE(conversion_error(fc.options).find("score"), std::string::npos);
  fs::remove_all(fc.dir);
}

// From the command line: convert a diffusers teacher, sample from it, distil it (Denoising
// Student is data-free, so the 8x8 RGB teacher needs no dataset; every method reads the teacher
// through the same load_diffusion_model).
TEST(ConvertCli, AConvertedDiffusersTeacherSamplesAndDistils) {
  const ForeignCase fc = make_foreign("diffusers_ho");
  const std::string cli = std::string("OMP_NUM_THREADS=1 ") + diffkd::testing::cli_path();
  const std::string teacher = (fc.dir / "teacher.safetensors").string();
  // Runs a command; its exit status, with the command's output printed when it fails.
  auto run = [&](const std::string& command) {
    const fs::path log = fc.dir / "command.log";
    const int status = std::system((command + " > " + log.string() + " 2>&1").c_str());
    if (status != 0) {
      std::ifstream in(log);
      std::cerr << command << ":\n" << in.rdbuf() << "\n";
    }
    return status;
  };
  ASSERT_EQ(run(cli + " convert --from diffusers " + fc.options.input + " --out " + teacher), 0);
  EXPECT_EQ(run(cli + " sample --model " + teacher + " --count 2 --steps 2 --out " + (fc.dir / "s.png").string()), 0);
  EXPECT_TRUE(fs::exists(fc.dir / "s.png"));
  EXPECT_EQ(run(cli + " distill --method student --teacher " + teacher + " --run-dir " + (fc.dir / "student").string() +
                " --pairs 8 --held-out 4 --shard-size 4 --teacher-steps 2 --steps 2 --batch 4 --eval-every 2"),
            0);
  EXPECT_TRUE(fs::exists(fc.dir / "student" / "student.safetensors"));
  fs::remove_all(fc.dir);
}

}  // namespace
}  // namespace diffkd::testing

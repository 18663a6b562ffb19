// The distillation presets refuse a model they were not written for (distill/presets.h) and accept
// one they were: tiny untrained UNets saved as `distill` saves its models, since the check reads
// only a file's metadata.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "distill/common.h"
#include "distill/presets.h"
#include "nn/safetensors.h"
#include "nn/unet.h"
#include "tests/distill/distill_fixtures.h"

namespace diffkd::testing {
namespace {

using namespace distill;

// A tiny model file of `size` x `size` images of `channels` channels under `schedule`.
std::string tiny_model(const std::string& name, int64_t size, int64_t channels, const std::string& schedule) {
  nn::UNetConfig c;
  c.image_size = size;
  c.in_channels = c.out_channels = channels;
  c.model_channels = 8;
  c.channel_mult = {1};
  c.num_res_blocks = 1;
  c.attention_resolutions = {};
  c.norm_groups = 4;
  nn::UNet net(c, 1);
  diffusion::DiffusionSpec spec;
  spec.schedule = schedule;
  const std::string path = fresh_test_dir("preset_" + name) + ".safetensors";
  save_distilled_model(path, net, spec, "", {});
  return path;
}

std::string refusal(const std::string& method, const std::string& preset, const std::string& model) {
  const DistillPreset& p = find_distill_preset(method, preset);
  try {
    check_model_fits("who", model, p.model_flag, p.fit);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(DistillPresets, EachPaperPresetRefusesAnMnistModelAndAcceptsOneItFits) {
  const std::string mnist = tiny_model("mnist", 28, 1, "cosine");
  const std::string cifar = tiny_model("cifar", 32, 3, "linear");
  const std::string celeba = tiny_model("celeba", 256, 3, "linear");
  for (const std::string method : {"student", "progressive", "rdd", "dkdm", "sid"}) {
    EXPECT_NE(refusal(method, "cifar10", mnist).find("makes 28x28 images of 1 channel; the preset is for"),
              std::string::npos)
        << method;
    EXPECT_EQ(refusal(method, "cifar10", cifar), "") << method;
    EXPECT_EQ(refusal(method, "mnist", cifar), "") << method;  // the defaults take any model
  }
  EXPECT_NE(refusal("advkd", "celeba-hq-256", cifar).find("makes 32x32 images of 3 channels"), std::string::npos);
  EXPECT_EQ(refusal("advkd", "celeba-hq-256", celeba), "");
  EXPECT_EQ(find_distill_preset("rdd", "cifar10").model_flag, "--from");
  EXPECT_EQ(find_distill_preset("progressive", "cifar10").required,
            (std::vector<std::string>{"--teacher", "--data"}));
}

TEST(DistillPresets, TheStudentsQuadraticSequenceNeedsATeacherWhoseStep800IsNoise) {
  // Linear betas: alpha-bar(800) = 0.0019; cosine: 0.09, whose x_800 is not noise.
  const std::string linear = tiny_model("linear", 32, 3, "linear");
  const std::string cosine = tiny_model("cosine", 32, 3, "cosine");
  EXPECT_EQ(refusal("student", "cifar10", linear), "");
  const std::string why = refusal("student", "cifar10", cosine);
  EXPECT_NE(why.find("has a cosine schedule whose alpha-bar at the preset's first step t = 800 is 0.09"),
            std::string::npos)
      << why;
  // The other presets do not sample from t = 800: a cosine CIFAR-10 teacher fits them.
  EXPECT_EQ(refusal("progressive", "cifar10", cosine), "");
}

TEST(DistillPresets, UnknownPresetsAndNonModelsAreRefusedByName) {
  try {
    find_distill_preset("advkd", "cifar10");
    FAIL() << "advkd has no cifar10 preset";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "distill --method advkd: no preset 'cifar10' (its presets: mnist, celeba-hq-256)");
  }
  EXPECT_EQ(distill_preset_names("student"), (std::vector<std::string>{"mnist", "cifar10"}));
  // A safetensors file that is not a model: named, with what the preset wanted.
  const std::string bare = fresh_test_dir("preset_bare") + ".safetensors";
  safetensors::save(bare, {{"w", zeros({2})}});
  EXPECT_NE(refusal("dkdm", "cifar10", bare).find("is not a diffusion model"), std::string::npos);
}

TEST(Safetensors, MetadataAloneMatchesAFullLoadAndChecksTheHeader) {
  const std::string path = tiny_model("metadata", 32, 3, "linear");
  EXPECT_EQ(safetensors::load_metadata(path), safetensors::load(path).metadata);
  const std::string truncated = fresh_test_dir("preset_truncated") + ".safetensors";
  std::ofstream(truncated, std::ios::binary) << "abc";
  EXPECT_THROW(safetensors::load_metadata(truncated), Error);
}

}  // namespace
}  // namespace diffkd::testing

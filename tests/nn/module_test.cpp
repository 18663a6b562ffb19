// Module bookkeeping (names, counts, modes, freezing, weight copies, strict loading), the
// presets' exact sizes, the two UNet initialisation schemes, and checkpoint round trips.

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "nn/classifier.h"
#include "nn/presets.h"
#include "nn/safetensors.h"
#include "nn/unet.h"
#include "nn/unet_blocks.h"
#include "tests/nn/tiny_unet.h"

namespace diffkd::testing {
namespace {

nn::UNetConfig tiny_config() {
  nn::UNetConfig c = tiny_unet_config();
  c.dropout = 0.1;  // so train/eval mode matters
  return c;
}

bool has_name(const nn::NamedTensors& ts, const std::string& name) {
  for (const auto& [n, t] : ts)
    if (n == name) return true;
  return false;
}

TEST(Module, UNetNamesFollowGuidedDiffusionStateDict) {
  nn::UNet net(tiny_config());
  const nn::NamedTensors p = net.named_parameters();
  for (const char* name : {"time_embed.0.weight", "time_embed.2.bias", "input_blocks.0.0.weight",
                           "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.0.in_layers.2.weight",
                           "input_blocks.1.0.emb_layers.1.weight", "input_blocks.1.0.out_layers.3.bias",
                           "input_blocks.2.0.op.weight", "input_blocks.3.0.skip_connection.weight",
                           "input_blocks.3.1.qkv.weight", "input_blocks.3.1.proj_out.bias",
                           "middle_block.1.norm.weight", "middle_block.2.out_layers.0.bias",
                           "output_blocks.1.2.conv.weight", "out.0.weight", "out.2.bias"})
    EXPECT_TRUE(has_name(p, name)) << name;
  EXPECT_EQ(p.front().first, "time_embed.0.weight");
}

TEST(Module, PresetParameterCountsMatchThePapers) {
  // Ho et al.'s CIFAR-10 UNet: exactly the published 35,746,307.
  EXPECT_EQ(nn::UNet(nn::load_unet_config("ddpm-cifar10")).parameter_count(), 35746307);
  // DKDM's teacher and student: 57.09M and 14.30M (the paper's "57M" and "14M"); the same
  // figures come from an independent PyTorch build of the spec (make_unet_goldens.py --counts).
  EXPECT_EQ(nn::UNet(nn::load_unet_config("dkdm-cifar10-teacher")).parameter_count(), 57094662);
  EXPECT_EQ(nn::UNet(nn::load_unet_config("dkdm-cifar10-student")).parameter_count(), 14301446);
}

TEST(Module, TrainEvalReachesEveryDescendant) {
  nn::UNet net(tiny_config());
  net.eval();
  std::function<void(const nn::Module&)> all_eval = [&](const nn::Module& m) {
    EXPECT_FALSE(m.is_training());
    for (const auto& [name, child] : m.children()) all_eval(*child);
  };
  all_eval(net);
  // Dropout is off in eval: two forward passes agree exactly.
  Generator gen(1);
  const Tensor x = randn({2, 1, 8, 8}, gen), t = from_vector({3, 500}, {2});
  EXPECT_EQ(net.forward(x, t).to_vector(), net.forward(x, t).to_vector());
  net.train();
  EXPECT_TRUE(net.children().front().second->is_training());
}

TEST(Module, FrozenParametersGetNoGradient) {
  nn::UNet net(tiny_config());
  net.set_requires_grad(false);
  Generator gen(2);
  const Tensor x = randn({2, 1, 8, 8}, gen).requires_grad_();
  sum(net.forward(x, from_vector({1, 2}, {2}))).backward();
  EXPECT_TRUE(x.grad().defined());
  for (const auto& [name, p] : net.named_parameters()) EXPECT_FALSE(p.grad().defined()) << name;
  net.set_requires_grad(true);
  sum(net.forward(x, from_vector({1, 2}, {2}))).backward();
  for (const auto& [name, p] : net.named_parameters()) EXPECT_TRUE(p.grad().defined()) << name;
}

TEST(Module, CopyWeightsMakesAStudentComputeLikeItsTeacher) {
  nn::UNet teacher(tiny_config(), /*seed=*/1), student(tiny_config(), /*seed=*/2);
  teacher.eval();
  student.eval();
  Generator gen(3);
  const Tensor x = randn({2, 1, 8, 8}, gen), t = from_vector({10, 900}, {2});
  EXPECT_NE(teacher.forward(x, t).to_vector(), student.forward(x, t).to_vector());
  student.copy_weights_from(teacher);
  EXPECT_EQ(teacher.forward(x, t).to_vector(), student.forward(x, t).to_vector());
  // The copy is deep: changing the student leaves the teacher alone.
  const Tensor w = student.named_parameters().front().second;
  nn::assign(w, zeros_like(w));
  EXPECT_NE(teacher.named_parameters().front().second.to_vector(), w.to_vector());
}

TEST(Module, LoadStateDictNamesTheFirstMismatch) {
  nn::UNet net(tiny_config());
  nn::NamedTensors state = net.state_dict();
  auto expect_error = [&](const nn::NamedTensors& s, const std::string& phrase) {
    try {
      net.load_state_dict(s, "ckpt.safetensors");
      FAIL() << "expected an error containing: " << phrase;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
      EXPECT_EQ(std::string(e.what()).rfind("ckpt.safetensors: ", 0), 0u) << e.what();
    }
  };
  nn::NamedTensors missing(state.begin() + 1, state.end());
  expect_error(missing, "missing tensor 'time_embed.0.weight'");
  nn::NamedTensors extra = state;
  extra.emplace_back("bogus.weight", zeros({3}));
  expect_error(extra, "unexpected tensor 'bogus.weight'");
  nn::NamedTensors wrong = state;
  wrong[0].second = zeros({5, 5});
  expect_error(wrong, "'time_embed.0.weight' has shape [5,5], the model expects [32,8]");
}

TEST(Module, AdmInitZeroesEveryResidualBranchOutput) {
  nn::UNetConfig c = tiny_config();
  c.init = "adm";
  nn::UNet net(c);
  int zeroed = 0;
  for (const auto& [name, p] : net.named_parameters()) {
    const bool final = name.find("out_layers.3.") != std::string::npos ||
                       name.find("proj_out.") != std::string::npos || name.rfind("out.2.", 0) == 0;
    const std::vector<double> v = p.to_vector();
    const double max_abs = std::abs(*std::max_element(v.begin(), v.end(), [](double a, double b) {
      return std::abs(a) < std::abs(b);
    }));
    if (final) {
      EXPECT_EQ(max_abs, 0.0) << name;
      ++zeroed;
    } else if (name.find(".weight") != std::string::npos && p.dim() >= 2) {
      EXPECT_GT(max_abs, 0.0) << name;
      EXPECT_LE(max_abs, 1.0 / std::sqrt(nn::init::fans(p).in)) << name;  // PyTorch's default bound
    }
  }
  EXPECT_GT(zeroed, 8);
  Generator gen(4);  // so the whole network starts as the zero function
  EXPECT_EQ(sum(abs(net.forward(randn({1, 1, 8, 8}, gen), from_vector({5}, {1})))).item(), 0.0);
}

TEST(Module, DdpmInitIsXavierWithTinyFinalLayersAndZeroBiases) {
  nn::UNet net(tiny_config());  // init "ddpm"
  for (const auto& [name, p] : net.named_parameters()) {
    const std::vector<double> v = p.to_vector();
    double max_abs = 0;
    for (double e : v) max_abs = std::max(max_abs, std::abs(e));
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    if (is_bias && name.find("norm") == std::string::npos && name.find("in_layers.0") == std::string::npos &&
        name.find("out_layers.0") == std::string::npos && name != "out.0.bias") {
      EXPECT_EQ(max_abs, 0.0) << name;
    } else if (p.dim() >= 2) {
      const bool final = name.find("out_layers.3.") != std::string::npos ||
                         name.find("proj_out.") != std::string::npos || name.rfind("out.2.", 0) == 0;
      nn::init::Fans f = nn::init::fans(p);
      if (name.find("qkv") != std::string::npos) f.out /= 3;  // three [C, C] blocks
      const double bound = (final ? 1e-5 : 1.0) * std::sqrt(6.0 / (f.in + f.out));
      EXPECT_LE(max_abs, bound) << name;
      EXPECT_GT(max_abs, 0.5 * bound) << name;  // drawn from the whole range, not a smaller one
    }
  }
}

TEST(Module, CheckpointRoundTripIsBitExactAndCarriesTheConfig) {
  nn::UNetConfig c = tiny_config();
  c.num_classes = 3;
  c.use_scale_shift_norm = true;
  nn::UNet net(c, 7);
  const std::string path =
      (std::filesystem::path(::testing::TempDir()) / "unet_roundtrip.safetensors").string();
  safetensors::save(path, net.state_dict(), {{"config", c.to_json()}});
  const auto file = safetensors::load(path);
  nn::UNet loaded(nn::UNetConfig::from_json(file.metadata.at("config"), path), 99);
  loaded.load_state_dict(file.tensors, path);
  const nn::NamedTensors a = net.state_dict(), b = loaded.state_dict();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  }
  std::filesystem::remove(path);
}

TEST(Module, ClassifierHasBatchNormBuffersAndSeparateInstancesDiffer) {
  nn::Classifier a(nn::ClassifierConfig{}, 1), b(nn::ClassifierConfig{}, 2);
  EXPECT_TRUE(has_name(a.state_dict(), "features.1.running_mean"));
  EXPECT_TRUE(has_name(a.state_dict(), "features.1.num_batches_tracked"));
  EXPECT_NE(a.named_parameters()[0].second.to_vector(), b.named_parameters()[0].second.to_vector());
  Generator gen(5);
  const nn::Classifier::Outputs o = a.run(randn({3, 1, 28, 28}, gen));
  EXPECT_EQ(o.feature_map.shape(), (Shape{3, 64, 7, 7}));
  EXPECT_EQ(o.pooled.shape(), (Shape{3, 64}));
  EXPECT_EQ(o.penultimate.shape(), (Shape{3, 128}));
  EXPECT_EQ(o.logits.shape(), (Shape{3, 10}));
  EXPECT_EQ(a.named_buffers()[2].second.item(), 1.0);  // num_batches_tracked after one batch
}

// RDD's feature map is the post-ReLU activation (its DenseNet applies the last ReLU in place to
// the tensor it keeps), so F >= 0, with zeros where the BatchNorm output was negative, and the
// pooled feature is its plain mean.
TEST(Module, ClassifierFeatureMapIsThePostReluActivation) {
  nn::Classifier net(nn::ClassifierConfig{}, 3);
  net.eval();
  Generator gen(6);
  const nn::Classifier::Outputs o = net.run(randn({4, 1, 28, 28}, gen));
  const std::vector<double> f = o.feature_map.to_vector();
  int64_t zeros = 0;
  for (double v : f) {
    ASSERT_GE(v, 0.0);
    zeros += v == 0.0;
  }
  EXPECT_GT(zeros, 0);                          // the ReLU cut something: not a trivially positive map
  EXPECT_LT(zeros, static_cast<int64_t>(f.size()));
  const std::vector<double> pooled = o.pooled.to_vector(), expected = mean(o.feature_map, {2, 3}).to_vector();
  ASSERT_EQ(pooled.size(), expected.size());
  for (size_t i = 0; i < pooled.size(); ++i) EXPECT_DOUBLE_EQ(pooled[i], expected[i]);
}

TEST(UNetConfig, BadConfigsNameTheField) {
  auto error_of = [](const std::string& json) {
    try {
      nn::UNetConfig::from_json(json, "m.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(error_of(R"({"model_chanels": 32})"), "m.json: unknown UNet field 'model_chanels'");
  EXPECT_EQ(error_of(R"({"dropout": "high"})"), "m.json: field 'dropout' must be a number, got \"high\"");
  EXPECT_EQ(error_of(R"({"num_res_blocks": 2.5})"),
            "m.json: field 'num_res_blocks' must be an integer, got 2.5");
  EXPECT_NE(error_of(R"({"model_channels": 20})").find("not divisible by norm_groups 32"), std::string::npos);
  EXPECT_NE(error_of(R"({"attention_resolutions": [5]})").find("the levels are at [28,14,7]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"image_size": 30, "channel_mult": [1,2,2,2], "norm_groups": 8})")
                .find("cannot be halved"),
            std::string::npos);
  EXPECT_NE(error_of("{oops").find("m.json: invalid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"time_embedding_order": "sin-cos"})").find("time_embedding_order must be \"cos_sin\" or \"sin_cos\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"downsample_padding": "same"})").find("downsample_padding must be"), std::string::npos);
  EXPECT_NE(error_of(R"({"downsample_padding": "bottom_right", "conv_resample": false})").find("which this model does not have"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"time_embedding_shift": 16})").find("time_embedding_shift must be in [0, model_channels / 2)"),
            std::string::npos);
}

// The fields other frameworks' checkpoints need are written only when they differ from the
// defaults (so every file made before them reads back byte-identical), and round-trip.
TEST(UNetConfig, ForeignVariantFieldsAreWrittenOnlyWhenSetAndRoundTrip) {
  const nn::UNetConfig plain;
  EXPECT_EQ(plain.to_json().find("time_embedding"), std::string::npos);
  EXPECT_EQ(plain.to_json().find("norm_eps"), std::string::npos);
  nn::UNetConfig ho = plain;
  ho.time_embedding_order = "sin_cos";
  ho.time_embedding_shift = 1;
  ho.norm_eps = 1e-6;
  ho.downsample_padding = "bottom_right";
  const nn::UNetConfig back = nn::UNetConfig::from_json(ho.to_json(), "ho");
  EXPECT_EQ(back.to_json(), ho.to_json());
  EXPECT_EQ(back.time_embedding_order, "sin_cos");
  EXPECT_EQ(back.time_embedding_shift, 1.0);
  EXPECT_EQ(back.norm_eps, 1e-6);
  EXPECT_EQ(back.downsample_padding, "bottom_right");
}

// The table's variants, against their closed forms at one t: [cos, sin] (guided-diffusion), [sin,
// cos] with Ho et al.'s 10000^(-j / (half - 1)).
TEST(UNetBlocks, TimestepEmbeddingOrderAndFrequencyShift) {
  const Tensor t = from_vector({917}, {1});
  const std::vector<double> cos_sin = nn::timestep_embedding(t, 8).to_vector();
  const std::vector<double> ho = nn::timestep_embedding(t, 8, {true, 1.0}).to_vector();
  for (int j = 0; j < 4; ++j) {
    const double f0 = std::exp(-std::log(10000.0) * j / 4), f1 = std::exp(-std::log(10000.0) * j / 3);
    EXPECT_NEAR(cos_sin[j], std::cos(917 * f0), 1e-6);
    EXPECT_NEAR(cos_sin[4 + j], std::sin(917 * f0), 1e-6);
    EXPECT_NEAR(ho[j], std::sin(917 * f1), 1e-6);
    EXPECT_NEAR(ho[4 + j], std::cos(917 * f1), 1e-6);
  }
  EXPECT_NEAR(ho[3], std::sin(917 * 1e-4), 1e-7);  // Ho's last frequency is exactly 1/10000
}

}  // namespace
}  // namespace diffkd::testing

// Model and training-state checkpoints: a resumed run continues bit for bit, the file alone
// rebuilds the model, and bad metadata is named.

#include <gtest/gtest.h>

#include <filesystem>

#include "nn/checkpoint.h"
#include "tests/nn/tiny_unet.h"

namespace diffkd::testing {
namespace {

nn::UNetConfig small_config() { return tiny_unet_config(); }

std::string temp_path(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

struct TrainingRun {
  nn::UNet net{small_config(), 3};
  nn::Adam adam{net.named_parameters(), AdamHyper{}};
  nn::Ema ema{net, 0.9};
  void step(int64_t i) {
    Generator gen(100 + i);
    const Tensor x = randn({2, 1, 8, 8}, gen);
    mse_loss(net.forward(x, from_vector({1.0 * i, 500}, {2})), zeros_like(x)).backward();
    adam.step();
    adam.zero_grad();
    ema.update(net, adam.steps_taken());
  }
};

TEST(Checkpoint, ResumedTrainingMatchesAnUninterruptedRunBitForBit) {
  TrainingRun uninterrupted, first_half;
  for (int64_t i = 1; i <= 3; ++i) {
    uninterrupted.step(i);
    first_half.step(i);
  }
  const std::string model = temp_path("resume_model.safetensors");
  const std::string state = temp_path("resume_state.safetensors");
  nn::save_model(model, first_half.net, small_config().to_json(), {{"step", "3"}});
  nn::save_training_state(state, first_half.adam, &first_half.ema, {{"step", "3"}});

  TrainingRun resumed;  // fresh weights and optimiser, then restored
  EXPECT_EQ(nn::metadata_int(nn::load_model(model, resumed.net), "step", model), 3);
  EXPECT_EQ(nn::metadata_int(nn::load_training_state(state, resumed.adam, &resumed.ema), "step", state), 3);
  for (int64_t i = 4; i <= 5; ++i) {
    uninterrupted.step(i);
    resumed.step(i);
  }
  const nn::NamedTensors a = uninterrupted.net.state_dict(), b = resumed.net.state_dict();
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(uninterrupted.ema.shadow()[i].second.to_vector(), resumed.ema.shadow()[i].second.to_vector());
}

TEST(Checkpoint, ModelFileAloneRebuildsTheUNet) {
  nn::UNet net(small_config(), 5);
  const std::string path = temp_path("standalone.safetensors");
  nn::save_model(path, net, small_config().to_json());
  const std::unique_ptr<nn::UNet> loaded = nn::load_unet(path);
  EXPECT_EQ(loaded->config().to_json(), small_config().to_json());
  EXPECT_EQ(loaded->state_dict().back().second.to_vector(), net.state_dict().back().second.to_vector());
}

// PyTorch UNets store the attention projections as 1x1 Conv2d weights [3C, C, 1, 1]; ours are
// [3C, C, 1]: the same values load. A shape that differs otherwise is still refused.
TEST(Checkpoint, AttentionProjectionsStoredAsConv2dLoad) {
  nn::UNet net(small_config(), 5);
  nn::NamedTensors state = net.state_dict();
  int squeezed = 0;
  for (auto& [name, t] : state)
    if (name.find("qkv.weight") != std::string::npos || name.find("proj_out.weight") != std::string::npos) {
      ASSERT_EQ(t.dim(), 3) << name;
      t = reshape(t, {t.size(0), t.size(1), 1, 1});
      ++squeezed;
    }
  ASSERT_GT(squeezed, 0);
  nn::UNet loaded(small_config(), 9);
  loaded.load_state_dict(state, "conv2d-layout");
  Generator gen(4);
  const Tensor x = randn({2, 1, 8, 8}, gen), t = from_vector({10.0, 700.0}, {2});
  EXPECT_EQ(loaded.forward(x, t).to_vector(), net.forward(x, t).to_vector());
  for (auto& [name, t] : state)
    if (name.find("qkv.weight") != std::string::npos) t = expand(reshape(t, {t.size(0), t.size(1), 1}), {t.size(0), t.size(1), 2});
  try {
    loaded.load_state_dict(state, "wrong.safetensors");
    FAIL() << "a [3C, C, 2] projection loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the model expects"), std::string::npos) << e.what();
  }
}

TEST(Checkpoint, MissingConfigAndBadMetadataAreNamed) {
  nn::UNet net(small_config(), 5);
  const std::string path = temp_path("no_config.safetensors");
  safetensors::save(path, net.state_dict(), {{"step", "seven"}});
  try {
    nn::load_unet(path);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), path + ": no model config in the metadata (is this a diffkd model checkpoint?)");
  }
  const nn::Metadata meta = nn::load_model(path, net);
  EXPECT_THROW(
      {
        try {
          nn::metadata_int(meta, "step", path);
        } catch (const Error& e) {
          EXPECT_EQ(std::string(e.what()), path + ": metadata field 'step' should be an integer, found \"seven\"");
          throw;
        }
      },
      Error);
}

}  // namespace
}  // namespace diffkd::testing

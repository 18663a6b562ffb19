// CIFAR-10 end to end from the command line, on a tiny folder in the binary-batch format
// (cifar-10-batches-bin: data_batch_1..5.bin, test_batch.bin) written here: a 3-channel teacher
// trains on it, samples, a classifier trains on it, and eval scores the teacher's samples with
// that classifier against the test batch.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/test_paths.h"

namespace diffkd::testing {
namespace {

namespace fs = std::filesystem;

// `records` images of 3x32x32 bytes after a label byte; class k is a colour ramp of its own.
void write_batch(const fs::path& file, int records, int first) {
  std::ofstream out(file, std::ios::binary);
  for (int i = first; i < first + records; ++i) {
    const int label = i % 10;
    out.put(static_cast<char>(label));
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) out.put(static_cast<char>((label * 25 + c * 40 + (c == 0 ? x : y) * 3 + (i * 7 + x * y) % 19) % 256));
  }
}

TEST(CifarEndToEnd, TrainSampleClassifierAndEvalOnTheBinaryBatches) {
  const fs::path dir = fs::path(::testing::TempDir()) / "cifar-e2e";
  fs::remove_all(dir);
  fs::create_directories(dir / "cifar-10-batches-bin");
  for (int b = 1; b <= 5; ++b) write_batch(dir / "cifar-10-batches-bin" / ("data_batch_" + std::to_string(b) + ".bin"), 16, 16 * b);
  write_batch(dir / "cifar-10-batches-bin" / "test_batch.bin", 20, 0);
  // The tiny 32x32 UNet with 3 channels.
  std::ofstream(dir / "tiny-rgb.json")
      << R"({"unet": {"image_size": 32, "in_channels": 3, "model_channels": 8, "out_channels": 3, "num_res_blocks": 1,
           "attention_resolutions": [16], "channel_mult": [1, 2], "norm_groups": 4}})";
  const std::string cli = std::string("OMP_NUM_THREADS=1 ") + diffkd::testing::cli_path(), data = " --data cifar10:" + (dir / "cifar-10-batches-bin").string();
  auto run = [&](const std::string& arguments, const std::string& log) {
    return std::system((cli + " " + arguments + " > " + (dir / log).string() + " 2>&1").c_str());
  };
  ASSERT_EQ(run("train" + data + " --model " + (dir / "tiny-rgb.json").string() + " --steps 2 --warmup 1 --batch 8 "
                "--sample-every 0 --run-dir " + (dir / "teacher").string(), "train.log"), 0);
  ASSERT_EQ(run("sample --model " + (dir / "teacher" / "model.safetensors").string() + " --count 4 --steps 2 --out " +
                (dir / "samples.png").string(), "sample.log"), 0);
  EXPECT_GT(fs::file_size(dir / "samples.png"), 100u);
  ASSERT_EQ(run("train-classifier" + data + " --epochs 1 --batch 16 --width1 4 --width2 8 --hidden 8 --out " +
                (dir / "classifier.safetensors").string(), "classifier.log"), 0);
  ASSERT_EQ(run("eval --model " + (dir / "teacher" / "model.safetensors").string() + " --classifier " +
                (dir / "classifier.safetensors").string() + data + " --count 8 --batch 4 --steps 2 --out " +
                (dir / "eval.json").string(), "eval.log"), 0);
  std::ifstream scores(dir / "eval.json");
  const std::string text((std::istreambuf_iterator<char>(scores)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"fid_proxy\""), std::string::npos) << text;
  std::ifstream train_log(dir / "train.log");
  const std::string train_text((std::istreambuf_iterator<char>(train_log)), std::istreambuf_iterator<char>());
  EXPECT_NE(train_text.find("on cifar10:"), std::string::npos) << train_text;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffkd::testing

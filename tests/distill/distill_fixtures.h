#pragma once
// Shared by the distillation tests: golden files, a float64 closeness check, and a tiny v-prediction
// teacher (the 8x8 tiny UNet trained for a few steps on the synthetic set), trained once per
// test process.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "data/registry.h"
#include "diffusion/trainer.h"
#include "nn/safetensors.h"

namespace diffkd::testing {

inline safetensors::Contents distill_golden(const std::string& name) {
  return safetensors::load(std::string(DIFFKD_GOLDEN_DIR) + "/" + name);
}

inline void expect_all_close(const std::vector<double>& ours, const std::vector<double>& ref, double rel, double abs_tol,
                             const std::string& what) {
  ASSERT_EQ(ours.size(), ref.size()) << what;
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(ours[i], ref[i], rel * std::abs(ref[i]) + abs_tol) << what << " [" << i << "]";
}

inline std::string fresh_test_dir(const std::string& name) {
  const std::filesystem::path p = std::filesystem::path(::testing::TempDir()) / ("distill_" + name);
  std::filesystem::remove_all(p);
  return p.string();
}

inline const data::ImageDataset& tiny_images() {
  static const data::ImageDataset d = data::synthetic_shapes(64, 1, 8);
  return d;
}

// model.safetensors of a tiny teacher: 40 steps of the 8x8 tiny UNet on tiny_images().
inline const std::string& tiny_teacher() {
  static const std::string path = [] {
    diffusion::TrainOptions o;
    o.model = (std::filesystem::path(DIFFKD_TEST_CONFIGS) / "tiny-unet.json").string();
    o.dataset = "synthetic";
    // Per process: ctest runs tests that share this teacher in parallel processes.
    o.run_dir = fresh_test_dir("teacher_" + std::to_string(::getpid()));
    o.steps = 40;
    o.batch_size = 8;
    o.warmup = 5;
    o.lr = 1e-3;
    o.ema_decay = 0.5;
    o.checkpoint_every = 40;
    o.sample_every = 0;
    o.pad_to = 0;
    o.quiet = true;
    diffusion::train_diffusion(o, tiny_images());
    return o.run_dir + "/model.safetensors";
  }();
  return path;
}

}  // namespace diffkd::testing

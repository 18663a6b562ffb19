// Whole models on the GPU against the CPU: a UNet forward/backward pass, a DDIM and a DDPM
// sampling run, a module's move and a checkpoint saved from the GPU. Skips with one line without
// a usable GPU.
//
// Tolerances: a UNet is ~20 layers of f32 GEMMs and convolutions summed in another order, so its
// output agrees to ~1e-4 relative; a 10-step sampler compounds that (2e-3 absolute on images in
// [-1, 1]).

#include <gtest/gtest.h>

#include <filesystem>

#include "autograd/ops.h"
#include "diffusion/noise.h"
#include "diffusion/sampler.h"
#include "diffusion/schedule.h"
#include "nn/checkpoint.h"
#include "nn/unet.h"
#include "tensor/creation.h"
#include "tensor/cuda_support.h"
#include "tests/cuda/require_gpu.h"
#include "tests/nn/tiny_unet.h"

namespace diffkd {
namespace {

class CudaModel : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFKD_SKIP_UNLESS_GPUS(1, testing::no_gpu_reason());
  }
};

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector(), y = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

TEST_F(CudaModel, UNetForwardAndBackwardMatchTheCpu) {
  nn::UNet cpu_net(testing::tiny_unet_config(), 3), gpu_net(testing::tiny_unet_config(), 3);
  gpu_net.to(cuda_device());
  ASSERT_EQ(gpu_net.device(), cuda_device());
  Generator gen(11);
  const Tensor x = randn({4, 1, 8, 8}, gen);
  const Tensor t = from_vector({0, 10, 500, 999}, {4});
  const Tensor y_cpu = cpu_net.forward(x, t), y_gpu = gpu_net.forward(to_device(x, cuda_device()), t);
  EXPECT_LT(max_abs_difference(y_cpu, y_gpu), 1e-4);
  sum(square(y_cpu)).backward();
  sum(square(y_gpu)).backward();
  const auto cpu_params = cpu_net.named_parameters(), gpu_params = gpu_net.named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const Tensor& g = cpu_params[i].second.grad();
    const double scale = std::max(1.0, std::sqrt(sum(square(g)).item()));
    EXPECT_LT(max_abs_difference(g, gpu_params[i].second.grad()) / scale, 1e-4) << cpu_params[i].first;
  }
}

// Twice the same step on the GPU gives the same bits: the convolution algorithms are the
// deterministic ones (cuda/conv_algorithms.h) and no kernel sums with atomics in a racing order.
TEST_F(CudaModel, UNetStepIsTheSameBitsRunToRun) {
  Generator gen(12);
  const Tensor x = to_device(randn({4, 1, 8, 8}, gen), cuda_device());
  const Tensor t = from_vector({3, 40, 700, 999}, {4});
  std::vector<std::vector<double>> runs;
  for (int run = 0; run < 2; ++run) {
    nn::UNet net(testing::tiny_unet_config(), 3);
    net.to(cuda_device());
    sum(square(net.forward(x, t))).backward();
    std::vector<double> all;
    for (const auto& [name, p] : net.named_parameters()) {
      const std::vector<double> g = p.grad().to_vector();
      all.insert(all.end(), g.begin(), g.end());
    }
    runs.push_back(all);
  }
  ASSERT_EQ(runs[0].size(), runs[1].size());
  size_t differing = 0;
  for (size_t i = 0; i < runs[0].size(); ++i) differing += runs[0][i] != runs[1][i];
  EXPECT_EQ(differing, 0u) << "of " << runs[0].size() << " gradient entries";
}

TEST_F(CudaModel, SamplersMatchTheCpuFromTheSameNoise) {
  nn::UNet cpu_net(testing::tiny_unet_config(), 5), gpu_net(testing::tiny_unet_config(), 5);
  cpu_net.eval();
  gpu_net.eval();
  gpu_net.to(cuda_device());
  const diffusion::NoiseSchedule schedule = diffusion::NoiseSchedule::named("cosine", 1000);
  const Shape shape{1, 8, 8};
  for (const bool ddpm : {false, true}) {
    diffusion::SamplerConfig config;
    config.steps = 10;
    if (ddpm) config.kind = diffusion::SamplerConfig::Kind::Ddpm;
    // The same noise on both devices: the Philox draws are keyed by position, not by device.
    const Tensor x_cpu = diffusion::sample_noise(shape, 0, 3, 9, 0);
    const Tensor x_gpu = diffusion::sample_noise(shape, 0, 3, 9, 0, cuda_device());
    EXPECT_EQ(max_abs_difference(x_cpu, x_gpu), 0.0);
    const diffusion::ModelFn cpu_fn = [&](const Tensor& x, const Tensor& t) { return cpu_net.forward(x, t); };
    const diffusion::ModelFn gpu_fn = [&](const Tensor& x, const Tensor& t) { return gpu_net.forward(x, t); };
    const Tensor a = diffusion::sample(cpu_fn, diffusion::Prediction::V, schedule, config, x_cpu, 0, 9);
    const Tensor b = diffusion::sample(gpu_fn, diffusion::Prediction::V, schedule, config, x_gpu, 0, 9);
    EXPECT_EQ(b.device(), cuda_device());
    EXPECT_LT(max_abs_difference(a, b), 2e-3) << (ddpm ? "DDPM" : "DDIM");
  }
}

TEST_F(CudaModel, CheckpointsSavedFromTheGpuLoadOnTheCpu) {
  nn::UNet gpu_net(testing::tiny_unet_config(), 7), cpu_net(testing::tiny_unet_config(), 8);
  gpu_net.to(cuda_device());
  const std::string path = (std::filesystem::temp_directory_path() / "diffkd-cuda-checkpoint.safetensors").string();
  nn::save_model(path, gpu_net, testing::tiny_unet_config().to_json());
  nn::load_model(path, cpu_net);
  const auto a = gpu_net.named_parameters(), b = cpu_net.named_parameters();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(max_abs_difference(a[i].second, b[i].second), 0.0) << a[i].first;
  // And back onto the GPU.
  nn::UNet again(testing::tiny_unet_config(), 9);
  again.to(cuda_device());
  nn::load_model(path, again);
  EXPECT_EQ(again.device(), cuda_device());
  EXPECT_EQ(max_abs_difference(again.named_parameters()[0].second, a[0].second), 0.0);
  std::filesystem::remove(path);
}

// Runs everywhere: moving a module to the device it is on changes nothing.
TEST(ModuleDevice, MovingToTheSameDeviceIsANoOp) {
  nn::UNet net(testing::tiny_unet_config(), 1);
  const Tensor before = net.named_parameters()[0].second;
  net.to(cpu());
  EXPECT_EQ(net.device(), cpu());
  EXPECT_EQ(net.named_parameters()[0].second.raw_data(), before.raw_data());
  EXPECT_TRUE(net.named_parameters()[0].second.requires_grad());
}

}  // namespace
}  // namespace diffkd

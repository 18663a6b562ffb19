// The whole ddpm-cifar10 training step on the GPU at batch 128 and 1 (the papers' teacher, 35.7M
// parameters, 32x32x3; batch 1 is launch-bound): forward, MSE against a noise target, backward, Adam. Reports ms per step,
// images/s and the model FLOP rate: 3x the forward's multiply-adds x 2 (backward computes two
// products per forward one), counting convolutions, attention and linear layers, not the
// element-wise work (6.2 GMAC per image for ddpm-cifar10, the ~6.1G usually quoted for it); its
// share of the FP32 peak is the step's "MFU".

#include <algorithm>
#include <string>

#include "bench/cuda/cuda_bench_util.h"
#include "nn/optim.h"
#include "nn/presets.h"
#include "nn/unet.h"
#include "tensor/backend.h"

namespace diffkd::bench {
namespace {

// Forward FLOPs of one image through the UNet of `c`, walking the same blocks as nn::UNet's
// constructor (conv_resample, no resblock_updown): 3x3 convs 2 * 9 C_in C_out H W, 1x1 skips
// 2 C_in C_out H W, attention 2 * 4 C^2 N + 2 * 2 N^2 C, the time MLP and the embedding projections.
double unet_forward_flops(const nn::UNetConfig& c) {
  DK_CHECK(!c.resblock_updown && c.conv_resample, "unet_forward_flops: convolutional resampling only");
  const double ch = static_cast<double>(c.model_channels), emb = 4 * ch;
  double flops = 2 * (ch * emb + emb * emb);  // time-embedding MLP
  auto conv3 = [](double in, double out, double size) { return 2 * 9 * in * out * size * size; };
  auto res_block = [&](double in, double out, double size) {
    return conv3(in, out, size) + conv3(out, out, size) + 2 * emb * out * (c.use_scale_shift_norm ? 2 : 1) +
           (in != out ? 2 * in * out * size * size : 0);
  };
  auto attention = [](double channels, double size) {
    const double n = size * size;
    return 2 * 4 * channels * channels * n + 2 * 2 * n * n * channels;
  };
  auto attends = [&](int64_t res) {
    return std::count(c.attention_resolutions.begin(), c.attention_resolutions.end(), res) > 0;
  };
  double size = static_cast<double>(c.image_size), cur = ch;
  int64_t res = c.image_size;
  flops += conv3(static_cast<double>(c.in_channels), ch, size);
  std::vector<double> skips{ch};
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t i = 0; i < c.num_res_blocks; ++i) {
      const double out = static_cast<double>(c.channel_mult[level]) * ch;
      flops += res_block(cur, out, size) + (attends(res) ? attention(out, size) : 0);
      cur = out;
      skips.push_back(cur);
    }
    if (level + 1 < levels) {
      flops += conv3(cur, cur, size / 2);  // stride-2 conv
      skips.push_back(cur);
      size /= 2;
      res /= 2;
    }
  }
  flops += 2 * res_block(cur, cur, size) + attention(cur, size);  // middle
  for (size_t level = levels; level-- > 0;) {
    for (int64_t i = 0; i <= c.num_res_blocks; ++i) {
      const double out = static_cast<double>(c.channel_mult[level]) * ch, skip = skips.back();
      skips.pop_back();
      flops += res_block(cur + skip, out, size) + (attends(res) ? attention(out, size) : 0);
      cur = out;
      if (level > 0 && i == c.num_res_blocks) {
        flops += conv3(cur, cur, size * 2);  // nearest upsampling, then a conv at the new size
        size *= 2;
        res *= 2;
      }
    }
  }
  return flops + conv3(cur, static_cast<double>(c.out_channels), size);
}

void BM_CudaUNetTrainStep(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const int64_t batch = state.range(0);
  nn::UNetConfig config = nn::load_unet_config("ddpm-cifar10");
  config.dropout = 0;  // the same function on both devices for the verification
  nn::UNet cpu_net(config, 0), gpu_net(config, 0);
  // The DDPM initialisation scales every residual branch's last layer and the output conv by 1e-5:
  // an output that small would pass any check. Random weights of one scale instead, the same on both.
  Generator weights(1);
  {
    NoGradGuard no_grad;
    for (const Tensor& p : cpu_net.parameters()) copy_tensor(randn(p.shape(), weights) * 0.05, p);
  }
  gpu_net.copy_weights_from(cpu_net);
  gpu_net.to(cuda_device());
  Generator gen(0);
  const Tensor x = randn({batch, 3, 32, 32}, gen), target = randn({batch, 3, 32, 32}, gen);
  std::vector<double> steps(batch);
  for (int64_t i = 0; i < batch; ++i) steps[i] = static_cast<double>((i * 397) % 1000);
  const Tensor t = from_vector(steps, {batch});
  const Tensor x_gpu = on_gpu(x), target_gpu = on_gpu(target);
  {  // forward and backward on two images against the CPU: the output, and the first conv's gradient
    const int64_t n = std::min<int64_t>(2, batch);
    const Tensor x2 = narrow(x, 0, 0, n), t2 = narrow(t, 0, 0, n), target2 = narrow(target, 0, 0, n);
    const Tensor y = cpu_net.forward(x2, t2), y_gpu = gpu_net.forward(on_gpu(x2), t2);
    mse_loss(y, target2).backward();
    mse_loss(y_gpu, on_gpu(target2)).backward();
    const double forward_error = relative_error(y_gpu, y, 1e-6);
    auto first_conv_grad = [](const nn::UNet& net) {  // the gradient that crosses the whole network
      for (const auto& [name, p] : net.named_parameters())
        if (name == "input_blocks.0.0.weight") return p.grad();
      return Tensor();
    };
    const double gradient_error = relative_error(first_conv_grad(gpu_net), first_conv_grad(cpu_net), 1e-12);
    if (!verified(state, "ddpm-cifar10 forward", forward_error, 20 * matmul_tolerance()) ||
        !verified(state, "ddpm-cifar10 first-layer gradient", gradient_error, 20 * matmul_tolerance()))
      return;
    gpu_net.zero_grad();
  }
  AdamHyper hyper;
  hyper.lr = 1e-4;
  nn::Adam adam(gpu_net.named_parameters(), hyper);
  time_on_gpu(state, [&] {
    Tensor loss = mse_loss(gpu_net.forward(x_gpu, t), target_gpu);
    loss.backward();
    adam.step();
    adam.zero_grad();
  });
  state.SetItemsProcessed(state.iterations() * batch);
  report_flops(state, 3 * batch * unet_forward_flops(config));
  state.SetLabel("ddpm-cifar10 batch " + std::to_string(batch));
}

BENCHMARK(BM_CudaUNetTrainStep)->Arg(128)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime()->MinTime(2.0);

}  // namespace
}  // namespace diffkd::bench

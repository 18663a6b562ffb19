// The UNet's self-attention block (GroupNorm, 1x1 qkv, softmax(q k^T / sqrt(d)) v, 1x1 projection,
// residual) at the ddpm-cifar10 16x16 level: 256 tokens of 256 channels, one head, batch 128.
// FLOPs per image: qkv 2 * 3 C^2 N, scores and weighted sum 2 * 2 N^2 C, projection 2 C^2 N;
// forward + backward three times that.

#include "bench/cuda/cuda_bench_util.h"
#include "nn/unet_blocks.h"

namespace diffkd::bench {
namespace {

constexpr int64_t kChannels = 256, kSize = 16, kTokens = kSize * kSize;

double attention_flops() {
  return kCifarBatch * (2.0 * 4 * kChannels * kChannels * kTokens + 4.0 * kTokens * kTokens * kChannels);
}

void BM_CudaAttentionBlock(benchmark::State& state) {
  if (!have_gpu(state)) return;
  const bool backward = state.range(0) == 1;
  Generator gen(0);
  nn::AttentionBlock cpu_block(kChannels, 1, 32, 1e-5, gen);
  Generator same(0);
  nn::AttentionBlock gpu_block(kChannels, 1, 32, 1e-5, same);
  gpu_block.to(cuda_device());
  const Tensor x = randn({kCifarBatch, kChannels, kSize, kSize}, gen), gy = randn({kCifarBatch, kChannels, kSize, kSize}, gen);
  const Tensor x_gpu = on_gpu(x), gy_gpu = on_gpu(gy);
  {  // verification on two images (the block treats images independently), of the attention's
     // contribution y - x (the residual alone would hide its errors)
    NoGradGuard no_grad;
    const Tensor x2 = narrow(x, 0, 0, 2);
    const Tensor y = cpu_block.forward(x2, Tensor()) - x2;
    const Tensor y_gpu = narrow(gpu_block.forward(x_gpu, Tensor()) - x_gpu, 0, 0, 2);
    if (!verified(state, "attention block", relative_error(y_gpu, y, 1e-6), matmul_tolerance())) return;
  }
  if (backward) {
    time_on_gpu(state, [&] {
      gpu_block.forward(x_gpu, Tensor()).backward(gy_gpu);
      gpu_block.zero_grad();
    });
  } else {
    NoGradGuard no_grad;
    time_on_gpu(state, [&] { benchmark::DoNotOptimize(gpu_block.forward(x_gpu, Tensor())); });
  }
  report_flops(state, (backward ? 3 : 1) * attention_flops());
  state.SetLabel(std::string(backward ? "fwd+bwd " : "fwd ") + shape_label(kCifarBatch, kChannels, kSize));
}

BENCHMARK(BM_CudaAttentionBlock)->ArgName("backward")->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseManualTime();

}  // namespace
}  // namespace diffkd::bench

// The whole UNet: a training step (forward, MSE against a noise target, backward, Adam) and the
// inference forward pass, at the sizes issue #3 compares with PyTorch: the MNIST presets at
// batch 1 and 64, ddpm-cifar10 forward at batch 1 and 64 and training at batch 8. Reports images/s
// ("items_per_second") and the process's peak resident memory ("peak_MB"; meaningful when one
// case runs per process, as bench/compare_unet_torch.py does). Two untimed warm-up steps run
// first on both sides.

#include <sys/resource.h>

#include "bench/bench_util.h"
#include "nn/optim.h"
#include "nn/presets.h"
#include "nn/unet.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd::bench {
namespace {

// Untimed steps first, as the PyTorch side does: the first step faults in every activation's
// pages and fills the allocator's cache, which a training run pays once.
constexpr int kWarmup = 2;

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss / 1024.0;  // KiB on Linux
}

// The process's peak RSS; of it, the most the caching allocator held (tensors and its cache of
// freed blocks) and the most the tensors themselves held at once. The rest of the RSS is the
// packed-weight cache, the kernels' small scratch, the code and the thread stacks.
void report_memory(benchmark::State& state) {
  state.counters["peak_MB"] = peak_rss_mb();
  state.counters["tensor_peak_MB"] = host_memory_stats().peak_live_bytes / (1024.0 * 1024.0);
  state.counters["held_peak_MB"] = host_memory_stats().peak_held_bytes / (1024.0 * 1024.0);
}

struct Batch {
  Tensor x, t, target;
};

Batch make_batch(const nn::UNetConfig& c, int64_t n) {
  Generator gen(0);
  Batch b;
  b.x = randn({n, c.in_channels, c.image_size, c.image_size}, gen);
  b.target = randn({n, c.out_channels, c.image_size, c.image_size}, gen);
  std::vector<double> steps(n);
  for (int64_t i = 0; i < n; ++i) steps[i] = static_cast<double>((i * 397) % 1000);
  b.t = from_vector(steps, {n});
  return b;
}

void BM_UNetTrainStep(benchmark::State& state, const std::string& preset) {
  const nn::UNetConfig c = nn::load_unet_config(preset);
  nn::UNet net(c);
  AdamHyper h;
  h.lr = 1e-4;
  nn::Adam adam(net.named_parameters(), h);
  const Batch b = make_batch(c, state.range(0));
  auto step = [&] {
    Tensor loss = mse_loss(net.forward(b.x, b.t), b.target);
    loss.backward();
    adam.step();
    adam.zero_grad();
    return loss;
  };
  for (int i = 0; i < kWarmup; ++i) step();
  for (auto _ : state) benchmark::DoNotOptimize(step());
  state.SetItemsProcessed(state.iterations() * state.range(0));
  report_memory(state);
}

void BM_UNetForward(benchmark::State& state, const std::string& preset) {
  const nn::UNetConfig c = nn::load_unet_config(preset);
  nn::UNet net(c);
  net.eval();
  const Batch b = make_batch(c, state.range(0));
  NoGradGuard no_grad;
  for (int i = 0; i < kWarmup; ++i) net.forward(b.x, b.t);
  for (auto _ : state) benchmark::DoNotOptimize(net.forward(b.x, b.t));
  state.SetItemsProcessed(state.iterations() * state.range(0));
  report_memory(state);
}

BENCHMARK_CAPTURE(BM_UNetTrainStep, mnist_unet, std::string("mnist-unet"))->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_UNetForward, mnist_unet, std::string("mnist-unet"))->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_UNetTrainStep, mnist_unet_64, std::string("mnist-unet-64"))->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_UNetForward, mnist_unet_64, std::string("mnist-unet-64"))->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_UNetTrainStep, ddpm_cifar10, std::string("ddpm-cifar10"))->Arg(8)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_UNetForward, ddpm_cifar10, std::string("ddpm-cifar10"))->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench

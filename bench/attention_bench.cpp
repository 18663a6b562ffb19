// Self-attention of the UNet's 7x7 level: 49 tokens, 128 channels in 4 heads of 32, batch 64.
// FLOPs: 2 * 2 * B * H * L * L * d (scores and weighted sum); backward about twice that.

#include "bench/bench_util.h"

namespace diffkd::bench {
namespace {

constexpr int64_t kHeads = 4, kTokens = 49, kHeadDim = 32;

void BM_AttentionForward(benchmark::State& state) {
  Generator gen(0);
  Tensor q = randn({kBatch, kHeads, kTokens, kHeadDim}, gen);
  Tensor k = randn({kBatch, kHeads, kTokens, kHeadDim}, gen);
  Tensor v = randn({kBatch, kHeads, kTokens, kHeadDim}, gen);
  NoGradGuard no_grad;
  for (auto _ : state) {
    Tensor y = scaled_dot_product_attention(q, k, v);
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_flops(state, 4.0 * kBatch * kHeads * kTokens * kTokens * kHeadDim);
}

void BM_AttentionForwardBackward(benchmark::State& state) {
  Generator gen(0);
  Tensor q = randn({kBatch, kHeads, kTokens, kHeadDim}, gen).requires_grad_();
  Tensor k = randn({kBatch, kHeads, kTokens, kHeadDim}, gen).requires_grad_();
  Tensor v = randn({kBatch, kHeads, kTokens, kHeadDim}, gen).requires_grad_();
  const Tensor gy = randn({kBatch, kHeads, kTokens, kHeadDim}, gen);
  for (auto _ : state) {
    scaled_dot_product_attention(q, k, v).backward(gy);
    benchmark::DoNotOptimize(q.grad().raw_data());
    q.zero_grad();
    k.zero_grad();
    v.zero_grad();
  }
  set_flops(state, 3 * 4.0 * kBatch * kHeads * kTokens * kTokens * kHeadDim);
}

BENCHMARK(BM_AttentionForward)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AttentionForwardBackward)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace diffkd::bench

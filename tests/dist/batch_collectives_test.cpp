// The differentiable collectives (dist/batch_collectives.h) on a thread group of 2 ranks with an
// uneven batch (3 + 2 rows): the gradients each rank sends back are those of the global loss
// (a float64 finite-difference check), a gathered batch is the whole batch, and a synced
// BatchNorm trains as one process on the whole batch does, second derivatives included.

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "autograd/ops.h"
#include "dist/batch_collectives.h"
#include "nn/layers.h"
#include "tensor/creation.h"

namespace diffkd {
namespace {

void on_two_ranks(const std::function<void(int, dist::Communicator&)>& body) {
  auto group = dist::make_thread_group(2);
  std::thread other([&] { body(1, *group[1]); });
  body(0, *group[0]);
  other.join();
}

// Rows [first, first + count) of a contiguous [N, ...] tensor, as a copy.
Tensor rows_of(const Tensor& all, int64_t first, int64_t count) {
  return contiguous(narrow(all, 0, first, count)).detach();
}

// Central differences of a scalar function of one tensor (float64).
std::vector<double> numeric_gradient(const std::function<double(const Tensor&)>& f, const Tensor& x) {
  std::vector<double> g(static_cast<size_t>(x.numel()));
  const double h = 1e-6;
  for (int64_t i = 0; i < x.numel(); ++i) {
    Tensor up = x.clone_data(), down = x.clone_data();
    up.data<double>()[i] += h;
    down.data<double>()[i] -= h;
    g[i] = (f(up) - f(down)) / (2 * h);
  }
  return g;
}

TEST(SumOverRanks, EachRankGetsTheGradientOfTheGlobalLoss) {
  // l_r = w_r sum(c_r * y^2), y = x_0 + x_1: a different loss on each rank through the same sum.
  const std::vector<std::vector<double>> c = {{1.0, 2.0, -3.0}, {0.5, -1.0, 2.0}};
  const std::vector<double> w = {0.6, 0.4};
  const std::vector<std::vector<double>> x = {{0.3, -1.2, 0.7}, {1.1, 0.4, -0.2}};
  auto global_loss = [&](const Tensor& x0, const Tensor& x1) {
    const Tensor y = x0 + x1;
    double total = 0;
    for (int r = 0; r < 2; ++r) total += w[r] * sum(from_vector(c[r], {3}, DType::F64) * square(y)).item();
    return total;
  };
  std::vector<std::vector<double>> grads(2), sums(2);
  on_two_ranks([&](int r, dist::Communicator& comm) {
    Tensor mine = from_vector(x[r], {3}, DType::F64).requires_grad_();
    // Rank 1 hands over a non-contiguous view (every other element of a longer tensor).
    Tensor wide = from_vector({x[r][0], 9.0, x[r][1], 9.0, x[r][2]}, {5}, DType::F64).requires_grad_();
    const Tensor input = r == 0 ? mine : slice(wide, 0, 0, 5, 2);
    const Tensor y = dist::sum_over_ranks(input, comm);
    sums[r] = y.to_vector();
    (w[r] * sum(from_vector(c[r], {3}, DType::F64) * square(y))).backward();
    grads[r] = r == 0 ? mine.grad().to_vector() : slice(wide.grad(), 0, 0, 5, 2).to_vector();
    if (r == 1) {
      EXPECT_EQ(wide.grad().to_vector()[1], 0.0);  // the skipped elements get no gradient
    }
  });
  const Tensor x0 = from_vector(x[0], {3}, DType::F64), x1 = from_vector(x[1], {3}, DType::F64);
  const std::vector<double> expected[2] = {
      numeric_gradient([&](const Tensor& v) { return global_loss(v, x1); }, x0),
      numeric_gradient([&](const Tensor& v) { return global_loss(x0, v); }, x1)};
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(sums[r], (x0 + x1).to_vector());
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(grads[r][i], expected[r][i], 1e-7) << "rank " << r << " element " << i;
  }
}

TEST(GatherBatch, RelationsOfTheWholeBatchGetTheWholeBatchsGradient) {
  // L = sum((X X^T)^2) over the gathered batch (alike on every rank) + the mean over rows of
  // sum(x^3) (each rank its own rows): the rank shares sum to L.
  Generator gen(5);
  const Tensor all = randn({5, 3}, gen, DType::F64);
  auto global_loss = [](const Tensor& x) {
    return sum(square(matmul(x, transpose(x, 0, 1)))) + mean(sum(x * x * x, {1}));
  };
  const std::vector<double> expected =
      numeric_gradient([&](const Tensor& x) { return global_loss(x).item(); }, all);
  std::vector<std::vector<double>> gathered(2), grads(2);
  std::vector<double> losses(2);
  on_two_ranks([&](int r, dist::Communicator& comm) {
    const dist::BatchShard shard = dist::shard_of(5, r, 2);
    Tensor mine = rows_of(all, shard.first, shard.count).requires_grad_();
    const Tensor batch = dist::gather_batch(mine, shard, comm);
    gathered[r] = batch.to_vector();
    const Tensor relational = sum(square(matmul(batch, transpose(batch, 0, 1))));
    Tensor share = dist::rank_share(relational + mean(sum(mine * mine * mine, {1})), shard);
    losses[r] = comm.sum(share.item());
    share.backward();
    grads[r] = mine.grad().to_vector();
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(gathered[r], all.to_vector());
    EXPECT_NEAR(losses[r], global_loss(all).item(), 1e-12);
    const dist::BatchShard shard = dist::shard_of(5, r, 2);
    for (int64_t i = 0; i < shard.count * 3; ++i)
      EXPECT_NEAR(grads[r][i], expected[shard.first * 3 + i], 1e-6) << "rank " << r << " element " << i;
  }
  EXPECT_THROW(dist::gather_batch(all, dist::shard_of(5, 0, 2), *dist::make_thread_group(1)[0]), Error);
}

// One training step of a BatchNorm on x with the loss mean(k * y^2) plus a gradient penalty
// through it (create_graph, as Adv-KD's): the gradients of x, weight and bias and the running mean.
struct BatchNormStep {
  std::vector<double> y, x_grad, weight_grad, bias_grad, running_mean;
};

BatchNormStep batch_norm_step(const Tensor& x_rows, const Tensor& k_rows, const dist::BatchShard& shard,
                              dist::Communicator* comm) {
  nn::BatchNorm bn(4);
  bn.across = comm;
  Tensor x = x_rows.clone_data().requires_grad_();
  const Tensor y = bn.forward(x);
  const Tensor g = grad({sum(y * k_rows)}, {x}, {}, true, true)[0];
  const Tensor penalty = mean(square(sqrt(sum(square(flatten(g, 1)), {1})) - 1.0));
  Tensor loss = dist::rank_share(mean(k_rows * square(y)) + penalty, shard);
  loss.backward();
  if (comm) dist::all_reduce_gradients({bn.weight, bn.bias}, 1.0, *comm);
  return {y.to_vector(), x.grad().to_vector(), bn.weight.grad().to_vector(), bn.bias.grad().to_vector(),
          bn.running_mean.to_vector()};
}

TEST(SyncBatchNorm, TwoRanksTrainAsOneProcessOnTheWholeBatch) {
  Generator gen(9);
  const Tensor x = randn({5, 4, 3, 3}, gen) * 2.0 + 0.5, k = randn({5, 4, 3, 3}, gen);
  const BatchNormStep whole = batch_norm_step(x, k, dist::shard_of(5, 0, 1), nullptr);
  BatchNormStep ranks[2];
  on_two_ranks([&](int r, dist::Communicator& comm) {
    const dist::BatchShard shard = dist::shard_of(5, r, 2);
    ranks[r] = batch_norm_step(rows_of(x, shard.first, shard.count), rows_of(k, shard.first, shard.count), shard, &comm);
  });
  const int64_t per_row = 4 * 3 * 3;
  for (int r = 0; r < 2; ++r) {
    const dist::BatchShard shard = dist::shard_of(5, r, 2);
    for (int64_t i = 0; i < shard.count * per_row; ++i) {
      EXPECT_NEAR(ranks[r].y[i], whole.y[shard.first * per_row + i], 1e-5);
      EXPECT_NEAR(ranks[r].x_grad[i], whole.x_grad[shard.first * per_row + i], 1e-5);
    }
    for (int c = 0; c < 4; ++c) {
      EXPECT_NEAR(ranks[r].weight_grad[c], whole.weight_grad[c], 1e-5);
      EXPECT_NEAR(ranks[r].bias_grad[c], whole.bias_grad[c], 1e-5);
      EXPECT_NEAR(ranks[r].running_mean[c], whole.running_mean[c], 1e-6);
    }
  }
  // Unsynced, each rank would normalise by its own rows: the check above can fail.
  const BatchNormStep alone = batch_norm_step(rows_of(x, 0, 3), rows_of(k, 0, 3), dist::shard_of(5, 0, 2), nullptr);
  EXPECT_GT(std::abs(alone.y[0] - whole.y[0]), 1e-3);
}

}  // namespace
}  // namespace diffkd

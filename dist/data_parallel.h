#pragma once
// Data parallelism over a Communicator: which rows of a global batch a rank holds, and the
// gradient all-reduce that turns each rank's gradient of its slice into the global batch's.
//
// A global batch of B rows is split into contiguous slices, the first B mod R ranks holding one
// row more (B = 10 on 4 ranks: 3, 3, 2, 2). Each rank's loss is the mean over its own rows, so
// the gradient of the global mean is sum_r (n_r / B) grad_r: all_reduce_gradients weighs by
// n_r / B and sums, exact for uneven slices too. With one rank it changes nothing (weight 1).

#include <cstdint>
#include <vector>

#include "autograd/node.h"
#include "dist/communicator.h"

namespace diffkd::dist {

struct BatchShard {
  int64_t first = 0;  // this rank's first row of the global batch
  int64_t count = 0;  // rows it holds (0 when B < R and the rank gets none)
  int64_t total = 0;  // rows of the global batch
  double weight() const { return static_cast<double>(count) / static_cast<double>(total); }
};

BatchShard shard_of(int64_t global_batch, int rank, int size);

// Replaces every parameter's gradient by sum over the ranks of weight * gradient, in flat
// buckets of about bucket_bytes (a GPU's gradients are staged through a host bucket for MPI).
// Every rank must hold the same parameters with the same gradients defined (checked).
constexpr int64_t kDefaultBucketBytes = 32ll << 20;
void all_reduce_gradients(const TensorList& params, double weight, Communicator& comm,
                          int64_t bucket_bytes = kDefaultBucketBytes);

// Every rank's tensors become rank 0's (the initial weights; a restored state).
void broadcast_tensors(const TensorList& tensors, Communicator& comm);

// The host scalars of one step, in one small all-reduce: `shares` (each rank's share of the
// global loss and of its parts) become their sums over the ranks, and the result says whether
// any rank raised `flag` (Ctrl-C: every rank must stop after the same step).
bool sum_step_scalars(std::vector<double>& shares, bool flag, Communicator& comm);

}  // namespace diffkd::dist

#pragma once
// Differentiable collectives, for what couples the rows of a global batch that several ranks hold:
// BatchNorm's statistics (SyncBatchNorm), RDD's relations between images.
//
// The convention of every data-parallel loop here: a rank's loss is its share of the global loss
// (the mean over its rows times n_r / B, or a quantity every rank computes alike from gathered
// rows, times n_r / B), and the ranks' gradients are summed. Under it the gradient of
// y = sum_s x_s with respect to x_r is the sum over the ranks of dl_s/dy, so both ops below send
// back the all-reduced gradient: the gradient of the global loss, as one process would compute it.
// Their backward is built from the same ops, so higher-order gradients (Adv-KD's gradient
// penalty through a synced BatchNorm) are collectives too; every rank must run the same graph.

#include "dist/communicator.h"
#include "dist/data_parallel.h"

namespace diffkd::dist {

// The element-wise sum of x over the ranks, on every rank (x's shape, dtype and device).
Tensor sum_over_ranks(const Tensor& x, Communicator& comm);

// The global batch [B, ...] from each rank's rows [n_r, ...] of it (an all-gather).
Tensor gather_batch(const Tensor& rows, const BatchShard& shard, Communicator& comm);

// loss * n_r / B: this rank's share of a global-batch loss that is the mean over its rows (or is
// computed alike on every rank); the loss itself with one rank.
Tensor rank_share(const Tensor& loss, const BatchShard& shard);

}  // namespace diffkd::dist

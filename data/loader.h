#pragma once
// Batches from an ImageDataset: a seeded shuffle per epoch, optional random horizontal flips,
// zero-padding to a larger square (28 -> 32), and scaling of bytes to [-1, 1] (x / 127.5 - 1).
// The order and the flips are pure functions of (seed, epoch, position), so a run resumed at a
// saved position() draws exactly the batches the uninterrupted run would have.

#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "tensor/tensor.h"

namespace diffkd::data {

struct LoaderOptions {
  int64_t batch_size = 64;
  uint64_t seed = 0;
  bool horizontal_flip = false;  // off for digits, on for CIFAR
  int64_t pad_to = 0;            // 0: keep the size; else zero-pad (in [-1, 1] units: -1) to pad_to
};

struct LoaderPosition {
  int64_t epoch = 0;
  int64_t index = 0;  // next position in the epoch's permutation
};

class BatchLoader {
 public:
  BatchLoader(const ImageDataset& dataset, const LoaderOptions& options);
  // The next full batch (an epoch's last partial batch is skipped: every step sees batch_size).
  // images [B, C, S, S] f32 in [-1, 1]; labels [B] i64 (undefined when unlabelled).
  struct Batch {
    Tensor images, labels;
  };
  Batch next() { return next(0, options_.batch_size); }
  // Rows [first, first + count) of the next full batch, advancing past all of it: each rank of a
  // data-parallel run reads its own slice of the same global batches (dist/data_parallel.h).
  Batch next(int64_t first, int64_t count);
  LoaderPosition position() const { return position_; }
  void seek(const LoaderPosition& p);
  int64_t batches_per_epoch() const { return dataset_.count / options_.batch_size; }
  int64_t image_size() const;

 private:
  void shuffle_for(int64_t epoch);
  const ImageDataset& dataset_;
  LoaderOptions options_;
  LoaderPosition position_;
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
};

// Images [first, first + n) of a dataset in order, as [n, C, S, S] in [-1, 1] (evaluation sets).
Tensor images_in_order(const ImageDataset& dataset, int64_t first, int64_t n, int64_t pad_to = 0);

}  // namespace diffkd::data

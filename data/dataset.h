#pragma once
// An in-memory image dataset: 8-bit pixels in NCHW order plus optional class labels, as every
// format diffkd reads (IDX, CIFAR-10 binary batches, image folders) decodes to the same thing.
// Batches turn the bytes into float tensors in [-1, 1] (data/loader.h).

#include <cstdint>
#include <string>
#include <vector>

namespace diffkd::data {

struct ImageDataset {
  std::string source;  // what it was read from, for messages and run logs
  int64_t count = 0, channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;  // [count, channels, height, width], row-major, 0..255
  std::vector<int64_t> labels;  // [count], or empty when unlabelled
  int64_t num_classes = 0;      // 1 + the largest label (0 when unlabelled)

  int64_t image_bytes() const { return channels * height * width; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_bytes(); }
};

// The first `n` images (and labels) of a dataset.
ImageDataset head(const ImageDataset& d, int64_t n);

}  // namespace diffkd::data

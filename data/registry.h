#pragma once
// Datasets by name: "mnist" and "fashion-mnist" (IDX files), "synthetic" (generated, for tests
// and smoke runs; "synthetic:N" for N training images), "cifar10:<folder>" (binary batches), "images:<folder>" / "images-rgb:<folder>"
// (PNG/JPEG, grey or RGB; the same images serve both splits), or a folder holding train-/t10k-
// IDX files or CIFAR-10 batches. Named sets are looked up under
// $DIFFKD_DATA, else the datasets/ folder of the source tree (where scripts/setup.sh puts MNIST),
// and Fashion-MNIST also in Debian's /usr/share/datasets/fashion-mnist.

#include <string>

#include "data/dataset.h"

namespace diffkd::data {

enum class Split { Train, Test };

// The names above, for --data's help.
inline constexpr const char* kDatasetHelp =
    "mnist, fashion-mnist, synthetic[:N], cifar10:<folder>, images:<folder>, images-rgb:<folder>, "
    "or a folder of IDX files or CIFAR-10 batches";

ImageDataset load_dataset(const std::string& name, Split split);

// A deterministic synthetic set: `count` 28x28 grey images of a bright disc or square on black
// (label 0 or 1), position and size drawn from `seed`. Enough to exercise training end to end.
ImageDataset synthetic_shapes(int64_t count, uint64_t seed, int64_t size = 28);

}  // namespace diffkd::data

#pragma once
// Packed convolution weights kept across calls, for weights that are read again unchanged:
// sampling, evaluation, a frozen teacher (autograd's conv2d asks for it under no-grad). At batch 1
// packing is a large share of a conv (a 256 x 256 x 3 x 3 weight is 2.4 MB for 0.3 GFLOP), so
// each weight is packed once and reused while its storage's version (storage.h) is unchanged.
//
// Entries are keyed by (storage id, offset) and hold a weak reference to the storage: an entry
// whose weight was freed is dropped on the next insertion, so the cache holds at most one packed
// copy of each live weight that ran under no-grad. Thread-safe.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::cpu_impl {

class PackedWeightCache {
 public:
  struct Stats {
    int64_t hits = 0, packs = 0, entries = 0, bytes = 0;
  };
  using Packer = std::function<void(float* packed)>;

  // The packed form of w under `layout` (a name for the packing, e.g. its kernel family), made
  // by pack() into a buffer of `floats` when w's bytes, shape or layout changed since last time.
  // The buffer stays valid while the caller holds the pointer, even if w changes meanwhile.
  std::shared_ptr<const std::vector<float>> get(const Tensor& w, int layout, size_t floats,
                                                const Packer& pack);
  Stats stats() const;
  void clear();

 private:
  struct Entry {
    std::weak_ptr<Storage> storage;
    uint64_t version;
    Shape shape;
    int layout;
    std::shared_ptr<std::vector<float>> packed;
  };
  mutable std::mutex mutex_;
  std::map<std::pair<uint64_t, int64_t>, Entry> entries_;
  Stats stats_;
};

// The CPU backend's cache (conv.cpp).
PackedWeightCache& packed_weight_cache();

}  // namespace diffkd::cpu_impl

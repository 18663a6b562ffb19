#include "tensor/cpu/packed_weight_cache.h"

namespace diffkd::cpu_impl {

std::shared_ptr<const std::vector<float>> PackedWeightCache::get(const Tensor& w, int layout,
                                                                 size_t floats,
                                                                 const Packer& pack) {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::shared_ptr<Storage>& storage = w.storage();
  const std::pair<uint64_t, int64_t> key{storage->id(), w.offset()};
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second.version == storage->version() &&
      it->second.shape == w.shape() && it->second.layout == layout) {
    ++stats_.hits;
    return it->second.packed;
  }
  if (it == entries_.end()) {
    // A new weight: first drop the entries of weights that no longer exist.
    for (auto e = entries_.begin(); e != entries_.end();)
      e = e->second.storage.expired() ? entries_.erase(e) : std::next(e);
    it = entries_.emplace(key, Entry{storage, 0, {}, layout, nullptr}).first;
  }
  Entry& entry = it->second;
  // A fresh buffer, so that a caller still reading the old one is not disturbed.
  auto packed = std::make_shared<std::vector<float>>(floats);
  pack(packed->data());
  entry.version = storage->version();
  entry.shape = w.shape();
  entry.layout = layout;
  entry.packed = packed;
  ++stats_.packs;
  return packed;
}

PackedWeightCache::Stats PackedWeightCache::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Stats s = stats_;
  s.entries = static_cast<int64_t>(entries_.size());
  s.bytes = 0;
  for (const auto& [key, entry] : entries_)
    s.bytes += static_cast<int64_t>(entry.packed ? entry.packed->size() * sizeof(float) : 0);
  return s;
}

void PackedWeightCache::clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
  stats_ = {};
}

PackedWeightCache& packed_weight_cache() {
  static PackedWeightCache cache;
  return cache;
}

}  // namespace diffkd::cpu_impl

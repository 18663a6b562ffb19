// Host memory for CPU storages: 64-byte aligned (a cache line; the AVX-512 width), with a cache of
// freed blocks. A training step allocates the same large activations every iteration; handing
// those blocks back instead of returning them to the OS avoids mmap/munmap and the page faults
// of touching fresh pages, which measured as a large and erratic share of kernel time.
//
// Blocks of at least kCachedMin bytes are whole pages carved from segments (one aligned_alloc
// each), the scheme of PyTorch's CUDA caching allocator: a request takes the smallest free block
// that fits (best fit), splitting off the rest while that is itself worth caching; a freed block
// merges with free neighbours of its segment. Reuse on an exact size match alone kept a cached
// block per size ever seen: at ddpm-cifar10 batch 64 the forward's cache held twice what its
// tensors ever did at once. Whole free segments go back to the OS beyond kCacheLimit, and
// before a new segment is taken.
// Smaller blocks come from malloc directly.

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>
#include <unordered_map>
#include <utility>

#include "tensor/cpu/blas.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {

constexpr size_t kAlign = 64;
constexpr size_t kPage = 4096;
constexpr size_t kCachedMin = 64 * 1024;
constexpr size_t kCacheLimit = size_t{2} << 30;  // 2 GiB

class CachingHostAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    const size_t size = rounded(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (size < kCachedMin) {
      void* p = checked_alloc(size, nbytes);
      count_live(size);
      return p;
    }
    Block* block = take_free(size);
    if (block == nullptr) {
      // A new segment: first hand back whole free segments worth as much, so that what the
      // cache holds idle (free but split too finely, or too small) does not add to the peak.
      release_free_segments(stats_.cached_bytes > size ? stats_.cached_bytes - size : 0);
      block = new Block{static_cast<char*>(checked_alloc(size, nbytes)), size};
    } else {
      stats_.cached_bytes -= block->size;
      split(block, size);
    }
    block->free = false;
    live_.emplace(block->ptr, block);
    count_live(size);
    return block->ptr;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    const size_t size = rounded(nbytes);
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.live_bytes -= size;
    if (size < kCachedMin) return std::free(ptr);
    auto it = live_.find(ptr);
    Block* block = it->second;
    live_.erase(it);
    block->free = true;
    stats_.cached_bytes += block->size;
    block = merge(block, block->next);
    if (block->prev != nullptr && block->prev->free) block = merge(block->prev, block);
    free_.emplace(block->size, block);
    stats_.peak_held_bytes =
        std::max(stats_.peak_held_bytes, stats_.live_bytes + stats_.cached_bytes);
    release_free_segments(kCacheLimit);
  }

  HostMemoryStats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

  ~CachingHostAllocator() override {
    for (auto [size, block] : free_) {
      if (block->prev == nullptr && block->next == nullptr) std::free(block->ptr);
      delete block;
    }
  }

 private:
  // A run of bytes inside one segment; prev/next are its neighbours in that segment.
  struct Block {
    char* ptr;
    size_t size;
    bool free = false;
    Block* prev = nullptr;
    Block* next = nullptr;
  };

  static size_t rounded(size_t nbytes) {
    const size_t unit = nbytes >= kCachedMin ? kPage : kAlign;
    return (std::max<size_t>(nbytes, 1) + unit - 1) / unit * unit;
  }

  static void* checked_alloc(size_t size, size_t nbytes) {
    void* p = std::aligned_alloc(size >= kCachedMin ? kPage : kAlign, size);
    if (p == nullptr) fail("cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }

  Block* take_free(size_t size) {
    auto it = free_.lower_bound({size, nullptr});
    if (it == free_.end()) return nullptr;
    Block* block = it->second;
    free_.erase(it);
    return block;
  }

  // Leaves `block` with `size` bytes; the rest, if worth caching, becomes a free block after it.
  void split(Block* block, size_t size) {
    const size_t rest = block->size - size;
    if (rest < kCachedMin) return;
    Block* tail = new Block{block->ptr + size, rest, true, block, block->next};
    if (block->next != nullptr) block->next->prev = tail;
    block->next = tail;
    block->size = size;
    free_.emplace(rest, tail);
    stats_.cached_bytes += rest;
  }

  // Joins free `b` into `a` (its left neighbour) when both are free; returns the survivor.
  Block* merge(Block* a, Block* b) {
    if (b == nullptr || !a->free || !b->free) return a;
    free_.erase({a->size, a});
    free_.erase({b->size, b});
    a->size += b->size;
    a->next = b->next;
    if (b->next != nullptr) b->next->prev = a;
    delete b;
    return a;
  }

  // Frees whole unused segments, largest first, until the cache holds at most `target` bytes.
  void release_free_segments(size_t target) {
    for (auto it = free_.rbegin(); stats_.cached_bytes > target && it != free_.rend();) {
      Block* block = it->second;
      if (block->prev != nullptr || block->next != nullptr) {
        ++it;
        continue;
      }
      stats_.cached_bytes -= block->size;
      std::free(block->ptr);
      delete block;
      it = std::make_reverse_iterator(free_.erase(std::next(it).base()));
    }
  }

  void count_live(size_t size) {
    stats_.live_bytes += size;
    stats_.peak_live_bytes = std::max(stats_.peak_live_bytes, stats_.live_bytes);
    stats_.peak_held_bytes =
        std::max(stats_.peak_held_bytes, stats_.live_bytes + stats_.cached_bytes);
  }

  std::mutex mutex_;
  std::set<std::pair<size_t, Block*>> free_;  // by size: best fit
  std::unordered_map<void*, Block*> live_;
  HostMemoryStats stats_;
};

}  // namespace

namespace {
CachingHostAllocator& host_allocator() {
  static CachingHostAllocator alloc;
  return alloc;
}
}  // namespace

Allocator& CpuBackend::allocator() { return host_allocator(); }

HostMemoryStats host_memory_stats() { return host_allocator().stats(); }

CpuBackend& cpu_backend() {
  static CpuBackend& be = []() -> CpuBackend& {
    static CpuBackend instance;
    instance.allocator();      // constructed first, so destroyed after every static tensor
    cpu_impl::gemm_library();  // load OpenBLAS if requested, now, on one thread (see blas.cpp)
    return instance;
  }();
  return be;
}

}  // namespace diffkd

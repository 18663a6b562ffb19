// Host memory for CPU storages: 64-byte aligned (a cache line; the AVX-512 width), with a cache of
// freed blocks. A training step allocates the same large activations every iteration; handing
// those blocks back instead of returning them to the OS avoids mmap/munmap and the page faults
// of touching fresh pages, which measured as a large and erratic share of kernel time.
// Blocks of at least kCachedMin bytes are rounded up to whole pages and reused on an exact
// size match; the cache holds at most kCacheLimit bytes (beyond that, frees go to the OS).

#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

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
    if (size >= kCachedMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_bytes_ -= size;
        return p;
      }
    }
    void* p = std::aligned_alloc(kAlign, size);
    if (p == nullptr) fail("cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    const size_t size = rounded(nbytes);
    if (size >= kCachedMin) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + size <= kCacheLimit) {
        free_[size].push_back(ptr);
        cached_bytes_ += size;
        return;
      }
    }
    std::free(ptr);
  }

  ~CachingHostAllocator() override {
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) std::free(p);
  }

 private:
  static size_t rounded(size_t nbytes) {
    const size_t unit = nbytes >= kCachedMin ? kPage : kAlign;
    return (std::max<size_t>(nbytes, 1) + unit - 1) / unit * unit;
  }

  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_bytes_ = 0;
};

}  // namespace

Allocator& CpuBackend::allocator() {
  static CachingHostAllocator alloc;
  return alloc;
}

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

// Device memory: a caching allocator. A training step allocates the same activation sizes every
// iteration, and cudaMalloc/cudaFree synchronise the device, so freed blocks are kept in
// per-size free lists (sizes rounded up to 512 bytes) and handed out again. All kernels run on
// one stream (cuda/runtime.h), so a block freed by the host may be reused at once: the next
// kernel that writes it is ordered after the last one that read it. When cudaMalloc fails, the
// cache is released and the allocation retried once.

#include <map>
#include <mutex>
#include <vector>

#include "cuda/cuda_backend.h"
#include "cuda/runtime.h"

namespace diffkd::cuda {

namespace {

constexpr size_t kRound = 512;

class CachingDeviceAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const size_t size = (nbytes + kRound - 1) / kRound * kRound;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(size);
      if (it != free_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        return p;
      }
    }
    require_device("cuda allocator");
    void* p = nullptr;
    if (cudaMalloc(&p, size) != cudaSuccess) {
      cudaGetLastError();
      const size_t released = release_cache();
      const cudaError_t status = cudaMalloc(&p, size);
      if (status != cudaSuccess)
        fail("cuda allocator: cannot allocate ", nbytes, " bytes (", cudaGetErrorString(status), "; ", released,
             " cached bytes were released first)");
    }
    return p;
  }

  void deallocate(void* ptr, size_t nbytes) override {
    if (ptr == nullptr) return;
    const size_t size = (nbytes + kRound - 1) / kRound * kRound;
    std::lock_guard<std::mutex> lock(mutex_);
    free_[size].push_back(ptr);
    cached_ += size;
  }

  // Returns the bytes released.
  size_t release_cache() {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaDeviceSynchronize();
    for (auto& [size, blocks] : free_)
      for (void* p : blocks) cudaFree(p);
    free_.clear();
    const size_t released = cached_;
    cached_ = 0;
    return released;
  }

 private:
  std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;
  size_t cached_ = 0;
};

}  // namespace

Allocator& CudaBackend::allocator() {
  // Never destroyed: storages freed during static destruction still return their blocks here.
  static auto* allocator = new CachingDeviceAllocator();
  return *allocator;
}

}  // namespace diffkd::cuda

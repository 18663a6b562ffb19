// 64-byte aligned host memory (one cache line, and AVX-512 width) for every CPU storage.
#include <cstdlib>
#include <new>

#include "tensor/cpu/blas.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {
class AlignedAllocator final : public Allocator {
 public:
  void* allocate(size_t nbytes) override {
    constexpr size_t kAlign = 64;
    void* p = std::aligned_alloc(kAlign, (nbytes + kAlign - 1) / kAlign * kAlign);
    if (p == nullptr) fail("cpu allocator: out of memory allocating ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, size_t) override { std::free(ptr); }
};
}  // namespace

Allocator& CpuBackend::allocator() {
  static AlignedAllocator alloc;
  return alloc;
}

CpuBackend& cpu_backend() {
  static CpuBackend& be = [] () -> CpuBackend& {
    static CpuBackend instance;
    cpu_impl::gemm_library();  // load OpenBLAS now, on one thread (see blas.cpp)
    return instance;
  }();
  return be;
}

}  // namespace diffkd

// The CPU caching allocator: a freed block serves smaller requests by splitting (best fit), the
// pieces merge back when freed, idle segments go back to the OS before a new one is taken, and
// its statistics follow what the tensors hold.

#include <gtest/gtest.h>

#include <cstdint>

#include "tensor/cpu/cpu_backend.h"

namespace diffkd {
namespace {

// Sizes no other allocation of the test process comes near, so the blocks below are the only
// free ones that fit them.
constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kWhole = 37 * kMiB;
constexpr size_t kHead = 20 * kMiB;
constexpr size_t kTail = kWhole - kHead;

TEST(HostAllocator, SplitsAFreedBlockAndMergesThePiecesBack) {
  Allocator& alloc = cpu_backend().allocator();
  char* whole = static_cast<char*>(alloc.allocate(kWhole));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(whole) % 64, 0u);
  alloc.deallocate(whole, kWhole);

  const HostMemoryStats before = host_memory_stats();
  char* head = static_cast<char*>(alloc.allocate(kHead));
  char* tail = static_cast<char*>(alloc.allocate(kTail));
  EXPECT_EQ(head, whole);
  EXPECT_EQ(tail, whole + kHead);
  const HostMemoryStats split = host_memory_stats();
  EXPECT_EQ(split.live_bytes, before.live_bytes + kWhole);
  EXPECT_EQ(split.cached_bytes, before.cached_bytes - kWhole);
  EXPECT_EQ(split.peak_held_bytes, before.peak_held_bytes) << "the pieces came from the cache";

  alloc.deallocate(head, kHead);
  alloc.deallocate(tail, kTail);
  EXPECT_EQ(host_memory_stats().cached_bytes, before.cached_bytes);
  char* again = static_cast<char*>(alloc.allocate(kWhole));
  EXPECT_EQ(again, whole) << "the two pieces did not merge back into one block";
  alloc.deallocate(again, kWhole);
}

TEST(HostAllocator, ANewSegmentFirstHandsBackIdleOnes) {
  Allocator& alloc = cpu_backend().allocator();
  void* whole = alloc.allocate(kWhole);
  alloc.deallocate(whole, kWhole);
  const HostMemoryStats before = host_memory_stats();
  const size_t bigger = kWhole + 4 * kMiB;  // fits no free block
  void* p = alloc.allocate(bigger);
  const HostMemoryStats after = host_memory_stats();
  EXPECT_LE(after.cached_bytes + kWhole, before.cached_bytes)
      << "the idle 37 MiB segment stayed cached while a new one was taken";
  EXPECT_LE(after.live_bytes + after.cached_bytes, before.live_bytes + before.cached_bytes + bigger - kWhole);
  alloc.deallocate(p, bigger);
}

TEST(HostAllocator, SmallBlocksCountAsLive) {
  const HostMemoryStats before = host_memory_stats();
  void* p = cpu_backend().allocator().allocate(100);
  EXPECT_EQ(host_memory_stats().live_bytes, before.live_bytes + 128);
  cpu_backend().allocator().deallocate(p, 100);
  EXPECT_EQ(host_memory_stats().live_bytes, before.live_bytes);
}

}  // namespace
}  // namespace diffkd

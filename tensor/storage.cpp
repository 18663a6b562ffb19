#include "tensor/storage.h"

#include "tensor/error.h"

namespace diffkd {

namespace {
std::atomic<uint64_t> next_storage_id{1};
}

Storage::Storage(size_t nbytes, Device device, Allocator* allocator)
    : nbytes_(nbytes), device_(device), allocator_(allocator),
      id_(next_storage_id.fetch_add(1, std::memory_order_relaxed)) {
  data_ = nbytes > 0 ? allocator_->allocate(nbytes) : nullptr;
}

Storage::~Storage() {
  if (data_ != nullptr) allocator_->deallocate(data_, nbytes_);
}

}  // namespace diffkd

#include "tensor/storage.h"

#include "tensor/error.h"

namespace diffkd {

Storage::Storage(size_t nbytes, Device device, Allocator* allocator)
    : nbytes_(nbytes), device_(device), allocator_(allocator) {
  data_ = nbytes > 0 ? allocator_->allocate(nbytes) : nullptr;
}

Storage::~Storage() {
  if (data_ != nullptr) allocator_->deallocate(data_, nbytes_);
}

}  // namespace diffkd

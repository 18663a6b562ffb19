#pragma once
// Storage: one allocation on one device, shared by every view of it (Tensor holds a shared_ptr).
// A Storage owns its bytes; shape, strides and offset belong to the Tensor, so views are free.

#include <cstddef>
#include <memory>

#include "tensor/device.h"

namespace diffkd {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t nbytes) = 0;
  virtual void deallocate(void* ptr, size_t nbytes) = 0;
};

class Storage {
 public:
  Storage(size_t nbytes, Device device, Allocator* allocator);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // not owned; backends live for the whole program
};

}  // namespace diffkd

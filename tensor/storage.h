#pragma once
// Storage: one allocation on one device, shared by every view of it (Tensor holds a shared_ptr).
// A Storage owns its bytes; shape, strides and offset belong to the Tensor, so views are free.
//
// Every Storage has an id unique in the process and a version that Tensor::raw_data() (the one
// way to a writable pointer) advances, so a cache derived from the bytes (the packed weights of
// conv.cpp) can tell that they may have changed. Code that keeps a pointer from data() and
// writes through it after later ops have read the tensor must call bump_version() itself.

#include <atomic>
#include <cstddef>
#include <cstdint>
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
  uint64_t id() const { return id_; }
  uint64_t version() const { return version_.load(std::memory_order_relaxed); }
  void bump_version() { version_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  Allocator* allocator_ = nullptr;  // not owned; backends live for the whole program
  uint64_t id_;
  std::atomic<uint64_t> version_{0};
};

}  // namespace diffkd

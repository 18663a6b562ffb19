#pragma once
// Where a tensor's storage lives. Only the CPU backend exists in this build; the CUDA backend
// registers itself with the dispatcher (tensor/backend.h) when it is compiled in.

#include <string>

namespace diffkd {

enum class DeviceType { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string str() const;  // "cpu", "cuda:0"
};

inline Device cpu() { return Device{DeviceType::CPU, 0}; }

}  // namespace diffkd

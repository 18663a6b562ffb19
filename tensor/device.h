#pragma once
// Where a tensor's storage lives: host memory, or a CUDA device's (in a build with CUDA,
// tensor/cuda_support.h).

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
inline Device cuda_device(int index = 0) { return Device{DeviceType::CUDA, index}; }
// "cpu", "cuda" or "cuda:N"; throws naming the text otherwise.
Device parse_device(const std::string& text);

}  // namespace diffkd

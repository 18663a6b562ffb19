#include <array>

#include "tensor/backend.h"
#include "tensor/cpu/cpu_backend.h"

namespace diffkd {

namespace {
std::array<Backend*, 2>& registry() {
  static std::array<Backend*, 2> backends{};
  return backends;
}
}  // namespace

void register_backend(DeviceType type, Backend* be) { registry()[static_cast<int>(type)] = be; }

Backend& backend(Device device) {
  if (device.type == DeviceType::CPU) return cpu_backend();
  Backend* be = registry()[static_cast<int>(device.type)];
  DK_CHECK(be != nullptr, "device ", device.str(), ": no backend for it in this build (diffkd was ",
           "built without CUDA)");
  return *be;
}

}  // namespace diffkd

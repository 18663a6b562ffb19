// The dispatch point: the backend of a device. The CPU backend is always there; the CUDA one
// exists in a build with CUDA (tensor/cuda_support.h) and needs a usable GPU for its kernels.

#include "tensor/backend.h"
#include "tensor/cpu/cpu_backend.h"
#include "tensor/cuda_support.h"

namespace diffkd {

Backend& backend(Device device) {
  if (device.type == DeviceType::CPU) return cpu_backend();
  Backend* be = cuda_backend_or_null();
  DK_CHECK(be != nullptr, "device ", device.str(), ": ", cuda_unavailable_reason());
  // One GPU per process: the CUDA backend's handles, allocator and caches live on device 0.
  DK_CHECK(device.index == 0, "device ", device.str(), ": diffkd uses one GPU per process, cuda:0 (choose the GPU with ",
           "CUDA_VISIBLE_DEVICES=", device.index, ")");
  return *be;
}

void copy_tensor(const Tensor& src, const Tensor& dst) {
  backend(dst.device().type == DeviceType::CPU ? src.device() : dst.device()).copy(src, dst);
}

}  // namespace diffkd

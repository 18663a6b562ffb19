// A build without CUDA (no nvcc, or -DDIFFKD_CUDA=OFF): tensor/cuda_support.h answers "none".

#include "dist/nccl_communicator.h"
#include "tensor/cuda_support.h"

#include "tensor/error.h"

namespace diffkd {

bool cuda_built() { return false; }
int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() { return "diffkd was built without CUDA (no nvcc found, or -DDIFFKD_CUDA=OFF)"; }
void cuda_load_libraries() { fail(cuda_unavailable_reason()); }
Backend* cuda_backend_or_null() { return nullptr; }
CudaDeviceInfo cuda_device_info(int) { fail(cuda_unavailable_reason()); }
double cuda_time_ms(const std::function<void()>&) { fail(cuda_unavailable_reason()); }

}  // namespace diffkd

namespace diffkd::dist {

bool built_with_nccl() { return false; }
std::unique_ptr<Communicator> make_nccl_communicator(Communicator&) {
  fail("this diffkd was built without CUDA, so without NCCL");
}

}  // namespace diffkd::dist

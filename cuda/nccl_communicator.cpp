// The NCCL communicator (see dist/nccl_communicator.h).

#include "dist/nccl_communicator.h"

#include "tensor/error.h"

#ifdef DIFFKD_HAVE_NCCL

#include "cuda/nccl_loader.h"
#include "cuda/runtime.h"

namespace diffkd::dist {

namespace {

void check_nccl(ncclResult_t result, const char* call) {
  if (result != ncclSuccess) fail("NCCL: ", call, ": ", cuda::nccl_api().error_string(result));
}

class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(Communicator& host) : host_(host) {
    cuda::require_device("the NCCL communicator");
    const cuda::NcclApi& nccl = cuda::nccl_api();
    ncclUniqueId id{};
    if (host.rank() == 0) check_nccl(nccl.get_unique_id(&id), "ncclGetUniqueId");
    host.broadcast(&id, sizeof id, 0);
    // On this process's GPU (device 0: apps/main.cpp gives each rank its own).
    check_nccl(nccl.comm_init_rank(&comm_, host.size(), id, host.rank()), "ncclCommInitRank");
  }
  ~NcclCommunicator() override { cuda::nccl_api().comm_destroy(comm_); }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_.rank(); }
  int size() const override { return host_.size(); }
  int local_rank() const override { return host_.local_rank(); }
  std::string name() const override { return "NCCL (" + std::to_string(size()) + " ranks, over " + host_.name() + ")"; }
  Device buffer_device(Device device) const override {
    return device.type == DeviceType::CUDA ? device : host_.buffer_device(device);
  }
  void all_reduce_sum(const Tensor& t) override {
    if (t.device().type != DeviceType::CUDA) return host_.all_reduce_sum(t);
    DK_CHECK(t.is_contiguous() && (t.dtype() == DType::F32 || t.dtype() == DType::F64),
             "all_reduce_sum: the buffer must be a contiguous f32 or f64 tensor, got ", dtype_name(t.dtype()));
    // In place, on the stream every kernel runs on: later kernels and host reads are ordered after it.
    check_nccl(cuda::nccl_api().all_reduce(t.raw_data(), t.raw_data(), static_cast<size_t>(t.numel()),
                                           t.dtype() == DType::F32 ? ncclFloat32 : ncclFloat64, ncclSum, comm_,
                                           cuda::stream()),
               "ncclAllReduce");
  }
  void broadcast(void* data, int64_t bytes, int root) override { host_.broadcast(data, bytes, root); }
  void barrier() override { host_.barrier(); }

 private:
  Communicator& host_;
  ncclComm_t comm_ = nullptr;
};

}  // namespace

bool built_with_nccl() { return true; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host) {
  return std::make_unique<NcclCommunicator>(host);
}

}  // namespace diffkd::dist

#else  // a CUDA toolkit without nccl.h

namespace diffkd::dist {

bool built_with_nccl() { return false; }

std::unique_ptr<Communicator> make_nccl_communicator(Communicator&) {
  fail("this diffkd was built without NCCL (the CUDA toolkit had no nccl.h)");
}

}  // namespace diffkd::dist

#endif

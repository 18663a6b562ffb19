// Collectives on MPI_COMM_WORLD (see mpi_communicator.h). Buffers are host memory: gradients on
// a GPU are staged through the host by the caller (dist/data_parallel.cpp) unless NCCL is used.

#include "dist/mpi_communicator.h"

#ifdef DIFFKD_HAVE_MPI

#include <mpi.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <string>

#include "tensor/error.h"

namespace diffkd::dist {

namespace {

void check(int status, const char* call) {
  if (status == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(status, text, &length);
  fail(call, " failed: ", std::string(text, static_cast<size_t>(length)));
}

// Large counts in chunks: MPI's counts are int.
constexpr int64_t kMaxCount = std::numeric_limits<int>::max() / 2;

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() {
    int ready = 0;
    MPI_Initialized(&ready);
    if (!ready) {
      check(MPI_Init(nullptr, nullptr), "MPI_Init");
      std::atexit([] {
        int finalized = 0;
        MPI_Finalized(&finalized);
        if (!finalized) MPI_Finalize();
      });
    }
    // Errors come back as return codes (turned into diffkd::Error), not as an abort inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_free(&node);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  std::string name() const override { return "MPI (" + std::to_string(size_) + " ranks)"; }
  Device buffer_device(Device) const override { return cpu(); }

  void all_reduce_sum(const Tensor& t) override {
    DK_CHECK(t.is_contiguous() && t.device().type == DeviceType::CPU &&
                 (t.dtype() == DType::F32 || t.dtype() == DType::F64),
             "all_reduce_sum (MPI): the buffer must be a contiguous f32 or f64 host tensor");
    const MPI_Datatype type = t.dtype() == DType::F32 ? MPI_FLOAT : MPI_DOUBLE;
    char* data = static_cast<char*>(t.raw_data());
    for (int64_t done = 0; done < t.numel(); done += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, t.numel() - done));
      check(MPI_Allreduce(MPI_IN_PLACE, data + done * itemsize(t.dtype()), count, type, MPI_SUM, MPI_COMM_WORLD),
            "MPI_Allreduce");
    }
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (int64_t done = 0; done < bytes; done += kMaxCount) {
      const int count = static_cast<int>(std::min(kMaxCount, bytes - done));
      check(MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }
  void barrier() override { check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier"); }

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

void mpi_abort(int exit_code) {
  int ready = 0;
  MPI_Initialized(&ready);
  if (ready) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::exit(exit_code);
}

}  // namespace diffkd::dist

#endif  // DIFFKD_HAVE_MPI

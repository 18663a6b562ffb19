// The single-process and thread-group communicators, and the choice of the process's one
// (see communicator.h; MPI in mpi_communicator.cpp).

#include "dist/communicator.h"

#include <barrier>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dist/mpi_communicator.h"
#include "dist/nccl_communicator.h"
#include "tensor/backend.h"
#include "tensor/error.h"

namespace diffkd::dist {

double Communicator::sum(double v) {
  if (size() == 1) return v;
  Tensor t = Tensor::empty({1}, DType::F64);
  t.data<double>()[0] = v;
  all_reduce_sum(t);
  return t.data<double>()[0];
}

std::string Communicator::broadcast_string(const std::string& s) {
  if (size() == 1) return s;
  int64_t length = static_cast<int64_t>(s.size());
  broadcast(&length, sizeof length, 0);
  std::string out = rank() == 0 ? s : std::string(static_cast<size_t>(length), '\0');
  broadcast(out.data(), length, 0);
  return out;
}

namespace {

void check_buffer(const Tensor& t, const char* who) {
  DK_CHECK(t.is_contiguous() && (t.dtype() == DType::F32 || t.dtype() == DType::F64), who,
           ": the buffer must be a contiguous f32 or f64 tensor, got ", dtype_name(t.dtype()),
           t.is_contiguous() ? "" : " (not contiguous)");
}

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  std::string name() const override { return "single process"; }
  Device buffer_device(Device device) const override { return device; }
  void all_reduce_sum(const Tensor& t) override { check_buffer(t, "all_reduce_sum"); }
  void broadcast(void*, int64_t, int root) override {
    DK_CHECK(root == 0, "broadcast: root ", root, " of 1 rank");
  }
  void barrier() override {}
};

// What the threads of a group share: each rank's buffer, published between barriers.
struct GroupState {
  explicit GroupState(int size) : sync(size), buffers(static_cast<size_t>(size)) {}
  std::barrier<> sync;
  std::vector<const void*> buffers;
};

class ThreadRank final : public Communicator {
 public:
  ThreadRank(std::shared_ptr<GroupState> state, int rank, int size)
      : state_(std::move(state)), rank_(rank), size_(size) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return rank_; }
  std::string name() const override { return "thread group (" + std::to_string(size_) + " ranks)"; }
  Device buffer_device(Device) const override { return cpu(); }

  // Each rank adds the buffers in rank order into its own copy, then every rank writes its copy
  // back: the same sum, in the same order, on every rank.
  void all_reduce_sum(const Tensor& t) override {
    check_buffer(t, "all_reduce_sum");
    DK_CHECK(t.device().type == DeviceType::CPU, "all_reduce_sum: a thread group reduces host buffers");
    const int64_t n = t.numel();
    state_->buffers[rank_] = t.raw_data_for_reading();
    state_->sync.arrive_and_wait();
    Tensor total = Tensor::empty({n}, t.dtype());
    if (t.dtype() == DType::F32) add_in_rank_order<float>(total.data<float>(), n);
    else add_in_rank_order<double>(total.data<double>(), n);
    state_->sync.arrive_and_wait();  // every rank has read every buffer
    std::memcpy(t.raw_data(), total.raw_data_for_reading(), static_cast<size_t>(n) * itemsize(t.dtype()));
    state_->sync.arrive_and_wait();
  }
  void broadcast(void* data, int64_t bytes, int root) override {
    DK_CHECK(root >= 0 && root < size_, "broadcast: root ", root, " of ", size_, " ranks");
    if (rank_ == root) state_->buffers[rank_] = data;
    state_->sync.arrive_and_wait();
    if (rank_ != root) std::memcpy(data, state_->buffers[root], static_cast<size_t>(bytes));
    state_->sync.arrive_and_wait();
  }
  void barrier() override { state_->sync.arrive_and_wait(); }

 private:
  template <typename T> void add_in_rank_order(T* out, int64_t n) const {
    std::memcpy(out, state_->buffers[0], static_cast<size_t>(n) * sizeof(T));
    for (int r = 1; r < size_; ++r) {
      const T* b = static_cast<const T*>(state_->buffers[r]);
      for (int64_t i = 0; i < n; ++i) out[i] += b[i];
    }
  }
  std::shared_ptr<GroupState> state_;
  int rank_, size_;
};

// The world size an MPI launcher announced in the environment (Open MPI, PMIx, MPICH/Slurm's
// PMI); 0 when the process was not started by one.
int launcher_world_size() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"})
    if (const char* v = std::getenv(name)) return std::atoi(v);
  return std::getenv("PMIX_RANK") ? 1 : 0;
}

std::unique_ptr<Communicator> make_world() {
  const int launched = launcher_world_size();
  if (launched == 0) return std::make_unique<SingleProcess>();
#ifdef DIFFKD_HAVE_MPI
  return make_mpi_communicator();
#else
  // N copies that each think they are alone would all write the same run folder.
  DK_CHECK(launched <= 1, "started by an MPI launcher as one of ", launched,
           " processes, but this diffkd was built without MPI (install libopenmpi-dev and rebuild)");
  return std::make_unique<SingleProcess>();
#endif
}

}  // namespace

Communicator& world() {
  static const std::unique_ptr<Communicator> comm = make_world();
  return *comm;
}

Communicator& world_for(Device device) {
  Communicator& host = world();
  if (device.type != DeviceType::CUDA || host.size() == 1 || !built_with_nccl()) return host;
  static const std::unique_ptr<Communicator> nccl = make_nccl_communicator(host);
  return *nccl;
}

bool built_with_mpi() {
#ifdef DIFFKD_HAVE_MPI
  return true;
#else
  return false;
#endif
}

void abort_all(int exit_code) {
#ifdef DIFFKD_HAVE_MPI
  if (launcher_world_size() > 1) mpi_abort(exit_code);
#else
  (void)exit_code;
#endif
}

std::vector<std::unique_ptr<Communicator>> make_thread_group(int size) {
  DK_CHECK(size >= 1, "make_thread_group: size ", size, " (expected >= 1)");
  auto state = std::make_shared<GroupState>(size);
  std::vector<std::unique_ptr<Communicator>> ranks;
  for (int r = 0; r < size; ++r) ranks.push_back(std::make_unique<ThreadRank>(state, r, size));
  return ranks;
}

}  // namespace diffkd::dist

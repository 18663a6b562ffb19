#pragma once
// The processes of a data-parallel run and the collectives they need (llm.c's pattern): each of
// `size` ranks holds a full copy of the model, computes gradients on its slice of every global
// batch, and the ranks sum them with an all-reduce before identical optimiser steps.
//
// Backends: one process (no MPI needed, every collective is the identity), MPI (Open MPI; CPU
// buffers) and, in CUDA builds with NCCL, NCCL on the GPU's buffers. `world()` picks once: MPI
// when the process was started by mpirun (or another MPI launcher), else one process.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::dist {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks on its machine (one GPU per rank: the device it uses).
  virtual int local_rank() const = 0;
  virtual std::string name() const = 0;  // "single process", "MPI (4 ranks)", ...

  // Where a buffer handed to all_reduce_sum must live for tensors on `device` (MPI: the host).
  virtual Device buffer_device(Device device) const = 0;
  // In place: every rank's `t` becomes the element-wise sum over the ranks (f32 or f64,
  // contiguous, on buffer_device). The sum's order is fixed for a given world size.
  virtual void all_reduce_sum(const Tensor& t) = 0;
  // Bytes [data, data + bytes) on every rank become those of rank `root` (host memory).
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;

  // Host scalars: the sum of `v` over the ranks, and whether any rank passed true.
  double sum(double v);
  bool any(bool v) { return sum(v ? 1.0 : 0.0) > 0; }
  // Rank 0's string on every rank.
  std::string broadcast_string(const std::string& s);
};

// The process's communicator, set up on first use (MPI_Init under a launcher).
Communicator& world();
// The communicator for a run on `device`: on a GPU with several ranks, NCCL over world()'s ranks
// (made on first use, collectively) when the build has it; otherwise world() itself, which
// stages GPU buffers through the host.
Communicator& world_for(Device device);

// Whether this build can run several ranks (it was compiled with MPI).
bool built_with_mpi();

// After an error on one rank the others would wait in the next collective forever: ends every
// rank with `exit_code` (MPI_Abort); returns (and does nothing) with one process.
void abort_all(int exit_code);

// A communicator of `size` ranks that are threads of this process (tests of the data-parallel
// code without MPI): make_thread_group(n)[r] is rank r; each rank must be driven from its own
// thread, and all ranks must call the same collectives in the same order.
std::vector<std::unique_ptr<Communicator>> make_thread_group(int size);

}  // namespace diffkd::dist

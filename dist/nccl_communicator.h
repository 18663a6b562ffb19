#pragma once
// The NCCL backend of dist::Communicator (llm.c's pattern): the processes an MPI launcher started
// (the host communicator) open one NCCL communicator over their GPUs, rank 0 making the
// ncclUniqueId and broadcasting it over the host communicator. GPU buffers are all-reduced by
// NCCL on the GPU, without a host round trip; host buffers, broadcasts and barriers go through
// the host communicator. Built in CUDA builds when the toolkit has nccl.h; libnccl is opened at
// run time (cuda/nccl_loader.h).

#include <memory>

#include "dist/communicator.h"

namespace diffkd::dist {

// Whether this build has the NCCL backend.
bool built_with_nccl();

// A communicator over the same ranks as `host` (which must outlive it), for tensors on this
// process's GPU; collective: every rank of `host` must call it. Throws when NCCL is not built,
// cannot be loaded, or no GPU is usable.
std::unique_ptr<Communicator> make_nccl_communicator(Communicator& host);

}  // namespace diffkd::dist

#pragma once
// The MPI communicator (Open MPI from Debian; any MPI-3 library would do). Only in builds that
// found MPI (DIFFKD_HAVE_MPI); world() makes it when the process was started by mpirun.

#include <memory>

#include "dist/communicator.h"

namespace diffkd::dist {

#ifdef DIFFKD_HAVE_MPI
// MPI_Init on first call; MPI_Finalize when the process exits normally.
std::unique_ptr<Communicator> make_mpi_communicator();
// MPI_Abort on MPI_COMM_WORLD: ends every rank.
[[noreturn]] void mpi_abort(int exit_code);
#endif

}  // namespace diffkd::dist

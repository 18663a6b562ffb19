// The NCCL communicator (dist/nccl_communicator.h): one process keeps the host communicator for
// GPU tensors too, and `mpirun -np 2 diffkd train --device cuda` on two GPUs trains what one GPU
// process trains (skipped, with the reason, without two GPUs, NCCL or mpirun).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "dist/nccl_communicator.h"
#include "nn/safetensors.h"
#include "tensor/cuda_support.h"
#include "tests/cuda/require_gpu.h"
#include "tests/test_paths.h"

namespace diffkd {
namespace {

namespace fs = std::filesystem;

TEST(NcclCommunicator, OneProcessUsesTheHostCommunicatorOnEveryDevice) {
  EXPECT_EQ(&dist::world_for(cpu()), &dist::world());
  EXPECT_EQ(&dist::world_for(cuda_device(0)), &dist::world());  // one rank: nothing to reduce
}

TEST(NcclCommunicator, RefusesWithoutAGpuInOneLine) {
  if (!dist::built_with_nccl()) GTEST_SKIP() << "this build has no NCCL (no CUDA toolkit with nccl.h)";
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is usable: the two-GPU test below covers NCCL";
  try {
    dist::make_nccl_communicator(dist::world());
    FAIL() << "expected an error without a GPU";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("NCCL communicator"), std::string::npos) << e.what();
  }
}

// Why the two-GPU test cannot run here, or empty.
std::string two_gpus_unavailable() {
  if (!dist::built_with_nccl()) return "this build has no NCCL";
  if (!dist::built_with_mpi()) return "this build has no MPI (install libopenmpi-dev)";
  if (cuda_device_count() < 2) return "needs 2 GPUs, " + std::to_string(cuda_device_count()) + " usable (" +
                                      (cuda_device_count() == 0 ? cuda_unavailable_reason() : "one") + ")";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) return "mpirun is not on PATH";
  return "";
}

std::vector<float> weights_of(const std::string& path) {
  std::vector<float> all;
  for (const auto& [name, t] : safetensors::load(path).tensors) {
    const std::vector<double> v = t.to_vector();
    all.insert(all.end(), v.begin(), v.end());
  }
  return all;
}

TEST(MpiNccl, TwoGpuRanksTrainWhatOneGpuProcessTrains) {
  DIFFKD_SKIP_UNLESS_GPUS(2, two_gpus_unavailable());
  const fs::path dir = fs::path(::testing::TempDir()) / "mpi-nccl";
  fs::remove_all(dir);
  const std::string train = diffkd::testing::cli_path() + " --device cuda train --data synthetic --model " +
                            diffkd::testing::test_configs_dir() + "/tiny-unet-28.json --batch 5 --steps 4 --warmup 1"
                            " --sample-every 0 --log-every 1 --run-dir ";
  const std::string quiet = " > /dev/null 2>&1";
  ASSERT_EQ(std::system((train + (dir / "one").string() + quiet).c_str()), 0);
  ASSERT_EQ(std::system(("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun --oversubscribe -np 2 " +
                         train + (dir / "two").string() + quiet).c_str()),
            0);
  const std::vector<float> one = weights_of((dir / "one" / "model-raw.safetensors").string());
  const std::vector<float> two = weights_of((dir / "two" / "model-raw.safetensors").string());
  ASSERT_EQ(one.size(), two.size());
  double worst = 0;
  for (size_t i = 0; i < one.size(); ++i) worst = std::max(worst, std::abs(double(one[i]) - two[i]));
  EXPECT_LT(worst, 1e-5);  // float rounding of the slices' sums (the same bound as on the CPU, with room for cuDNN)
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffkd

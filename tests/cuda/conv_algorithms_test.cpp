// The cuDNN algorithm order and fallback rule of cuda/conv_algorithms.h, on the CPU (no GPU needed).

#include "cuda/conv_algorithms.h"

#include <gtest/gtest.h>

namespace diffkd::cuda {
namespace {

AlgorithmOffer offer(bool succeeded, size_t workspace, bool deterministic, bool tensor_op = false) {
  AlgorithmOffer o;
  o.succeeded = succeeded;
  o.workspace = workspace;
  o.deterministic = deterministic;
  o.tensor_op_math = tensor_op;
  return o;
}

TEST(CudnnAlgorithms, DeterministicFirstInCudnnsRankingWithinTheWorkspaceCap) {
  const std::vector<AlgorithmOffer> offers{
      offer(true, 10, false),        // 0: fast but non-deterministic
      offer(false, 0, true),         // 1: the heuristic failed it
      offer(true, 5000, true),       // 2: over the cap
      offer(true, 20, true),         // 3
      offer(true, 0, true, true),    // 4: tensor-op math
      offer(true, 30, false),        // 5
      offer(true, 40, true),         // 6
  };
  EXPECT_EQ(algorithm_order(offers, 1000, false), (std::vector<int>{3, 4, 6, 0, 5}));
  EXPECT_EQ(algorithm_order(offers, 1000, true), (std::vector<int>{3, 6, 0, 5}));
  EXPECT_EQ(algorithm_order(offers, 5000, true), (std::vector<int>{2, 3, 6, 0, 5}));
  EXPECT_TRUE(algorithm_order({offer(false, 0, true)}, 1000, false).empty());
}

TEST(CudnnAlgorithms, OnlyNotSupportedAndExecutionFailedFallBack) {
  EXPECT_TRUE(cudnn_status_falls_back(3000));   // CUDNN_STATUS_NOT_SUPPORTED
  EXPECT_TRUE(cudnn_status_falls_back(3007));   // one of its detailed codes
  EXPECT_TRUE(cudnn_status_falls_back(5000));   // CUDNN_STATUS_EXECUTION_FAILED
  EXPECT_TRUE(cudnn_status_falls_back(5003));
  EXPECT_FALSE(cudnn_status_falls_back(0));     // SUCCESS
  EXPECT_FALSE(cudnn_status_falls_back(2000));  // BAD_PARAM: our bug, not the algorithm's
  EXPECT_FALSE(cudnn_status_falls_back(4000));  // INTERNAL_ERROR
}

}  // namespace
}  // namespace diffkd::cuda

#pragma once
// Which cuDNN convolution algorithms to try, and in what order (cuda/conv.cpp): host-only logic,
// with no CUDA header, so a CPU test checks it on every build.
//
// cuDNN's _v7 heuristics rank every algorithm for a shape, each with a status, a workspace size,
// a determinism flag and the math type it was ranked with. The heuristic can rank an algorithm
// that then returns NOT_SUPPORTED or EXECUTION_FAILED when run (a known first-run failure on new
// GPUs and cuDNN versions), so conv.cpp runs the candidates in order and falls back to the next
// on those two categories, keeping the first that runs.

#include <cstddef>
#include <vector>

namespace diffkd::cuda {

struct AlgorithmOffer {
  bool succeeded = false;      // the heuristic's status for it was SUCCESS
  size_t workspace = 0;        // bytes
  bool deterministic = false;  // cuDNN says the algorithm repeats bit for bit
  bool tensor_op_math = false; // ranked with tensor-op math (TF32 for fp32)
};

// Indices into `offers` to try, best first: those that succeeded within `max_workspace`,
// deterministic ones first (so a run on one GPU repeats bit for bit), each group in cuDNN's
// ranking; tensor-op candidates are left out when `fma_only` (fp32 without TF32).
inline std::vector<int> algorithm_order(const std::vector<AlgorithmOffer>& offers, size_t max_workspace,
                                        bool fma_only) {
  std::vector<int> order;
  for (int pass = 0; pass < 2; ++pass)
    for (size_t i = 0; i < offers.size(); ++i) {
      const AlgorithmOffer& o = offers[i];
      if (!o.succeeded || o.workspace > max_workspace || (fma_only && o.tensor_op_math)) continue;
      if (o.deterministic == (pass == 0)) order.push_back(static_cast<int>(i));
    }
  return order;
}

// Whether a cuDNN status (cuDNN 9's full codes: category x 1000 + detail) means "try the next
// algorithm": the NOT_SUPPORTED (3000s) and EXECUTION_FAILED (5000s) categories.
inline bool cudnn_status_falls_back(int status) {
  const int category = status / 1000 * 1000;
  return category == 3000 || category == 5000;
}

}  // namespace diffkd::cuda

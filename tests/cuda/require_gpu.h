#pragma once
// GPU tests skip on a machine without a usable GPU, unless DIFFKD_REQUIRE_GPU=N says the run is
// meant to have N GPUs (a GPU machine's test run sets it): then the missing GPU fails the test,
// naming the CUDA error that made it unusable, so a GPU run cannot pass by skipping everything.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tensor/cuda_support.h"

namespace diffkd::testing {

// The GPUs the run requires: DIFFKD_REQUIRE_GPU's value, 0 when it is unset or empty; a value
// that is not a whole number counts as 1 (a run that sets the variable at all means a GPU).
inline int required_gpus() {
  const char* value = std::getenv("DIFFKD_REQUIRE_GPU");
  if (value == nullptr || *value == '\0') return 0;
  char* end = nullptr;
  const long n = std::strtol(value, &end, 10);
  return *end == '\0' && n >= 0 ? static_cast<int>(n) : 1;
}

// Why one GPU is not usable here ("" when one is).
inline std::string no_gpu_reason() {
  return cuda_device_count() > 0 ? "" : "no CUDA device: " + cuda_unavailable_reason();
}

}  // namespace diffkd::testing

// When `why` (the reason `gpus` GPUs are not usable) is not empty: skips the current test, or
// fails it when the run requires that many GPUs.
#define DIFFKD_SKIP_UNLESS_GPUS(gpus, why)                                                       \
  do {                                                                                          \
    const std::string diffkd_why_ = (why);                                                      \
    if (!diffkd_why_.empty()) {                                                                 \
      if (::diffkd::testing::required_gpus() >= (gpus))                                         \
        FAIL() << "DIFFKD_REQUIRE_GPU=" << ::diffkd::testing::required_gpus() << ": " << diffkd_why_; \
      GTEST_SKIP() << diffkd_why_;                                                              \
    }                                                                                           \
  } while (0)

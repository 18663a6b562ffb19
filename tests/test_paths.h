#pragma once
// Where the tests find their inputs. A normal build compiles the source tree's root and the CLI's
// path in; a relocatable one (-DDIFFKD_RELOCATABLE=ON, the GPU bundle of scripts/gpu-bundle.sh)
// compiles them in empty and finds both beside the test binary, laid out as in the source tree.

#include <string>

#include "tensor/executable_dir.h"

namespace diffkd::testing {

// The source tree's root, or the folder holding the test binary.
inline std::string test_root() {
  const std::string compiled_in = DIFFKD_TEST_ROOT;
  return compiled_in.empty() ? executable_dir() : compiled_in;
}

inline std::string golden_dir() { return test_root() + "/tests/golden/data"; }
inline std::string test_configs_dir() { return test_root() + "/tests/configs"; }
inline std::string fuzz_dir() { return test_root() + "/tests/fuzz"; }

// The `diffkd` command line the end-to-end tests run.
inline std::string cli_path() {
  const std::string compiled_in = DIFFKD_CLI_PATH;
  return compiled_in.empty() ? executable_dir() + "/diffkd" : compiled_in;
}

}  // namespace diffkd::testing

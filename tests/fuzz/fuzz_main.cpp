// One fuzz target under libFuzzer (the sanitize build, clang): DIFFKD_FUZZ_TARGET names it.
// Its scratch files live in a folder of the current directory, removed at exit.

#include <unistd.h>

#include <cstdlib>
#include <string>

#include "tests/fuzz/fuzz_targets.h"

namespace {

const diffkd::fuzz::FuzzTarget& target() {
  static const diffkd::fuzz::FuzzTarget& t = [] () -> const diffkd::fuzz::FuzzTarget& {
    diffkd::fuzz::set_scratch_folder(std::filesystem::current_path() /
                                     ("fuzz-scratch-" + std::to_string(::getpid())));
    std::atexit(diffkd::fuzz::remove_scratch_folder);
    return diffkd::fuzz::fuzz_target(DIFFKD_FUZZ_TARGET);
  }();
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  target().run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}

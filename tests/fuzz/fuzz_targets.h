#pragma once
// The parsers a user's files reach, as fuzz targets (issue #22): each takes arbitrary bytes, hands
// them to one parser, and returns when the parser accepts them or refuses them with a diffkd::Error
// (the one-line error the command line prints). Anything else, a crash, a sanitizer report, a leak,
// another exception type, is a bug. tests/fuzz/fuzz_main.cpp runs one target under libFuzzer
// (the sanitize build); tests/fuzz/replay_test.cpp replays the seed corpus and every input a fuzzer
// once found (tests/fuzz/regressions/) in every build.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace diffkd::fuzz {

struct FuzzTarget {
  std::string name;  // also the folder of its corpus and regressions
  void (*run)(std::string_view bytes);
};

// safetensors, idx, cifar, image_folder, sampler_spec, unet_config.
const std::vector<FuzzTarget>& fuzz_targets();
const FuzzTarget& fuzz_target(const std::string& name);

// Where the file-reading targets write their input (made on first use, removed by
// remove_scratch_folder()).
void set_scratch_folder(const std::filesystem::path& folder);
void remove_scratch_folder();

}  // namespace diffkd::fuzz

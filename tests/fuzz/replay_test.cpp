// Every build replays each fuzz target's seed corpus and the inputs a fuzzer once found
// (tests/fuzz/regressions/<target>/): each must be accepted or refused with a diffkd::Error.

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iterator>

#include "tests/fuzz/fuzz_targets.h"
#include "tests/test_paths.h"

namespace diffkd::fuzz {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> files_in(const fs::path& folder) {
  std::vector<fs::path> files;
  if (fs::is_directory(folder))
    for (const auto& e : fs::directory_iterator(folder))
      if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzReplay : public ::testing::TestWithParam<std::string> {
 protected:
  void TearDown() override { remove_scratch_folder(); }
};

TEST_P(FuzzReplay, EveryCorpusAndRegressionInputIsAcceptedOrRefusedCleanly) {
  const FuzzTarget& target = fuzz_target(GetParam());
  set_scratch_folder(fs::temp_directory_path() / ("fuzz-replay-" + target.name));
  const fs::path root = diffkd::testing::fuzz_dir();
  const std::vector<fs::path> corpus = files_in(root / "corpus" / target.name);
  ASSERT_FALSE(corpus.empty()) << "no seed corpus in " << (root / "corpus" / target.name);
  std::vector<fs::path> inputs = corpus;
  for (const fs::path& p : files_in(root / "regressions" / target.name)) inputs.push_back(p);
  for (const fs::path& p : inputs) {
    std::ifstream in(p, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NO_THROW(target.run(bytes)) << p;
  }
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay,
                         ::testing::Values("safetensors", "idx", "cifar", "image_folder", "sampler_spec",
                                           "unet_config"));

}  // namespace
}  // namespace diffkd::fuzz

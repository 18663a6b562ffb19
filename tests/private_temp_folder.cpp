// Every test process works in a temporary folder of its own, made before its first test and
// removed after its last, whether the tests passed or failed: a test run leaves the system temp
// folder as it found it. Tests reach it through ::testing::TempDir() (TEST_TMPDIR) or
// std::filesystem::temp_directory_path() (TMPDIR), both pointed at it.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace {

class PrivateTempFolder : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/diffkd-tests-XXXXXX";
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    if (::mkdtemp(name.data()) == nullptr) {
      std::perror(("diffkd tests: cannot make a temporary folder " + pattern).c_str());
      std::exit(1);
    }
    folder_ = name.data();
    ::setenv("TEST_TMPDIR", folder_.c_str(), 1);
    ::setenv("TMPDIR", folder_.c_str(), 1);
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(folder_, ignored);
  }

 private:
  std::string folder_;
};

[[maybe_unused]] ::testing::Environment* const kRegistered =
    ::testing::AddGlobalTestEnvironment(new PrivateTempFolder);

}  // namespace

// Run only by the tests_leave_the_temp_folder_empty check (CMakeLists.txt): a test that fails
// after writing into the temp folder, which must be removed all the same.
TEST(PrivateTempFolder, DISABLED_FailsAfterWritingAFile) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "left-behind.txt";
  std::FILE* f = std::fopen(file.c_str(), "w");
  ASSERT_NE(f, nullptr) << file;
  std::fputs("x", f);
  std::fclose(f);
  ADD_FAILURE() << "deliberate failure: the temp folder must be removed after it";
}

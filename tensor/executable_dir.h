#pragma once
// The folder of the running executable, for what a relocatable build (-DDIFFKD_RELOCATABLE=ON,
// scripts/gpu-bundle.sh) finds beside its binaries instead of at a source path compiled in:
// datasets, test data, run-time loaded NVIDIA libraries.

#include <filesystem>
#include <string>
#include <system_error>

namespace diffkd {

// "" when /proc/self/exe cannot be read (then callers fall back to the working directory).
inline std::string executable_dir() {
  std::error_code error;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? std::string() : exe.parent_path().string();
}

}  // namespace diffkd

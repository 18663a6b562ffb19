#pragma once
// Writing a file so that readers see either the old contents or the complete new ones, never a
// half-written file (a crash or a full disk mid-checkpoint must not destroy the last good one).
// The bytes go to `path + ".tmp.<pid>"` in the same folder, are flushed and fsync'ed, and the temp
// file is renamed over `path` (atomic on POSIX within one file system); then the folder is
// fsync'ed so that the rename itself survives a power loss. On failure the temp file is removed
// and a diffkd::Error names the path and the system's reason.
//
// Fault injection, for the tests that a crash or a full disk loses nothing (tests/nn/
// fault_injection_test.cpp): the environment variable DIFFKD_FAULT = "kill:N" ends the process
// with SIGKILL in the middle of its N-th atomic write (part of the bytes in the temp file, as a
// power cut or `kill -9` would leave it), and "full:N" fails the N-th write part way with ENOSPC,
// as a full disk does. Unset, nothing changes.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace diffkd {

// Appends bytes to the file being written; throws diffkd::Error when the write fails.
using ByteSink = std::function<void(const void* data, size_t size)>;

// Calls produce(sink) to stream the contents out (no copy of a large checkpoint in memory), then
// commits. If produce throws, the temp file is removed, `path` is untouched, and the exception
// propagates unchanged.
void write_file_atomically(const std::string& path,
                           const std::function<void(const ByteSink& write)>& produce);

// The same for contents already in memory.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace diffkd

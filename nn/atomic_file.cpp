// write_file_atomically: temp file in the same folder, fsync, rename over the target, fsync the
// folder (the recipe of e.g. https://lwn.net/Articles/457667/). See atomic_file.h.

#include "nn/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tensor/error.h"

namespace diffkd {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Makes the rename durable. File systems that cannot fsync a directory answer EINVAL; the rename
// has still happened there, so that is not an error.
void sync_folder(const std::string& path) {
  const std::string folder = folder_of(path);
  const int fd = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DK_CHECK(fd >= 0, path, ": written, but cannot open its folder ", folder,
           " to sync it: ", errno_text());
  const bool synced = ::fsync(fd) == 0 || errno == EINVAL;
  const std::string reason = errno_text();
  ::close(fd);
  DK_CHECK(synced, path, ": written, but syncing its folder ", folder, " failed: ", reason);
}

// Writes, flushes, syncs and closes the temp file; the caller removes it if this throws.
void fill_temp_file(std::FILE* file, const std::string& path, const std::string& temp,
                    const std::function<void(const ByteSink&)>& produce) {
  const ByteSink sink = [&](const void* data, size_t size) {
    if (size == 0) return;
    DK_CHECK(std::fwrite(data, 1, size, file) == size, path, ": writing temp file ", temp,
             " failed: ", errno_text());
  };
  produce(sink);
  DK_CHECK(std::fflush(file) == 0, path, ": flushing temp file ", temp, " failed: ", errno_text());
  DK_CHECK(::fsync(::fileno(file)) == 0, path, ": fsync of temp file ", temp,
           " failed: ", errno_text());
}

}  // namespace

void write_file_atomically(const std::string& path,
                           const std::function<void(const ByteSink& write)>& produce) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  DK_CHECK(file != nullptr, path, ": cannot create temp file ", temp, ": ", errno_text());
  try {
    fill_temp_file(file, path, temp, produce);
  } catch (...) {
    std::fclose(file);
    std::remove(temp.c_str());
    throw;
  }
  // fclose can report a deferred write error (e.g. on NFS), so its result counts too.
  const bool closed = std::fclose(file) == 0;
  const bool renamed = closed && std::rename(temp.c_str(), path.c_str()) == 0;
  if (!renamed) {
    const std::string reason = errno_text();
    std::remove(temp.c_str());
    fail(path, closed ? ": cannot rename temp file " : ": closing temp file ", temp,
         closed ? " over it: " : " failed: ", reason);
  }
  sync_folder(path);
}

void write_file_atomically(const std::string& path, std::string_view bytes) {
  write_file_atomically(path, [&](const ByteSink& write) { write(bytes.data(), bytes.size()); });
}

}  // namespace diffkd

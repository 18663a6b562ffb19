// write_file_atomically: temp file in the same folder, fsync, rename over the target, fsync the
// folder (the recipe of e.g. https://lwn.net/Articles/457667/). See atomic_file.h.

#include "nn/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tensor/error.h"

namespace diffkd {
namespace {

std::string errno_text() { return std::strerror(errno); }

// DIFFKD_FAULT (atomic_file.h): which write fails, and how.
struct Fault {
  enum class Kind { None, Kill, DiskFull } kind = Kind::None;
  long write = 0;  // 1-based, counted over the process
};

Fault planned_fault() {
  static const Fault fault = [] {
    Fault f;
    const char* text = std::getenv("DIFFKD_FAULT");
    if (text == nullptr || *text == '\0') return f;
    const std::string spec = text;
    const size_t colon = spec.find(':');
    const std::string kind = spec.substr(0, colon);
    char* end = nullptr;
    f.write = colon == std::string::npos ? 0 : std::strtol(spec.c_str() + colon + 1, &end, 10);
    DK_CHECK((kind == "kill" || kind == "full") && f.write > 0 && end != nullptr && *end == '\0',
             "DIFFKD_FAULT='", spec, "': expected kill:N or full:N (N >= 1, the write that fails)");
    f.kind = kind == "kill" ? Fault::Kind::Kill : Fault::Kind::DiskFull;
    return f;
  }();
  return fault;
}

std::atomic<long> writes_begun{0};

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
  const Fault fault = planned_fault();
  const bool faulty = fault.kind != Fault::Kind::None && ++writes_begun == fault.write;
  const ByteSink sink = [&](const void* data, size_t size) {
    if (size == 0) return;
    if (faulty) {  // half of the first chunk reaches the disk, then the fault
      std::fwrite(data, 1, size / 2, file);
      std::fflush(file);
      if (fault.kind == Fault::Kind::Kill) std::raise(SIGKILL);
      errno = ENOSPC;
      fail(path, ": writing temp file ", temp, " failed: ", errno_text());
    }
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

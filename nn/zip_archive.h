#pragma once
// A reader of ZIP archives whose entries are stored (uncompressed), as torch.save writes them:
// the central directory (PKWARE APPNOTE 6.3, sections 4.3.6-4.3.16 and 4.5.3, with ZIP64) and
// each entry's bytes, their CRC-32 checked. It exists for nn/torch_checkpoint.cpp and is its own
// file so that the byte-level parsing of an untrusted file can be read alone. It is not a general
// zip library: compressed, encrypted, duplicated and multi-disk entries are refused when the
// archive is opened (so every listed entry is stored: its size is both its compressed and its
// uncompressed size), and a file that does not start like a zip is told apart from torch's legacy
// (< 1.6) format and from a bare pickle, for a useful message. Every read is bounds-checked,
// every count and size is checked before anything is allocated for it, and every problem is a
// one-line diffkd::Error that starts with the path.
//
// Example:
//   const zip::Archive archive("ckpt.pt");
//   for (const zip::Entry& e : archive.entries()) std::printf("%s\n", zip::quoted(e.name).c_str());
//   const zip::Bytes pkl = archive.read(*archive.find("archive/data.pkl"));  // CRC-32 checked

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

namespace diffkd::zip {

static_assert(std::endian::native == std::endian::little, "zip_archive: big-endian host");

using Bytes = std::vector<unsigned char>;

// A string from the file for an error message: quoted, control and non-ASCII bytes escaped,
// shortened when long, so that messages stay one line.
std::string quoted(const std::string& s);

// Little-endian integers at p (the byte order of zip and of pickle, and the host's, see above).
inline uint16_t u16(const unsigned char* p) { uint16_t v; std::memcpy(&v, p, 2); return v; }
inline uint32_t u32(const unsigned char* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
inline uint64_t u64(const unsigned char* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

// The signature of a local header, "PK\x03\x04": a zip file starts with one.
inline constexpr uint32_t kLocalHeader = 0x04034b50;

// An open regular file read at explicit offsets.
class File {
 public:
  explicit File(const std::string& path);
  ~File();
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }
  bool holds(uint64_t offset, uint64_t n) const { return offset <= size_ && n <= size_ - offset; }

  // Reads [offset, offset + n), which the caller has checked lies in the file.
  void read(uint64_t offset, void* dst, uint64_t n, const std::string& what) const;
  Bytes read(uint64_t offset, uint64_t n, const std::string& what) const;

 private:
  std::string path_;
  int fd_;
  uint64_t size_ = 0;
};

struct Entry {
  std::string name;
  uint64_t header_offset = 0;  // of its local header
  uint64_t size = 0;
  uint32_t crc = 0;
};

// The central directory of a single-disk archive with stored (uncompressed) entries.
class Archive {
 public:
  // Opens the file and reads its whole directory (every entry checked as above).
  explicit Archive(const std::string& path);

  const std::string& path() const { return path_; }
  const File& file() const { return file_; }
  const std::vector<Entry>& entries() const { return entries_; }  // in the directory's order
  const Entry* find(const std::string& name) const {
    const auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
  }

  // The whole entry, its CRC-32 checked.
  Bytes read(const Entry& e) const;

 private:
  void read_directory();
  void read_entries(const Bytes& dir, uint64_t count);
  void read_zip64_extra(Entry& entry, uint64_t& compressed, const unsigned char* extra, uint64_t length);

  std::string path_;
  File file_;
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

}  // namespace diffkd::zip

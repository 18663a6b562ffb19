// The stored-entries ZIP reader of nn/zip_archive.h: the ZIP directory (PKWARE APPNOTE 6.3,
// sections 4.3.6-4.3.16 and 4.5.3, with ZIP64) and the CRC-32 of each entry read. The file is
// untrusted input: every read is bounds-checked, every count and size is checked before anything
// is allocated for it, and every problem is one line that starts with the path.

#include "nn/zip_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <utility>

#include "tensor/error.h"

namespace diffkd::zip {

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 80) {
      out += "...";
      break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return out + "\"";
}

namespace {

// CRC-32 (ZIP's polynomial 0xEDB88320), slicing by 8 bytes.
struct CrcTables {
  uint32_t t[8][256];
};
constexpr CrcTables make_crc_tables() {
  CrcTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    tables.t[0][i] = c;
  }
  for (int k = 1; k < 8; ++k)
    for (uint32_t i = 0; i < 256; ++i)
      tables.t[k][i] = (tables.t[k - 1][i] >> 8) ^ tables.t[0][tables.t[k - 1][i] & 0xffu];
  return tables;
}
constexpr CrcTables kCrc = make_crc_tables();

uint32_t crc32(const unsigned char* p, size_t n) {
  const auto& t = kCrc.t;
  uint32_t c = 0xffffffffu;
  for (; n >= 8; p += 8, n -= 8) {
    const uint32_t a = u32(p) ^ c, b = u32(p + 4);
    c = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^ t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^
        t[3][b & 0xff] ^ t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
  }
  for (; n > 0; ++p, --n) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
  return ~c;
}

// The other record signatures (kLocalHeader is in the header).
constexpr uint32_t kCentralHeader = 0x02014b50, kEnd = 0x06054b50, kEnd64 = 0x06064b50,
                   kEnd64Locator = 0x07064b50;

// Why a file that does not start with a zip signature is not a checkpoint we read.
[[noreturn]] void fail_not_zip(const std::string& path, const File& file) {
  const Bytes head = file.read(0, std::min<uint64_t>(file.size(), 14), "the file's first bytes");
  // torch < 1.6: PROTO 2, then LONG1 of the magic number 0x1950a86a20f9469cfc6c.
  static const unsigned char kLegacy[14] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c,
                                            0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  if (head.size() == 14 && std::memcmp(head.data(), kLegacy, 14) == 0)
    fail(path, ": a legacy torch.save file (torch < 1.6, not a zip archive), which this reader does not "
         "support: re-save it with torch >= 1.6 (torch.save(torch.load(f), f)) or convert it to safetensors");
  if (!head.empty() && head[0] == 0x80)
    fail(path, ": a bare pickle, not a torch.save zip archive (which starts with \"PK\\x03\\x04\")");
  fail(path, ": not a PyTorch zip checkpoint: it does not start with the zip signature \"PK\\x03\\x04\"");
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The file

File::File(const std::string& path) : path_(path), fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {
  DK_CHECK(fd_ >= 0, path, ": cannot open for reading: ", std::strerror(errno));
  struct stat info {};
  const bool ok = ::fstat(fd_, &info) == 0;
  const int error = errno;
  if (!ok || !S_ISREG(info.st_mode)) {
    ::close(fd_);
    if (!ok) fail(path, ": cannot stat: ", std::strerror(error));
    fail(path, ": not a regular file");
  }
  size_ = static_cast<uint64_t>(info.st_size);
}

File::~File() { ::close(fd_); }

void File::read(uint64_t offset, void* dst, uint64_t n, const std::string& what) const {
  auto* out = static_cast<unsigned char*>(dst);
  while (n > 0) {
    const size_t chunk = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
    const ssize_t got = ::pread(fd_, out, chunk, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    DK_CHECK(got > 0, path_, ": ", got < 0 ? std::strerror(errno) : "the file ended",
             " while reading ", what, " (was it changed while loading?)");
    out += got;
    offset += static_cast<uint64_t>(got);
    n -= static_cast<uint64_t>(got);
  }
}

Bytes File::read(uint64_t offset, uint64_t n, const std::string& what) const {
  Bytes bytes(n);
  read(offset, bytes.data(), n, what);
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// The ZIP directory

Archive::Archive(const std::string& path) : path_(path), file_(path) {
  DK_CHECK(file_.size() >= 4, path, ": file is ", file_.size(), " bytes, too short for a zip archive");
  if (u32(file_.read(0, 4, "the zip signature").data()) != kLocalHeader) fail_not_zip(path, file_);
  read_directory();
}

Bytes Archive::read(const Entry& e) const {
  const std::string what = "zip entry " + quoted(e.name);
  DK_CHECK(file_.holds(e.header_offset, 30), path_, ": ", what, ": local header at byte ", e.header_offset,
           " lies beyond the end of the file (", file_.size(), " bytes; truncated?)");
  const Bytes h = file_.read(e.header_offset, 30, what);
  DK_CHECK(u32(h.data()) == kLocalHeader, path_, ": ", what, ": no local header signature at byte ",
           e.header_offset);
  const uint64_t data = e.header_offset + 30 + u16(h.data() + 26) + u16(h.data() + 28);
  DK_CHECK(file_.holds(data, e.size), path_, ": ", what, ": its ", e.size, " bytes at byte ", data,
           " run past the end of the file (", file_.size(), " bytes; truncated?)");
  Bytes bytes = file_.read(data, e.size, what);
  const uint32_t crc = crc32(bytes.data(), bytes.size());
  DK_CHECK(crc == e.crc, path_, ": ", what, ": CRC-32 is ", crc, " but the directory says ", e.crc,
           " (the file is corrupt)");
  return bytes;
}

// The end of central directory record (and its ZIP64 version, which torch always writes).
void Archive::read_directory() {
  const uint64_t size = file_.size();
  const uint64_t tail_size = std::min<uint64_t>(size, 22 + 65535);
  const Bytes tail = file_.read(size - tail_size, tail_size, "the end of the zip archive");
  uint64_t end = std::numeric_limits<uint64_t>::max();
  for (uint64_t i = tail_size >= 22 ? tail_size - 22 + 1 : 0; i-- > 0;)
    if (u32(tail.data() + i) == kEnd && i + 22 + u16(tail.data() + i + 20) == tail_size) {
      end = i;
      break;
    }
  DK_CHECK(end != std::numeric_limits<uint64_t>::max(), path_,
           ": no zip end-of-central-directory record: the file is truncated or not a zip archive");
  const unsigned char* e = tail.data() + end;
  const uint64_t end_offset = size - tail_size + end;
  uint64_t count = u16(e + 10), dir_size = u32(e + 12), dir_offset = u32(e + 16), dir_end = end_offset;
  bool one_disk = u16(e + 4) == 0 && u16(e + 6) == 0 && u16(e + 8) == u16(e + 10);
  if (end_offset >= 20) {
    const Bytes locator = file_.read(end_offset - 20, 20, "the ZIP64 locator");
    if (u32(locator.data()) == kEnd64Locator) {
      const uint64_t at = u64(locator.data() + 8);
      DK_CHECK(at <= end_offset - 20 && end_offset - 20 - at >= 56, path_,
               ": the ZIP64 end-of-central-directory record at byte ", at, " is out of place");
      const Bytes r = file_.read(at, 56, "the ZIP64 end-of-central-directory record");
      DK_CHECK(u32(r.data()) == kEnd64, path_, ": no ZIP64 end-of-central-directory record at byte ", at);
      one_disk = one_disk && u32(locator.data() + 4) == 0 && u32(locator.data() + 16) <= 1 &&
                 u32(r.data() + 16) == 0 && u32(r.data() + 20) == 0 && u64(r.data() + 24) == u64(r.data() + 32);
      count = u64(r.data() + 32);
      dir_size = u64(r.data() + 40);
      dir_offset = u64(r.data() + 48);
      dir_end = at;
    }
  }
  DK_CHECK(one_disk, path_, ": a multi-disk (split) zip archive, which is not supported");
  DK_CHECK(dir_offset <= dir_end && dir_size <= dir_end - dir_offset, path_, ": the central directory [",
           dir_offset, ", +", dir_size, ") does not end before its end record at byte ", dir_end);
  DK_CHECK(count <= dir_size / 46, path_, ": the zip directory claims ", count, " entries in ", dir_size,
           " bytes");
  read_entries(file_.read(dir_offset, dir_size, "the central directory"), count);
}

void Archive::read_entries(const Bytes& dir, uint64_t count) {
  uint64_t at = 0;
  for (uint64_t i = 0; i < count; ++i) {
    DK_CHECK(dir.size() - at >= 46 && u32(dir.data() + at) == kCentralHeader, path_,
             ": zip central directory entry ", i, " at byte ", at, " is malformed");
    const unsigned char* h = dir.data() + at;
    const uint64_t name_length = u16(h + 28), extra_length = u16(h + 30), comment_length = u16(h + 32);
    DK_CHECK(dir.size() - at - 46 >= name_length + extra_length + comment_length, path_,
             ": zip central directory entry ", i, " runs past the directory");
    Entry entry;
    entry.name.assign(reinterpret_cast<const char*>(h + 46), name_length);
    entry.crc = u32(h + 16);
    uint64_t compressed = u32(h + 20);
    entry.size = u32(h + 24);
    entry.header_offset = u32(h + 42);
    read_zip64_extra(entry, compressed, h + 46 + name_length, extra_length);
    const std::string what = "zip entry " + quoted(entry.name);
    DK_CHECK((u16(h + 8) & 1u) == 0, path_, ": ", what, " is encrypted");
    DK_CHECK(u16(h + 10) == 0, path_, ": ", what, " is compressed (method ", u16(h + 10),
             "), but torch.save stores entries uncompressed: re-save the checkpoint with torch.save");
    DK_CHECK(compressed == entry.size, path_, ": ", what, " is stored but its compressed size ", compressed,
             " differs from its size ", entry.size);
    DK_CHECK(index_.emplace(entry.name, entries_.size()).second, path_, ": ", what, " appears twice");
    entries_.push_back(std::move(entry));
    at += 46 + name_length + extra_length + comment_length;
  }
}

// Sizes and offsets of 0xFFFFFFFF are in the ZIP64 extra field (id 1), in this order.
void Archive::read_zip64_extra(Entry& entry, uint64_t& compressed, const unsigned char* extra, uint64_t length) {
  for (uint64_t at = 0; length - at >= 4;) {
    const uint16_t id = u16(extra + at), field_length = u16(extra + at + 2);
    DK_CHECK(length - at - 4 >= field_length, path_, ": zip entry ", quoted(entry.name),
             " has a malformed extra field");
    if (id == 1) {
      const unsigned char* p = extra + at + 4;
      uint64_t left = field_length;
      for (uint64_t* value : {&entry.size, &compressed, &entry.header_offset}) {
        if (*value != 0xffffffffu) continue;
        DK_CHECK(left >= 8, path_, ": zip entry ", quoted(entry.name), " has a short ZIP64 extra field");
        *value = u64(p);
        p += 8;
        left -= 8;
      }
    }
    at += 4 + field_length;
  }
}

}  // namespace diffkd::zip

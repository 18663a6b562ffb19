// IDX reader (see idx.h). zlib's gzread reads gzip and plain files alike.

#include "data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "tensor/error.h"

namespace diffkd::data {

namespace {

// The whole (decompressed) content of a file.
std::vector<uint8_t> read_all(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file(gzopen(path.c_str(), "rb"), gzclose);
  DK_CHECK(file != nullptr, path, ": cannot open (", std::strerror(errno), ")");
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> chunk(1 << 20);
  while (true) {
    const int got = gzread(file.get(), chunk.data(), static_cast<unsigned>(chunk.size()));
    if (got < 0) {
      int code = 0;
      fail(path, ": read error (", gzerror(file.get(), &code), ")");
    }
    if (got == 0) break;
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  }
  return bytes;
}

uint32_t big_endian_u32(const uint8_t* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Checks the header of an unsigned-byte IDX file of the given rank; returns its sizes.
std::vector<int64_t> parse_header(const std::vector<uint8_t>& bytes, int rank,
                                  const std::string& path, const char* what) {
  char expected[16];
  std::snprintf(expected, sizeof expected, "0x000008%02x", rank);
  DK_CHECK(bytes.size() >= 4, path, ": not an IDX ", what, " file (", bytes.size(),
           " bytes; expected the magic ", expected, ")");
  const uint32_t magic = big_endian_u32(bytes.data());
  if (magic != (0x00000800u | static_cast<uint32_t>(rank))) {
    char found[16];
    std::snprintf(found, sizeof found, "0x%08x", magic);
    fail(path, ": not an IDX ", what, " file (magic ", found, ", expected ", expected, ")");
  }
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  DK_CHECK(bytes.size() >= header, path, ": truncated IDX header (", bytes.size(),
           " bytes, expected at least ", header, ")");
  std::vector<int64_t> sizes;
  // Up to three 32-bit sizes: their product can wrap around 64 bits (and then match the file).
  uint64_t total = 1;
  bool overflow = false;
  std::string announced;
  for (int d = 0; d < rank; ++d) {
    sizes.push_back(big_endian_u32(bytes.data() + 4 + 4 * d));
    overflow |= __builtin_mul_overflow(total, static_cast<uint64_t>(sizes.back()), &total);
    announced += (d > 0 ? " x " : "") + std::to_string(sizes.back());
  }
  announced += overflow ? " (over 2^64)" : " = " + std::to_string(total);
  const uint64_t found = bytes.size() - header;
  if (overflow) total = ~uint64_t{0};  // more than any file holds
  DK_CHECK(total == found, path, ": the header announces ", announced, " bytes of ", what,
           total > found ? ", the file is truncated at " : ", the file has ", found);
  return sizes;
}

}  // namespace

ImageDataset load_idx(const std::string& images_path, const std::string& labels_path) {
  const std::vector<uint8_t> image_bytes = read_all(images_path);
  const std::vector<int64_t> dims = parse_header(image_bytes, 3, images_path, "images");
  ImageDataset d;
  d.source = images_path;
  d.count = dims[0];
  d.height = dims[1];
  d.width = dims[2];
  DK_CHECK(d.height > 0 && d.width > 0, images_path, ": images of size ", d.height, "x", d.width);
  d.pixels.assign(image_bytes.begin() + 16, image_bytes.end());
  if (!labels_path.empty()) {
    const std::vector<uint8_t> label_bytes = read_all(labels_path);
    const std::vector<int64_t> n = parse_header(label_bytes, 1, labels_path, "labels");
    DK_CHECK(n[0] == d.count, labels_path, ": ", n[0], " labels for the ", d.count, " images of ",
             images_path);
    d.labels.assign(label_bytes.begin() + 8, label_bytes.end());
    d.num_classes = d.labels.empty() ? 0 : 1 + *std::max_element(d.labels.begin(), d.labels.end());
  }
  return d;
}

ImageDataset head(const ImageDataset& d, int64_t n) {
  ImageDataset out = d;
  out.count = std::min(n, d.count);
  out.pixels.resize(out.count * d.image_bytes());
  if (!out.labels.empty()) out.labels.resize(out.count);
  return out;
}

}  // namespace diffkd::data

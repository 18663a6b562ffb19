// CIFAR-10 binary reader (see cifar.h).

#include "data/cifar.h"

#include <filesystem>
#include <fstream>
#include <iterator>

#include "tensor/error.h"

namespace diffkd::data {

namespace {
constexpr int64_t kSide = 32, kPixels = 3 * kSide * kSide, kRecord = 1 + kPixels;
}

ImageDataset load_cifar10_batches(const std::vector<std::string>& files) {
  ImageDataset d;
  d.channels = 3;
  d.height = d.width = kSide;
  d.num_classes = 10;
  for (const std::string& path : files) {
    std::ifstream in(path, std::ios::binary);
    DK_CHECK(in.good(), path, ": cannot open CIFAR-10 batch");
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    DK_CHECK(!bytes.empty() && bytes.size() % kRecord == 0, path, ": ", bytes.size(),
             " bytes is not a whole number of 3073-byte CIFAR-10 records (1 label + 3072 pixels)");
    const int64_t records = static_cast<int64_t>(bytes.size()) / kRecord;
    for (int64_t r = 0; r < records; ++r) {
      const auto* rec = reinterpret_cast<const uint8_t*>(bytes.data()) + r * kRecord;
      DK_CHECK(rec[0] < 10, path, ": record ", r, " has label ", static_cast<int>(rec[0]), ", expected 0..9");
      d.labels.push_back(rec[0]);
      d.pixels.insert(d.pixels.end(), rec + 1, rec + kRecord);
    }
    d.count += records;
    d.source += (d.source.empty() ? "" : "+") + path;
  }
  return d;
}

ImageDataset load_cifar10(const std::string& folder, bool train) {
  std::vector<std::string> files;
  if (train)
    for (int i = 1; i <= 5; ++i) files.push_back((std::filesystem::path(folder) / ("data_batch_" + std::to_string(i) + ".bin")).string());
  else
    files.push_back((std::filesystem::path(folder) / "test_batch.bin").string());
  return load_cifar10_batches(files);
}

}  // namespace diffkd::data

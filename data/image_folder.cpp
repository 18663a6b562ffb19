// Image-folder datasets (see image_folder.h).

#include "data/image_folder.h"

#include <algorithm>
#include <filesystem>

#include "data/image_io.h"
#include "tensor/error.h"

namespace diffkd::data {

namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

std::vector<fs::path> sorted_entries(const fs::path& folder, bool directories) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(folder))
    if (directories ? e.is_directory() : (e.is_regular_file() && is_image(e.path()))) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// HWC pixels of one image into the dataset's CHW layout.
void append(ImageDataset& d, const Image& img, const fs::path& path) {
  if (d.count == 0) {
    d.height = img.height;
    d.width = img.width;
  }
  DK_CHECK(img.height == d.height && img.width == d.width, path.string(), ": image is ", img.width, "x", img.height,
           ", the folder's first image is ", d.width, "x", d.height);
  const size_t base = d.pixels.size();
  d.pixels.resize(base + img.pixels.size());
  for (int64_t c = 0; c < img.channels; ++c)
    for (int64_t i = 0; i < img.height * img.width; ++i)
      d.pixels[base + c * img.height * img.width + i] = img.pixels[i * img.channels + c];
  ++d.count;
}

}  // namespace

ImageDataset load_image_folder(const std::string& folder, int64_t channels) {
  DK_CHECK(fs::is_directory(folder), folder, ": not a folder");
  ImageDataset d;
  d.source = folder;
  d.channels = channels;
  const std::vector<fs::path> classes = sorted_entries(folder, true);
  if (classes.empty()) {
    for (const fs::path& p : sorted_entries(folder, false)) append(d, read_image(p.string(), channels), p);
  } else {
    for (size_t label = 0; label < classes.size(); ++label)
      for (const fs::path& p : sorted_entries(classes[label], false)) {
        append(d, read_image(p.string(), channels), p);
        d.labels.push_back(static_cast<int64_t>(label));
      }
    d.num_classes = static_cast<int64_t>(classes.size());
  }
  DK_CHECK(d.count > 0, folder, ": no .png, .jpg or .jpeg images found");
  return d;
}

}  // namespace diffkd::data

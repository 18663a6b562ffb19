// Named datasets and the synthetic set (see registry.h).

#include "data/registry.h"

#include <cstdlib>
#include <filesystem>
#include <vector>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "tensor/error.h"
#include "tensor/executable_dir.h"
#include "tensor/philox.h"

namespace diffkd::data {

namespace fs = std::filesystem;

namespace {

// $DIFFKD_DATA, else datasets/ in the source tree, or beside the executable in a relocatable build.
std::string data_root() {
  if (const char* env = std::getenv("DIFFKD_DATA")) return env;
  const std::string source_dir = DIFFKD_SOURCE_DIR;
  return (source_dir.empty() ? executable_dir() : source_dir) + "/datasets";
}

// The first existing file among name and name.gz in each folder.
std::string find_file(const std::vector<std::string>& folders, const std::string& name,
                      const std::string& dataset) {
  std::string tried;
  for (const std::string& folder : folders)
    for (const std::string& candidate : {name, name + ".gz"}) {
      const fs::path p = fs::path(folder) / candidate;
      if (fs::exists(p)) return p.string();
      tried += (tried.empty() ? "" : ", ") + p.string();
    }
  fail("dataset ", dataset, ": ", name, " not found (looked for ", tried,
       "; run scripts/setup.sh, or set DIFFKD_DATA)");
}

ImageDataset load_idx_pair(const std::vector<std::string>& folders, Split split,
                           const std::string& dataset) {
  const std::string prefix = split == Split::Train ? "train" : "t10k";
  return load_idx(find_file(folders, prefix + "-images-idx3-ubyte", dataset),
                  find_file(folders, prefix + "-labels-idx1-ubyte", dataset));
}

}  // namespace

ImageDataset load_dataset(const std::string& name, Split split) {
  if (name == "mnist") return load_idx_pair({data_root() + "/mnist"}, split, name);
  if (name == "fashion-mnist")
    return load_idx_pair({data_root() + "/fashion-mnist", "/usr/share/datasets/fashion-mnist"}, split, name);
  if (name == "synthetic") return synthetic_shapes(split == Split::Train ? 2048 : 512, split == Split::Train ? 1 : 2);
  if (name.rfind("synthetic:", 0) == 0) {  // N training images (and N / 4 test images): quick runs
    int64_t n = 0;
    try {
      n = std::stoll(name.substr(10));
    } catch (const std::exception&) {
    }
    DK_CHECK(n >= 4, "dataset '", name, "': expected synthetic:N with N >= 4 training images");
    return synthetic_shapes(split == Split::Train ? n : n / 4, split == Split::Train ? 1 : 2);
  }
  if (name.rfind("cifar10:", 0) == 0) return load_cifar10(name.substr(8), split == Split::Train);
  if (name.rfind("images:", 0) == 0 || name.rfind("images-rgb:", 0) == 0) {
    const bool rgb = name.rfind("images-rgb:", 0) == 0;
    return load_image_folder(name.substr(rgb ? 11 : 7), rgb ? 3 : 1);
  }
  if (fs::is_directory(name)) {
    if (fs::exists(fs::path(name) / "test_batch.bin")) return load_cifar10(name, split == Split::Train);
    return load_idx_pair({name}, split, name);
  }
  fail("dataset '", name, "': no such dataset or folder (expected mnist, fashion-mnist, synthetic[:N], cifar10:<folder>, "
       "images:<folder>, images-rgb:<folder>, or a folder of IDX files or CIFAR-10 batches)");
}

ImageDataset synthetic_shapes(int64_t count, uint64_t seed, int64_t size) {
  ImageDataset d;
  d.source = "synthetic(" + std::to_string(count) + ", seed " + std::to_string(seed) + ")";
  d.count = count;
  d.height = d.width = size;
  d.num_classes = 2;
  d.pixels.assign(count * size * size, 0);
  for (int64_t i = 0; i < count; ++i) {
    double u[4];
    philox::uniform_block(seed, 0, static_cast<uint64_t>(i), u);
    const int64_t label = i % 2;
    const double cx = size * (0.3 + 0.4 * u[0]), cy = size * (0.3 + 0.4 * u[1]);
    const double r = size * (0.12 + 0.12 * u[2]);
    for (int64_t y = 0; y < size; ++y)
      for (int64_t x = 0; x < size; ++x) {
        const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
        const bool inside = label == 0 ? dx * dx + dy * dy <= r * r
                                       : std::abs(dx) <= r && std::abs(dy) <= r;
        if (inside) d.pixels[(i * size + y) * size + x] = static_cast<uint8_t>(200 + 55 * u[3]);
      }
    d.labels.push_back(label);
  }
  return d;
}

}  // namespace diffkd::data

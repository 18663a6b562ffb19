// Seeded shuffling, flips, padding and scaling of batches (see loader.h).

#include "data/loader.h"

#include <algorithm>
#include <numeric>

#include "tensor/creation.h"
#include "tensor/error.h"
#include "tensor/philox.h"

namespace diffkd::data {

namespace {

// Philox streams of the loader, kept apart from the model's draws by their own keys.
constexpr uint64_t kShuffleStream = 0x5348554646ull;  // "SHUFF"
constexpr uint64_t kFlipStream = 0x464c4950ull;       // "FLIP"

// Writes image i of the dataset into out (row-major [C, S, S]) scaled to [-1, 1], centred in a
// canvas of side `size` filled with -1 (black), optionally mirrored left-right.
void write_image(const ImageDataset& d, int64_t i, int64_t size, bool flip, float* out) {
  const int64_t top = (size - d.height) / 2, left = (size - d.width) / 2;
  std::fill(out, out + d.channels * size * size, -1.0f);
  const uint8_t* src = d.image(i);
  for (int64_t c = 0; c < d.channels; ++c)
    for (int64_t y = 0; y < d.height; ++y)
      for (int64_t x = 0; x < d.width; ++x) {
        const int64_t sx = flip ? d.width - 1 - x : x;
        out[(c * size + top + y) * size + left + x] =
            static_cast<float>(src[(c * d.height + y) * d.width + sx]) / 127.5f - 1.0f;
      }
}

int64_t side_of(const ImageDataset& d, int64_t pad_to) {
  DK_CHECK(d.height == d.width, d.source, ": images are ", d.height, "x", d.width,
           "; only square images are supported");
  DK_CHECK(pad_to == 0 || pad_to >= d.height, "pad_to ", pad_to, " is smaller than the images (",
           d.height, "x", d.width, ") of ", d.source);
  return pad_to > 0 ? pad_to : d.height;
}

}  // namespace

BatchLoader::BatchLoader(const ImageDataset& dataset, const LoaderOptions& options)
    : dataset_(dataset), options_(options) {
  DK_CHECK(options.batch_size > 0, "loader: batch size must be positive, got ", options.batch_size);
  DK_CHECK(dataset.count >= options.batch_size, dataset.source, ": ", dataset.count,
           " images are fewer than one batch of ", options.batch_size);
  side_of(dataset, options.pad_to);
}

int64_t BatchLoader::image_size() const { return side_of(dataset_, options_.pad_to); }

// Fisher-Yates with Philox draws keyed by (seed, epoch): the permutation of an epoch never
// depends on what came before it.
void BatchLoader::shuffle_for(int64_t epoch) {
  order_.resize(dataset_.count);
  std::iota(order_.begin(), order_.end(), 0);
  const uint64_t key = options_.seed ^ (kShuffleStream * 0x9E3779B97F4A7C15ull);
  const uint64_t base = static_cast<uint64_t>(epoch) * static_cast<uint64_t>(dataset_.count);
  for (int64_t i = dataset_.count - 1; i > 0; --i) {
    const double u = philox::uniform_at(key, 0, base + static_cast<uint64_t>(i));
    const int64_t j = std::min<int64_t>(i, static_cast<int64_t>(u * static_cast<double>(i + 1)));
    std::swap(order_[i], order_[j]);
  }
  order_epoch_ = epoch;
}

void BatchLoader::seek(const LoaderPosition& p) {
  DK_CHECK(p.epoch >= 0 && p.index >= 0 && p.index <= dataset_.count, "loader: cannot seek to epoch ",
           p.epoch, " index ", p.index, " of a dataset of ", dataset_.count);
  position_ = p;
}

BatchLoader::Batch BatchLoader::next(int64_t first, int64_t count) {
  DK_CHECK(first >= 0 && count >= 0 && first + count <= options_.batch_size, "loader: rows [", first,
           ", ", first + count, ") of a batch of ", options_.batch_size);
  if (position_.index + options_.batch_size > dataset_.count) position_ = {position_.epoch + 1, 0};
  if (order_epoch_ != position_.epoch) shuffle_for(position_.epoch);
  const int64_t b = count, side = image_size(), c = dataset_.channels;
  Batch batch;
  batch.images = Tensor::empty({b, c, side, side});
  float* out = batch.images.data<float>();
  std::vector<double> labels;
  const uint64_t flip_key = options_.seed ^ (kFlipStream * 0x9E3779B97F4A7C15ull);
  for (int64_t k = 0; k < b; ++k) {
    const int64_t slot = position_.index + first + k;
    const int64_t i = order_[slot];
    const uint64_t draw = static_cast<uint64_t>(position_.epoch) * dataset_.count + slot;
    const bool flip = options_.horizontal_flip && philox::uniform_at(flip_key, 0, draw) < 0.5;
    write_image(dataset_, i, side, flip, out + k * c * side * side);
    if (!dataset_.labels.empty()) labels.push_back(static_cast<double>(dataset_.labels[i]));
  }
  if (!labels.empty()) batch.labels = from_vector(labels, {b}, DType::I64);
  position_.index += options_.batch_size;
  return batch;
}

Tensor images_in_order(const ImageDataset& dataset, int64_t first, int64_t n, int64_t pad_to) {
  DK_CHECK(first >= 0 && n >= 0 && first + n <= dataset.count, dataset.source, ": images [", first,
           ", ", first + n, ") are out of range (", dataset.count, " images)");
  const int64_t side = side_of(dataset, pad_to), c = dataset.channels;
  Tensor out = Tensor::empty({n, c, side, side});
  for (int64_t k = 0; k < n; ++k)
    write_image(dataset, first + k, side, false, out.data<float>() + k * c * side * side);
  return out;
}

}  // namespace diffkd::data

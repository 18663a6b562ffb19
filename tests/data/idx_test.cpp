// IDX reading, plain and gzipped, and its one-line errors; the loader's seeded order, flips,
// padding and exact resumption; PNG text chunks.

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "autograd/ops.h"
#include "data/idx.h"
#include "data/image_io.h"
#include "data/loader.h"
#include "data/registry.h"

namespace diffkd::testing {
namespace {

namespace fs = std::filesystem;

std::string temp_file(const std::string& name) { return (fs::path(::testing::TempDir()) / name).string(); }

std::string idx_bytes(int rank, const std::vector<uint32_t>& dims, const std::string& payload) {
  std::string s = {0, 0, 8, static_cast<char>(rank)};
  for (uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((d >> shift) & 0xff));
  return s + payload;
}

void write_plain(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(f);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Idx, ReadsPlainAndGzippedFilesAlike) {
  std::string pixels;
  for (int i = 0; i < 3 * 2 * 4; ++i) pixels.push_back(static_cast<char>(i * 10));
  const std::string images = idx_bytes(3, {3, 2, 4}, pixels);
  const std::string labels = idx_bytes(1, {3}, std::string("\x07\x00\x02", 3));
  write_plain(temp_file("img.idx"), images);
  write_gz(temp_file("lbl.idx.gz"), labels);
  const data::ImageDataset d = data::load_idx(temp_file("img.idx"), temp_file("lbl.idx.gz"));
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.height, 2);
  EXPECT_EQ(d.width, 4);
  EXPECT_EQ(d.pixels[9], 90);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{7, 0, 2}));
  EXPECT_EQ(d.num_classes, 8);
  write_gz(temp_file("img.idx.gz"), images);
  EXPECT_EQ(data::load_idx(temp_file("img.idx.gz")).pixels, d.pixels);
}

TEST(Idx, MalformedFilesGetOneLineNamingFileExpectedAndFound) {
  const std::string path = temp_file("bad.idx");
  write_plain(path, idx_bytes(1, {3}, "abc"));  // a labels file given as images
  EXPECT_EQ(error_of([&] { data::load_idx(path); }),
            path + ": not an IDX images file (magic 0x00000801, expected 0x00000803)");
  write_plain(path, idx_bytes(3, {10, 28, 28}, std::string(100, 'x')));
  EXPECT_EQ(error_of([&] { data::load_idx(path); }),
            path + ": the header announces 10 x 28 x 28 = 7840 bytes of images, the file is truncated at 100");
  // Sizes whose product wraps around in 64 bits (2^32 - 1 cubed) are still a clear error.
  write_plain(path, idx_bytes(3, {0xffffffffu, 0xffffffffu, 0xffffffffu}, std::string(100, 'x')));
  EXPECT_EQ(error_of([&] { data::load_idx(path); }),
            path + ": the header announces 4294967295 x 4294967295 x 4294967295 (over 2^64) bytes of images, "
                   "the file is truncated at 100");
  write_plain(path, std::string("\x00\x00", 2));
  EXPECT_EQ(error_of([&] { data::load_idx(path); }),
            path + ": not an IDX images file (2 bytes; expected the magic 0x00000803)");
  write_plain(path, idx_bytes(3, {2, 1, 1}, "ab"));
  const std::string labels = temp_file("labels3.idx");
  write_plain(labels, idx_bytes(1, {3}, "abc"));
  EXPECT_EQ(error_of([&] { data::load_idx(path, labels); }),
            labels + ": 3 labels for the 2 images of " + path);
  EXPECT_NE(error_of([&] { data::load_idx(temp_file("missing.idx")); }).find("missing.idx: cannot open"),
            std::string::npos);
}

TEST(Loader, EachEpochVisitsEveryImageOnceInASeededOrder) {
  const data::ImageDataset d = data::synthetic_shapes(40, 3);
  data::BatchLoader a(d, {8, 5, false, 0}), b(d, {8, 5, false, 0}), other(d, {8, 6, false, 0});
  std::multiset<double> sums;
  bool differs = false;
  for (int i = 0; i < 5; ++i) {
    const auto ba = a.next(), bb = b.next(), bo = other.next();
    EXPECT_EQ(ba.images.to_vector(), bb.images.to_vector());
    differs |= ba.labels.to_vector() != bo.labels.to_vector();
    for (int k = 0; k < 8; ++k) sums.insert(sum(narrow(ba.images, 0, k, 1)).item());
  }
  EXPECT_TRUE(differs);
  std::multiset<double> expected;
  const Tensor all = data::images_in_order(d, 0, 40);
  for (int k = 0; k < 40; ++k) expected.insert(sum(narrow(all, 0, k, 1)).item());
  EXPECT_EQ(sums, expected);
  EXPECT_EQ(a.position().epoch, 0);
  a.next();
  EXPECT_EQ(a.position().epoch, 1);
}

TEST(Loader, SeekingToASavedPositionReproducesTheBatches) {
  const data::ImageDataset d = data::synthetic_shapes(30, 4);
  data::BatchLoader a(d, {7, 1, true, 32});
  for (int i = 0; i < 5; ++i) a.next();  // crosses an epoch boundary
  const data::LoaderPosition saved = a.position();
  const auto expected = a.next();
  data::BatchLoader b(d, {7, 1, true, 32});
  b.seek(saved);
  EXPECT_EQ(b.next().images.to_vector(), expected.images.to_vector());
  EXPECT_EQ(expected.images.shape(), (Shape{7, 1, 32, 32}));
  // Padding is black (-1) around the centred 28x28 image.
  EXPECT_EQ(expected.images.to_vector()[0], -1.0);
}

TEST(ImageIo, PngCarriesItsTextChunks) {
  const std::string path = temp_file("grid.png");
  Generator gen(0);
  const data::Image grid = data::make_grid(clamp(randn({5, 1, 4, 4}, gen), -1, 1), 3);
  EXPECT_EQ(grid.width, 3 * 6 + 2);
  EXPECT_EQ(grid.height, 2 * 6 + 2);
  data::write_png(path, grid, {{"sampler", "ddim 50 steps"}, {"seed", "7"}});
  const auto text = data::read_png_text(path);
  EXPECT_EQ(text.at("sampler"), "ddim 50 steps");
  EXPECT_EQ(text.at("seed"), "7");
  const data::Image back = data::read_image(path, 1);
  EXPECT_EQ(back.pixels, grid.pixels);
}

}  // namespace
}  // namespace diffkd::testing

#include "data/cifar.h"
#include "data/image_folder.h"

namespace diffkd::testing {
namespace {

TEST(Cifar, RecordsAreLabelThenPlanarPixelsAndBadSizesAreNamed) {
  std::string bytes;
  for (int r = 0; r < 2; ++r) {
    bytes.push_back(static_cast<char>(r == 0 ? 3 : 9));
    for (int i = 0; i < 3072; ++i) bytes.push_back(static_cast<char>((i + r) % 251));
  }
  const std::string path = temp_file("data_batch_x.bin");
  write_plain(path, bytes);
  const data::ImageDataset d = data::load_cifar10_batches({path});
  EXPECT_EQ(d.count, 2);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{3, 9}));
  EXPECT_EQ(d.channels, 3);
  EXPECT_EQ(d.image(1)[1024], (1024 + 1) % 251);  // first green pixel of record 1
  write_plain(path, bytes.substr(0, 5000));
  EXPECT_EQ(error_of([&] { data::load_cifar10_batches({path}); }),
            path + ": 5000 bytes is not a whole number of 3073-byte CIFAR-10 records (1 label + 3072 pixels)");
  bytes[0] = 12;
  write_plain(path, bytes);
  EXPECT_EQ(error_of([&] { data::load_cifar10_batches({path}); }), path + ": record 0 has label 12, expected 0..9");
}

TEST(ImageFolder, SubfoldersAreClassesAndSizesMustAgree) {
  const fs::path root = fs::path(::testing::TempDir()) / "folder_set";
  fs::remove_all(root);
  fs::create_directories(root / "cats");
  fs::create_directories(root / "dogs");
  Generator gen(1);
  const Tensor imgs = clamp(randn({3, 1, 5, 5}, gen), -1, 1);
  data::write_png((root / "cats" / "a.png").string(), data::tensor_image(imgs, 0));
  data::write_png((root / "dogs" / "b.png").string(), data::tensor_image(imgs, 1));
  data::write_png((root / "dogs" / "c.png").string(), data::tensor_image(imgs, 2));
  const data::ImageDataset d = data::load_image_folder(root.string(), 1);
  EXPECT_EQ(d.count, 3);
  EXPECT_EQ(d.labels, (std::vector<int64_t>{0, 1, 1}));
  EXPECT_EQ(d.pixels[0], data::to_byte(imgs.to_vector()[0]));
  data::write_png((root / "dogs" / "d.png").string(), data::tensor_image(clamp(randn({1, 1, 4, 4}, gen), -1, 1), 0));
  EXPECT_NE(error_of([&] { data::load_image_folder(root.string(), 1); }).find("d.png: image is 4x4, the folder's first image is 5x5"),
            std::string::npos);
}

}  // namespace
}  // namespace diffkd::testing

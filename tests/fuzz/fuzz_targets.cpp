// The fuzz targets (see fuzz_targets.h).

#include "tests/fuzz/fuzz_targets.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "apps/sampler_spec.h"
#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/image_io.h"
#include "nn/safetensors.h"
#include "nn/unet_config.h"
#include "tensor/error.h"

namespace diffkd::fuzz {

namespace fs = std::filesystem;

namespace {

fs::path& scratch_setting() {
  static fs::path folder;
  return folder;
}

fs::path scratch_folder() {
  fs::path& folder = scratch_setting();
  if (folder.empty()) folder = fs::temp_directory_path() / ("diffkd-fuzz-" + std::to_string(::getpid()));
  fs::create_directories(folder);
  return folder;
}

// Writes `bytes` to `name` in the scratch folder (replacing what was there) and returns its path.
std::string write_scratch(const std::string& name, std::string_view bytes) {
  const fs::path path = scratch_folder() / name;
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("fuzz: cannot write " + path.string());
  return path.string();
}

// Splits after a 2-byte header: byte 0 carries flags, byte 1 where the rest divides into two parts.
struct Split {
  unsigned flags = 0;
  std::string_view first, second;
};
Split split(std::string_view bytes) {
  Split s;
  if (bytes.size() < 2) {
    s.first = bytes;
    return s;
  }
  s.flags = static_cast<unsigned char>(bytes[0]);
  const std::string_view rest = bytes.substr(2);
  const size_t at = rest.size() * static_cast<unsigned char>(bytes[1]) / 255;
  s.first = rest.substr(0, at);
  s.second = rest.substr(at);
  return s;
}

// Runs a parser; a diffkd::Error is the clean refusal every malformed input must get.
template <typename F>
void refused_cleanly_or_accepted(F parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

void safetensors_target(std::string_view bytes) {
  const std::string path = write_scratch("model.safetensors", bytes);
  refused_cleanly_or_accepted([&] { safetensors::load(path); });
  refused_cleanly_or_accepted([&] { safetensors::load_metadata(path); });
}

// Flag bit 0: a labels file beside the images (the two parts).
void idx_target(std::string_view bytes) {
  const Split s = split(bytes);
  const std::string images = write_scratch("images.idx", s.first);
  if (s.flags & 1) {
    const std::string labels = write_scratch("labels.idx", s.second);
    refused_cleanly_or_accepted([&] { data::load_idx(images, labels); });
  } else {
    refused_cleanly_or_accepted([&] { data::load_idx(images); });
  }
}

void cifar_target(std::string_view bytes) {
  const std::string path = write_scratch("data_batch_1.bin", bytes);
  refused_cleanly_or_accepted([&] { data::load_cifar10_batches({path}); });
}

// A folder of up to two images (the parts: a.png, and b.jpg when flag bit 1 is set), read as grey
// (flag bit 0 clear) or RGB; the PNG's text chunks too.
void image_folder_target(std::string_view bytes) {
  const Split s = split(bytes);
  const fs::path folder = scratch_folder() / "images";
  fs::remove_all(folder);
  const std::string png = write_scratch("images/a.png", (s.flags & 2) ? s.first : bytes);
  if (s.flags & 2) write_scratch("images/b.jpg", s.second);
  refused_cleanly_or_accepted([&] { data::load_image_folder(folder.string(), (s.flags & 1) ? 3 : 1); });
  refused_cleanly_or_accepted([&] { data::read_png_text(png); });
}

void sampler_spec_target(std::string_view bytes) {
  refused_cleanly_or_accepted([&] { apps::parse_sampler_spec(std::string(bytes), 2, "fuzz: --samplers"); });
}

void unet_config_target(std::string_view bytes) {
  refused_cleanly_or_accepted([&] { nn::UNetConfig::from_json(std::string(bytes), "fuzz.json"); });
}

}  // namespace

const std::vector<FuzzTarget>& fuzz_targets() {
  static const std::vector<FuzzTarget> targets{
      {"safetensors", safetensors_target},   {"idx", idx_target},
      {"cifar", cifar_target},               {"image_folder", image_folder_target},
      {"sampler_spec", sampler_spec_target}, {"unet_config", unet_config_target},
  };
  return targets;
}

const FuzzTarget& fuzz_target(const std::string& name) {
  for (const FuzzTarget& t : fuzz_targets())
    if (t.name == name) return t;
  throw std::invalid_argument("fuzz: no target " + name);
}

void set_scratch_folder(const fs::path& folder) { scratch_setting() = folder; }

void remove_scratch_folder() {
  std::error_code ignored;
  if (!scratch_setting().empty()) fs::remove_all(scratch_setting(), ignored);
}

}  // namespace diffkd::fuzz

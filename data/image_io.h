#pragma once
// Images to and from disk: PNG writing (stb_image_write) with optional tEXt chunks carrying the
// generation parameters, grids of samples, and reading PNG/JPEG (stb_image). Writes are atomic.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::data {

// 8-bit pixels in HWC order (1 = grey, 3 = RGB).
struct Image {
  int64_t width = 0, height = 0, channels = 1;
  std::vector<uint8_t> pixels;
};

// [-1, 1] -> 0..255 (rounded, clamped).
uint8_t to_byte(float v);

// Images [N, C, H, W] in [-1, 1] tiled into a grid with `columns` columns and a 2-pixel border.
Image make_grid(const Tensor& images, int64_t columns);
// Image i of [N, C, H, W] in [-1, 1].
Image tensor_image(const Tensor& images, int64_t i);

// Writes a PNG; `text` becomes tEXt chunks (keyword -> value, e.g. the sampler's parameters).
void write_png(const std::string& path, const Image& image,
               const std::map<std::string, std::string>& text = {});
// The tEXt chunks of a PNG file (for tests and `diffkd info`).
std::map<std::string, std::string> read_png_text(const std::string& path);

// Decodes a PNG or JPEG file (stb_image), forcing `channels` (1 or 3).
Image read_image(const std::string& path, int64_t channels);

}  // namespace diffkd::data

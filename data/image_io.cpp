// PNG/JPEG reading and writing (see image_io.h). stb writes the PNG into memory; tEXt chunks are
// spliced in right after IHDR (PNG spec 11.3.4.3: keyword, NUL, Latin-1 text; CRC over type and
// data), then the file is written atomically.

#include "data/image_io.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>

#include "nn/atomic_file.h"
#include "tensor/error.h"

namespace diffkd::data {

uint8_t to_byte(float v) {
  const float scaled = std::round((v + 1.0f) * 127.5f);
  return static_cast<uint8_t>(std::clamp(scaled, 0.0f, 255.0f));
}

namespace {

void copy_into(const Tensor& images, int64_t i, Image& dst, int64_t x0, int64_t y0) {
  const int64_t c = images.size(1), h = images.size(2), w = images.size(3);
  const float* src = images.data<float>() + i * c * h * w;
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x)
      for (int64_t ch = 0; ch < c; ++ch)
        dst.pixels[((y0 + y) * dst.width + x0 + x) * dst.channels + ch] = to_byte(src[(ch * h + y) * w + x]);
}

Tensor checked_images(const Tensor& images) {
  DK_CHECK(images.dim() == 4 && (images.size(1) == 1 || images.size(1) == 3),
           "image grid: expected images [N, 1 or 3, H, W], got ", shape_str(images.shape()));
  return images.dtype() == DType::F32 && images.is_contiguous() ? images : images.clone_data();
}

void append_u32(std::string& s, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::string text_chunk(const std::string& keyword, const std::string& value) {
  DK_CHECK(!keyword.empty() && keyword.size() < 80 && keyword.find('\0') == std::string::npos,
           "png: invalid tEXt keyword '", keyword, "'");
  const std::string body = "tEXt" + keyword + std::string(1, '\0') + value;
  std::string chunk;
  append_u32(chunk, static_cast<uint32_t>(body.size() - 4));
  chunk += body;
  append_u32(chunk, static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
  return chunk;
}

}  // namespace

Image make_grid(const Tensor& images_in, int64_t columns) {
  const Tensor images = checked_images(images_in);
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3), pad = 2;
  DK_CHECK(n > 0 && columns > 0, "image grid: ", n, " images in ", columns, " columns");
  const int64_t cols = std::min(columns, n), rows = (n + cols - 1) / cols;
  Image grid;
  grid.channels = images.size(1);
  grid.width = cols * (w + pad) + pad;
  grid.height = rows * (h + pad) + pad;
  grid.pixels.assign(grid.width * grid.height * grid.channels, 0);
  for (int64_t i = 0; i < n; ++i)
    copy_into(images, i, grid, pad + (i % cols) * (w + pad), pad + (i / cols) * (h + pad));
  return grid;
}

Image tensor_image(const Tensor& images_in, int64_t i) {
  const Tensor images = checked_images(images_in);
  Image img;
  img.channels = images.size(1);
  img.height = images.size(2);
  img.width = images.size(3);
  img.pixels.assign(img.width * img.height * img.channels, 0);
  copy_into(images, i, img, 0, 0);
  return img;
}

void write_png(const std::string& path, const Image& image,
               const std::map<std::string, std::string>& text) {
  std::string png;
  auto sink = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), size);
  };
  const int ok = stbi_write_png_to_func(sink, &png, static_cast<int>(image.width),
                                        static_cast<int>(image.height), static_cast<int>(image.channels),
                                        image.pixels.data(), static_cast<int>(image.width * image.channels));
  DK_CHECK(ok != 0 && png.size() > 33, path, ": PNG encoding failed");
  std::string chunks;
  for (const auto& [keyword, value] : text) chunks += text_chunk(keyword, value);
  png.insert(33, chunks);  // 8-byte signature + 25-byte IHDR chunk
  write_file_atomically(path, png);
}

std::map<std::string, std::string> read_png_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  DK_CHECK(in.good(), path, ": cannot open");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  DK_CHECK(bytes.size() >= 8 && bytes.compare(1, 3, "PNG") == 0, path, ": not a PNG file");
  std::map<std::string, std::string> text;
  size_t pos = 8;
  while (pos + 12 <= bytes.size()) {
    uint32_t length = 0;
    for (int k = 0; k < 4; ++k) length = (length << 8) | static_cast<uint8_t>(bytes[pos + k]);
    DK_CHECK(pos + 12 + length <= bytes.size(), path, ": truncated PNG chunk at byte ", pos);
    const std::string type = bytes.substr(pos + 4, 4);
    if (type == "tEXt") {
      const std::string body = bytes.substr(pos + 8, length);
      const size_t nul = body.find('\0');
      DK_CHECK(nul != std::string::npos, path, ": malformed tEXt chunk");
      text[body.substr(0, nul)] = body.substr(nul + 1);
    }
    if (type == "IEND") break;
    pos += 12 + length;
  }
  return text;
}

Image read_image(const std::string& path, int64_t channels) {
  DK_CHECK(channels == 1 || channels == 3, "read_image: channels must be 1 or 3, got ", channels);
  int w = 0, h = 0, original = 0;
  unsigned char* data = stbi_load(path.c_str(), &w, &h, &original, static_cast<int>(channels));
  DK_CHECK(data != nullptr, path, ": cannot decode image (", stbi_failure_reason(), ")");
  Image img;
  img.width = w;
  img.height = h;
  img.channels = channels;
  img.pixels.assign(data, data + static_cast<size_t>(w) * h * channels);
  stbi_image_free(data);
  return img;
}

}  // namespace diffkd::data

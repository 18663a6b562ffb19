#pragma once
// IDX files (LeCun et al.'s MNIST format, also Fashion-MNIST), plain or gzip-compressed: a 4-byte
// magic (0, 0, type 0x08 = unsigned byte, rank), `rank` big-endian u32 sizes, then the bytes.
// Images are rank 3 [N, H, W], labels rank 1 [N]. Every malformation is reported in one line
// naming the file, what was expected and what was found.

#include <string>

#include "data/dataset.h"

namespace diffkd::data {

// labels_path may be empty for an unlabelled set.
ImageDataset load_idx(const std::string& images_path, const std::string& labels_path = "");

}  // namespace diffkd::data

#pragma once
// A folder of PNG/JPEG images (stb_image), in file-name order, all of one size. If the folder
// holds sub-folders instead, each sub-folder is a class (sorted names -> labels 0, 1, ...), as
// torchvision's ImageFolder. Images are converted to `channels` (1 grey or 3 RGB).

#include <string>

#include "data/dataset.h"

namespace diffkd::data {

ImageDataset load_image_folder(const std::string& folder, int64_t channels);

}  // namespace diffkd::data

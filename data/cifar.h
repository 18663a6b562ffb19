#pragma once
// CIFAR-10 binary batches (Krizhevsky 2009): files of 3,073-byte records, one label byte
// (0..9) then 3,072 pixel bytes as three 32x32 planes (R, G, B) in row-major order, which is
// already our NCHW layout. Training split: data_batch_1.bin .. data_batch_5.bin; test split:
// test_batch.bin. A file whose size is not a whole number of records, or a label above 9, is
// reported with the file and the offending record.

#include <string>

#include "data/dataset.h"

namespace diffkd::data {

ImageDataset load_cifar10_batches(const std::vector<std::string>& files);
// The train or test files of a CIFAR-10 binary folder (cifar-10-batches-bin).
ImageDataset load_cifar10(const std::string& folder, bool train);

}  // namespace diffkd::data

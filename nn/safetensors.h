#pragma once
// safetensors checkpoints (https://github.com/huggingface/safetensors), written and read by our
// own code so that diffkd and PyTorch (`safetensors.torch.save_file` / `load_file`) exchange
// weights without pickle:
//   u64 little-endian N | N bytes of UTF-8 JSON header | byte buffer
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the byte buffer) and may hold "__metadata__": {string: string}. Data is row-major,
// little-endian, and the buffer is covered by the tensors exactly, without gaps or overlaps.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::safetensors {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

struct Contents {
  std::string path;      // the file it was loaded from, for error messages
  NamedTensors tensors;  // fresh contiguous CPU tensors, in the order of their data offsets
  Metadata metadata;

  // The tensor of that name; throws diffkd::Error naming the file and the names it does have.
  const Tensor& at(const std::string& name) const;
  bool contains(const std::string& name) const;
};

// Tensor name -> a narrower type to store it as: "F16" (a float tensor, rounded to nearest even)
// or "U8" (an integer tensor with values in 0..255). Loading widens them back (F32 / I64).
using StoredTypes = std::map<std::string, std::string>;

// Writes the tensors (any strides, any device) in F32/F64/I64, or as `narrow` says, their data
// ordered by name, with the header padded by spaces so that the data starts 8-byte aligned. The
// file is replaced atomically (nn/atomic_file.h). Names must be unique and not "__metadata__".
void save(const std::string& path, const NamedTensors& tensors, const Metadata& metadata = {},
          const StoredTypes& narrow = {});

// Reads and validates a file; every problem is a one-line diffkd::Error starting with the path.
// F32, F64 and I64 load as they are; F16 and BF16 (common in PyTorch checkpoints) widen to F32,
// and BOOL, U8, I8, I16 and I32 widen to I64.
Contents load(const std::string& path);

// The header's __metadata__ alone (validated as load does), without reading the tensors: what a
// caller needs to decide whether a file fits before it loads the weights.
Metadata load_metadata(const std::string& path);

}  // namespace diffkd::safetensors

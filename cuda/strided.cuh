#pragma once
// Strided addressing inside kernels: element i of an output (row-major over its shape) sits at
// offsets[k] of operand k, computed from the shape and each operand's element strides (broadcast
// dims have stride 0). Shapes are passed by value in kernel arguments (at most kMaxDims dims,
// after merging the dims that every operand walks as one); when every operand is contiguous the
// offsets are i itself and no division happens, and when every index and offset fits 31 bits the
// divisions are 32-bit (a 64-bit division is several times the instructions on a GPU).
// DK_HOST_DEVICE: tests/cuda/strided_index_test.cpp checks the addressing on the CPU.

#include <cstdint>
#include <initializer_list>

#include "tensor/host_device.h"
#include "tensor/tensor.h"

namespace diffkd::cuda {

constexpr int kMaxDims = 8;

template <int N>
struct StridedIndex {
  int ndim = 0;
  bool contiguous = true;
  bool narrow = true;  // every element index and operand offset is below 2^31
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  DK_HOST_DEVICE void offsets(int64_t i, int64_t (&off)[N]) const {
    if (contiguous) {
      for (int k = 0; k < N; ++k) off[k] = i;
      return;
    }
    if (narrow) {
      uint32_t rest = static_cast<uint32_t>(i);
      int32_t narrow_off[N] = {};
      for (int d = ndim - 1; d >= 0; --d) {
        const uint32_t size = static_cast<uint32_t>(sizes[d]);
        const int32_t index = static_cast<int32_t>(rest % size);
        rest /= size;
        for (int k = 0; k < N; ++k) narrow_off[k] += index * static_cast<int32_t>(strides[k][d]);
      }
      for (int k = 0; k < N; ++k) off[k] = narrow_off[k];
      return;
    }
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t index = i % sizes[d];
      i /= sizes[d];
      for (int k = 0; k < N; ++k) off[k] += index * strides[k][d];
    }
  }
};

// The addressing of operands laid over `shape` (each with its own strides). Dims of size 1 are
// dropped and neighbouring dims that every operand steps through as one are merged; throws when
// more than kMaxDims remain.
template <int N>
StridedIndex<N> strided_index(const char* op, const Shape& shape, std::initializer_list<const Shape*> operand_strides) {
  StridedIndex<N> s;
  const Shape contiguous = contiguous_strides(shape);
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> strides(N);
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) sizes.push_back(shape[i]);
  int k = 0;
  for (const Shape* st : operand_strides) {
    if (*st != contiguous) s.contiguous = false;
    for (size_t i = 0; i < shape.size(); ++i)
      if (shape[i] != 1) strides[k].push_back((*st)[i]);
    ++k;
  }
  // Merge dim d into d - 1 where each operand's stride of d - 1 is its stride of d times size d.
  for (size_t d = sizes.size(); d-- > 1;) {
    bool mergeable = true;
    for (int j = 0; j < N; ++j) mergeable = mergeable && strides[j][d - 1] == strides[j][d] * sizes[d];
    if (!mergeable) continue;
    sizes[d - 1] *= sizes[d];
    sizes.erase(sizes.begin() + static_cast<std::ptrdiff_t>(d));
    for (int j = 0; j < N; ++j) {
      strides[j][d - 1] = strides[j][d];
      strides[j].erase(strides[j].begin() + static_cast<std::ptrdiff_t>(d));
    }
  }
  DK_CHECK(sizes.size() <= static_cast<size_t>(kMaxDims), op, ": operands of shape ", shape_str(shape), " need ",
           sizes.size(), " strided dims after merging; the CUDA kernels take ", kMaxDims);
  constexpr int64_t kNarrowLimit = int64_t{1} << 31;
  int64_t numel = 1;
  s.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < s.ndim; ++d) {
    s.sizes[d] = sizes[d];
    numel *= sizes[d];
  }
  s.narrow = numel < kNarrowLimit;
  for (int j = 0; j < N; ++j) {
    int64_t reach = 0;  // the largest |offset|
    for (int d = 0; d < s.ndim; ++d) {
      s.strides[j][d] = strides[j][d];
      reach += (sizes[d] - 1) * (strides[j][d] < 0 ? -strides[j][d] : strides[j][d]);
    }
    s.narrow = s.narrow && reach < kNarrowLimit;
  }
  return s;
}

}  // namespace diffkd::cuda

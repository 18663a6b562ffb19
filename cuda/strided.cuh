#pragma once
// Strided addressing inside kernels: element i of an output (row-major over its shape) sits at
// offsets[k] of operand k, computed from the shape and each operand's element strides (broadcast
// dims have stride 0). Shapes are passed by value in kernel arguments (at most kMaxDims dims);
// when every operand is contiguous the offsets are i itself and no division happens.

#include <cstdint>
#include <initializer_list>

#include "tensor/tensor.h"

namespace diffkd::cuda {

constexpr int kMaxDims = 8;

template <int N>
struct StridedIndex {
  int ndim = 0;
  bool contiguous = true;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};

  __device__ void offsets(int64_t i, int64_t (&off)[N]) const {
    if (contiguous) {
      for (int k = 0; k < N; ++k) off[k] = i;
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
// dropped; throws when more than kMaxDims remain.
template <int N>
StridedIndex<N> strided_index(const char* op, const Shape& shape, std::initializer_list<const Shape*> operand_strides) {
  StridedIndex<N> s;
  const Shape contiguous = contiguous_strides(shape);
  int k = 0;
  for (const Shape* st : operand_strides) {
    if (*st != contiguous) s.contiguous = false;
    int d = 0;
    for (size_t i = 0; i < shape.size(); ++i) {
      if (shape[i] == 1) continue;
      DK_CHECK(d < kMaxDims, op, ": ", shape.size(), "-dimensional operands exceed the CUDA kernels' ", kMaxDims, " dims");
      s.strides[k][d++] = (*st)[i];
    }
    ++k;
  }
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] != 1) s.sizes[s.ndim++] = shape[i];
  return s;
}

}  // namespace diffkd::cuda

#pragma once
// The loop under every elementwise CPU kernel: N operands of one shape, each with its own element
// strides (0 on broadcast dims). Dimensions that are contiguous in every operand are merged, so a
// contiguous or simply broadcast operation becomes one long inner run that the compiler
// vectorises. The iteration space is split into equal linear ranges across OpenMP threads.

#include <omp.h>

#include <array>
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::cpu_impl {

// Below this many elements a kernel runs on one thread: spawning costs more than it saves.
constexpr int64_t kParallelGrain = 32768;

template <size_t N>
struct StridedLoop {
  std::vector<int64_t> shape;                     // merged dims, innermost last
  std::array<std::vector<int64_t>, N> strides;    // per operand, in elements
};

template <size_t N>
StridedLoop<N> merge_dims(const Shape& shape, const std::array<const Shape*, N>& strides) {
  StridedLoop<N> loop;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool mergeable = !loop.shape.empty();
    for (size_t k = 0; k < N && mergeable; ++k)
      mergeable = loop.strides[k].back() == (*strides[k])[d] * shape[d];
    if (mergeable) {
      loop.shape.back() *= shape[d];
      for (size_t k = 0; k < N; ++k) loop.strides[k].back() = (*strides[k])[d];
    } else {
      loop.shape.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) loop.strides[k].push_back((*strides[k])[d]);
    }
  }
  if (loop.shape.empty()) {  // a scalar, or all dims of size 1
    loop.shape.push_back(1);
    for (size_t k = 0; k < N; ++k) loop.strides[k].push_back(0);
  }
  return loop;
}

// Calls run(ptrs, inner_strides, n) for runs of n elements along the innermost merged dim;
// ptrs[k] points (typed T) at operand k's first element of the run.
template <typename T, size_t N, typename Run>
void for_each_run(const Shape& shape, const std::array<const Shape*, N>& strides,
                  const std::array<T*, N>& base, Run run) {
  if (numel_of(shape) == 0) return;  // an empty tensor: nothing to visit (and no inner run)
  const StridedLoop<N> loop = merge_dims<N>(shape, strides);
  const int64_t ndim = static_cast<int64_t>(loop.shape.size());
  const int64_t inner = loop.shape.back();
  const int64_t outer = numel_of(loop.shape) / inner;
  const int64_t total = outer * inner;
  std::array<int64_t, N> inner_strides;
  for (size_t k = 0; k < N; ++k) inner_strides[k] = loop.strides[k].back();

  auto range = [&](int64_t begin, int64_t end) {
    // Decode `begin` into a multi-index once, then walk forward.
    std::vector<int64_t> idx(ndim);
    int64_t rem = begin;
    for (int64_t d = ndim - 1; d >= 0; --d) {
      idx[d] = rem % loop.shape[d];
      rem /= loop.shape[d];
    }
    int64_t pos = begin;
    while (pos < end) {
      std::array<T*, N> p;
      for (size_t k = 0; k < N; ++k) {
        int64_t off = 0;
        for (int64_t d = 0; d < ndim; ++d) off += idx[d] * loop.strides[k][d];
        p[k] = base[k] + off;
      }
      const int64_t n = std::min(inner - idx[ndim - 1], end - pos);
      run(p, inner_strides, n);
      pos += n;
      idx[ndim - 1] += n;
      for (int64_t d = ndim - 1; d > 0 && idx[d] == loop.shape[d]; --d) {
        idx[d] = 0;
        ++idx[d - 1];
      }
    }
  };

  const int threads = total < kParallelGrain ? 1 : omp_get_max_threads();
  if (threads == 1) {
    range(0, total);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    range(total * t / nt, total * (t + 1) / nt);
  }
}

}  // namespace diffkd::cpu_impl

#pragma once
// Creating tensors: constants, ranges, data from the host, and random draws.
// Random draws come from a Generator = (seed, offset): each draw of n elements reads counter
// blocks [offset, offset + ceil(n/4)) and advances the offset, so a run is reproducible from its
// seed and offset alone (they go into checkpoints). `rand_at`/`randn_at` read an explicit
// (seed, offset) without a generator, e.g. the noise of sample i at offset i * per_sample.

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd {

struct Generator {
  uint64_t seed = 0;
  uint64_t offset = 0;  // next unused counter block

  // Data-parallel runs (dist/data_parallel.h): this process holds rows [shard_first, shard_first
  // + shard_count) of batches of shard_rows rows (0: not sharded). A batch-shaped draw (dropout)
  // then reserves the counters of the whole batch and takes its rows' share, so the masks, like
  // the generator's state, do not depend on the number of ranks.
  int64_t shard_first = 0, shard_count = 0, shard_rows = 0;

  explicit Generator(uint64_t s = 0) : seed(s) {}
  // Reserves the counter blocks of an n-element draw; returns the first.
  uint64_t reserve(int64_t n);
};

// The process-wide generator that dropout and the other implicit draws use.
Generator& default_generator();
void manual_seed(uint64_t seed);

Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = cpu());
Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = cpu());
Tensor scalar_tensor(double value, DType dtype = DType::F32, Device device = cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
// [start, end) in steps of step, as PyTorch's arange.
Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::F32,
              Device device = cpu());
inline Tensor arange(int64_t n, DType dtype = DType::F32) { return arange(0, n, 1, dtype); }
// Row-major values into a new tensor of the given shape.
Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                   DType dtype = DType::F32, Device device = cpu());

Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = cpu());
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32, Device device = cpu());
Tensor uniform(const Shape& shape, double low, double high, Generator& gen,
               DType dtype = DType::F32, Device device = cpu());
Tensor rand_at(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype = DType::F32,
               Device device = cpu());
Tensor randn_at(const Shape& shape, uint64_t seed, uint64_t offset, DType dtype = DType::F32,
                Device device = cpu());

}  // namespace diffkd

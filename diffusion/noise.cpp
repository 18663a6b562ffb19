// Per-sample noise streams (see noise.h).

#include "diffusion/noise.h"

#include "autograd/ops.h"
#include "tensor/philox.h"

namespace diffkd::diffusion {

Tensor sample_noise(const Shape& sample_shape, int64_t first, int64_t count, uint64_t seed,
                    uint64_t stream, Device device) {
  const int64_t per_sample = numel_of(sample_shape);
  const uint64_t blocks = philox::blocks_for(static_cast<uint64_t>(per_sample));
  // Each stream gets its own key; samples follow each other in counter space.
  const uint64_t key = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  TensorList rows;
  Shape one = sample_shape;
  one.insert(one.begin(), 1);
  for (int64_t i = first; i < first + count; ++i)
    rows.push_back(randn_at(one, key, static_cast<uint64_t>(i) * blocks, DType::F32, device));
  return rows.size() == 1 ? rows[0] : concat(rows, 0);
}

}  // namespace diffkd::diffusion

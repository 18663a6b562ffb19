// Dropout (Srivastava et al. 2014), inverted: y = x * m / (1 - p), m ~ Bernoulli(1 - p) drawn
// from the generator's Philox stream, so a run's masks follow from its seed. gx = g * m / (1-p)
// through mul.

#include <algorithm>

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  DK_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " is outside [0, 1]");
  if (!training || p == 0.0) return x;
  if (p == 1.0) return x * 0.0;
  Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (gen.shard_rows == 0) {
    be(x).random(mask, RandomKind::Bernoulli, gen.seed, gen.reserve(x.numel()), 1.0 - p, 0.0);
  } else {
    // This rank's rows of the global batch's mask: element e of the whole mask is counter block
    // e / 4, lane e % 4, so a slice starting on a whole block is drawn on its own.
    DK_CHECK(x.dim() > 0 && x.size(0) == gen.shard_count, "dropout: a data-parallel run holds ",
             gen.shard_count, " rows of each batch of ", gen.shard_rows, "; got a tensor of ",
             x.dim() > 0 ? x.size(0) : 0, " rows");
    const int64_t per_row = x.numel() / std::max<int64_t>(1, x.size(0));
    const uint64_t base = gen.reserve(per_row * gen.shard_rows);
    const int64_t skip = per_row * gen.shard_first;
    if (skip % 4 == 0) {
      be(x).random(mask, RandomKind::Bernoulli, gen.seed, base + static_cast<uint64_t>(skip / 4), 1.0 - p, 0.0);
    } else {
      Shape whole = x.shape();
      whole[0] = gen.shard_rows;
      const Tensor all = Tensor::empty(whole, x.dtype(), x.device());
      be(x).random(all, RandomKind::Bernoulli, gen.seed, base, 1.0 - p, 0.0);
      copy_tensor(all.as_strided(x.shape(), contiguous_strides(x.shape()), skip), mask);
    }
  }
  be(x).unary(UnaryOp::Affine, mask, mask, 1.0 / (1.0 - p), 0.0);
  return x * mask;
}

}  // namespace diffkd

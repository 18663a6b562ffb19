// Dropout (Srivastava et al. 2014), inverted: y = x * m / (1 - p), m ~ Bernoulli(1 - p) drawn
// from the generator's Philox stream, so a run's masks follow from its seed. gx = g * m / (1-p)
// through mul.

#include "autograd/op_helpers.h"

namespace diffkd {

using namespace ops;

Tensor dropout(const Tensor& x, double p, bool training, Generator& gen) {
  DK_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " is outside [0, 1]");
  if (!training || p == 0.0) return x;
  if (p == 1.0) return x * 0.0;
  Tensor mask = Tensor::empty(x.shape(), x.dtype(), x.device());
  be(x).random(mask, RandomKind::Bernoulli, gen.seed, gen.reserve(x.numel()), 1.0 - p, 0.0);
  be(x).unary(UnaryOp::Affine, mask, mask, 1.0 / (1.0 - p), 0.0);
  return x * mask;
}

}  // namespace diffkd

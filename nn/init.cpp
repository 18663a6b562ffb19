// Parameter initialisers (see init.h).

#include "nn/init.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "tensor/backend.h"

namespace diffkd::nn::init {

Fans fans(const Tensor& w) {
  DK_CHECK(w.dim() >= 2, "init: fans need a weight of rank >= 2, got ", shape_str(w.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < w.dim(); ++d) receptive *= w.size(d);
  return {w.size(1) * receptive, w.size(0) * receptive};
}

void uniform_(const Tensor& t, double low, double high, Generator& gen) {
  backend(t.device()).random(t, RandomKind::Uniform, gen.seed, gen.reserve(t.numel()), low, high);
}

void normal_(const Tensor& t, double mean, double std, Generator& gen) {
  backend(t.device()).random(t, RandomKind::Normal, gen.seed, gen.reserve(t.numel()), mean, std);
}

void constant_(const Tensor& t, double value) { backend(t.device()).fill(t, value); }

void xavier_uniform_(const Tensor& t, Generator& gen, double gain) {
  const Fans f = fans(t);
  const double bound = gain * std::sqrt(6.0 / static_cast<double>(f.in + f.out));
  uniform_(t, -bound, bound, gen);
}

void default_weight_(const Tensor& weight, Generator& gen) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(fans(weight).in));
  uniform_(weight, -bound, bound, gen);
}

void default_bias_(const Tensor& bias, int64_t fan_in, Generator& gen) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  uniform_(bias, -bound, bound, gen);
}

}  // namespace diffkd::nn::init

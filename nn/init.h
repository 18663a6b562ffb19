#pragma once
// In-place parameter initialisers, drawing from a Generator (so a model's initial weights are a
// function of its seed alone). Fans follow PyTorch's _calculate_fan_in_and_fan_out: for a weight
// [d0, d1, k...], fan_in = d1 * prod(k) and fan_out = d0 * prod(k).

#include "tensor/creation.h"

namespace diffkd::nn::init {

struct Fans {
  int64_t in, out;
};
Fans fans(const Tensor& weight);

void uniform_(const Tensor& t, double low, double high, Generator& gen);
void normal_(const Tensor& t, double mean, double std, Generator& gen);
void constant_(const Tensor& t, double value);
inline void zeros_(const Tensor& t) { constant_(t, 0.0); }
// U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))  (Glorot & Bengio 2010).
void xavier_uniform_(const Tensor& t, Generator& gen, double gain = 1.0);
// PyTorch's default for Linear and Conv weights, kaiming_uniform_(a = sqrt(5)), which is
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)); their biases use the same bound.
void default_weight_(const Tensor& weight, Generator& gen);
void default_bias_(const Tensor& bias, int64_t fan_in, Generator& gen);

}  // namespace diffkd::nn::init

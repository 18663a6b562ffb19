#pragma once
// Vectorised transcendental functions for contiguous runs, through Eigen's packet math
// (AVX-512/AVX2 polynomial exp, log, tanh). GCC does not vectorise std::exp without -ffast-math,
// and these dominate softmax and the smooth activations. The scalar functors in
// tensor/scalar_ops.h define the same functions; tests compare both paths.

#include <cstdint>

#include "tensor/backend.h"

namespace diffkd::cpu_impl {

// out[i] = op(in[i]) for i < n, for the ops listed in the .cpp; false if op is not one of them.
template <typename T>
bool vector_unary(UnaryOp op, const T* in, T* out, int64_t n);

// out[i] = op(a[i], b[i]) for the binary ops listed in the .cpp; false if op is not one of them.
template <typename T>
bool vector_binary(BinaryOp op, const T* a, const T* b, T* out, int64_t n);

// Softmax (or log-softmax) of each contiguous row of length len.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t len, bool log);

}  // namespace diffkd::cpu_impl

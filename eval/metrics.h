#pragma once
// Feature-space metrics for generated images (METHODS.md 0.6), all in float64:
//  * Frechet distance (Heusel et al. 2017): ||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2}),
//    the trace term as sum sqrt(lambda_i) of S_a^{1/2} S_b S_a^{1/2} via two symmetric
//    eigendecompositions (negative round-off eigenvalues clamped to 0). On a classifier's
//    features this is our "FID-proxy"; it is biased upwards at small N, so every number carries N.
//  * KID (Binkowski et al. 2018): the unbiased MMD^2 with kernel (x.y / d + 1)^3 over all pairs.
//  * IS-proxy: exp(E_x KL(p(y|x) || p(y))) from a classifier's softmax, and the class histogram.
//  * Fidelity of a student to its teacher from the same noise: per-sample MSE and PSNR.

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace diffkd::eval {

struct FeatureStats {
  std::vector<double> mean;        // [d]
  std::vector<double> covariance;  // [d, d] row-major, unbiased (1 / (n - 1))
  int64_t count = 0, dim = 0;
};

// features [n, d] (any float dtype).
FeatureStats feature_stats(const Tensor& features);
double frechet_distance(const FeatureStats& a, const FeatureStats& b);
double kernel_inception_distance(const Tensor& a, const Tensor& b);

struct ClassStats {
  double inception_score = 0;          // exp(E KL(p(y|x) || p(y)))
  std::vector<double> class_fraction;  // share of samples whose argmax is each class
};
// logits [n, classes].
ClassStats class_stats(const Tensor& logits);

struct Fidelity {
  double mse = 0;   // mean over samples of the per-sample mean squared error (images in [-1, 1])
  double psnr = 0;  // mean over samples of 10 log10(4 / mse_i) (peak-to-peak range 2)
};
Fidelity fidelity(const Tensor& images, const Tensor& reference);

}  // namespace diffkd::eval

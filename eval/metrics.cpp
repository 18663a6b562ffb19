// Frechet distance, KID, IS-proxy and fidelity (see metrics.h). Eigen for the symmetric
// eigendecompositions; everything in double.

#include "eval/metrics.h"

#include <Eigen/Dense>
#include <cmath>

#include "autograd/ops.h"

namespace diffkd::eval {

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Matrix to_matrix(const Tensor& t) {
  DK_CHECK(t.dim() == 2, "metrics: expected features [n, d], got ", shape_str(t.shape()));
  const std::vector<double> v = t.to_vector();
  return Eigen::Map<const Matrix>(v.data(), t.size(0), t.size(1));
}

// Symmetric square root through an eigendecomposition, negative eigenvalues clamped to 0.
Eigen::MatrixXd sqrt_psd(const Eigen::MatrixXd& m) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m);
  const Eigen::VectorXd roots = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt();
  return eig.eigenvectors() * roots.asDiagonal() * eig.eigenvectors().transpose();
}

}  // namespace

FeatureStats feature_stats(const Tensor& features) {
  const Matrix x = to_matrix(features);
  DK_CHECK(x.rows() >= 2, "feature_stats: need at least 2 samples, got ", x.rows());
  FeatureStats s;
  s.count = x.rows();
  s.dim = x.cols();
  const Eigen::RowVectorXd mu = x.colwise().mean();
  const Matrix centred = x.rowwise() - mu;  // subtract the mean first: stable covariance
  const Matrix cov = centred.transpose() * centred / static_cast<double>(x.rows() - 1);
  s.mean.assign(mu.data(), mu.data() + mu.size());
  s.covariance.assign(cov.data(), cov.data() + cov.size());
  return s;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  DK_CHECK(a.dim == b.dim, "frechet_distance: feature dimensions differ (", a.dim, " vs ", b.dim, ")");
  const int64_t d = a.dim;
  const Eigen::Map<const Eigen::VectorXd> mu_a(a.mean.data(), d), mu_b(b.mean.data(), d);
  const Eigen::MatrixXd sa = Eigen::Map<const Matrix>(a.covariance.data(), d, d);
  const Eigen::MatrixXd sb = Eigen::Map<const Matrix>(b.covariance.data(), d, d);
  const Eigen::MatrixXd root_a = sqrt_psd(sa);
  const Eigen::MatrixXd inner = root_a * sb * root_a;
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(0.5 * (inner + inner.transpose()), Eigen::EigenvaluesOnly);
  const double trace_sqrt = eig.eigenvalues().cwiseMax(0.0).cwiseSqrt().sum();
  return (mu_a - mu_b).squaredNorm() + sa.trace() + sb.trace() - 2.0 * trace_sqrt;
}

double kernel_inception_distance(const Tensor& a_t, const Tensor& b_t) {
  const Matrix a = to_matrix(a_t), b = to_matrix(b_t);
  DK_CHECK(a.cols() == b.cols() && a.rows() >= 2 && b.rows() >= 2,
           "kid: need two feature sets [n >= 2, d] of the same d, got ", shape_str(a_t.shape()), " and ",
           shape_str(b_t.shape()));
  const double d = static_cast<double>(a.cols());
  auto kernel = [d](const Matrix& x, const Matrix& y) {
    return ((x * y.transpose()).array() / d + 1.0).pow(3).matrix().eval();
  };
  const Eigen::MatrixXd kaa = kernel(a, a), kbb = kernel(b, b), kab = kernel(a, b);
  const double n = static_cast<double>(a.rows()), m = static_cast<double>(b.rows());
  return (kaa.sum() - kaa.trace()) / (n * (n - 1)) + (kbb.sum() - kbb.trace()) / (m * (m - 1)) -
         2.0 * kab.sum() / (n * m);
}

ClassStats class_stats(const Tensor& logits) {
  const Matrix p = to_matrix(softmax(to_dtype(logits, DType::F64), 1));
  const Eigen::RowVectorXd marginal = p.colwise().mean();
  double kl = 0;
  ClassStats s;
  s.class_fraction.assign(p.cols(), 0.0);
  for (Eigen::Index i = 0; i < p.rows(); ++i) {
    Eigen::Index best = 0;
    for (Eigen::Index c = 0; c < p.cols(); ++c) {
      if (p(i, c) > 0) kl += p(i, c) * (std::log(p(i, c)) - std::log(marginal(c)));
      if (p(i, c) > p(i, best)) best = c;
    }
    s.class_fraction[best] += 1.0 / static_cast<double>(p.rows());
  }
  s.inception_score = std::exp(kl / static_cast<double>(p.rows()));
  return s;
}

Fidelity fidelity(const Tensor& images, const Tensor& reference) {
  DK_CHECK(images.shape() == reference.shape(), "fidelity: shapes differ, ", shape_str(images.shape()),
           " vs ", shape_str(reference.shape()));
  const Tensor diff = to_dtype(images, DType::F64) - to_dtype(reference, DType::F64);
  const std::vector<double> per_sample = mean(square(flatten(diff, 1)), {1}).to_vector();
  Fidelity f;
  for (double mse : per_sample) {
    f.mse += mse / per_sample.size();
    f.psnr += 10.0 * std::log10(4.0 / std::max(mse, 1e-12)) / per_sample.size();
  }
  return f;
}

}  // namespace diffkd::eval

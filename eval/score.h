#pragma once
// One call for the scores every table reports: generated images against reference images, on the
// evaluation classifier's features (FID-proxy, KID) and outputs (IS-proxy, class histogram).

#include <vector>

#include "eval/classifier_eval.h"

namespace diffkd::eval {

struct ImageScores {
  int64_t count = 0;  // N: the scores depend on it (FID-proxy strongly), so every table names it
  double fid_proxy = 0;
  double kid = 0;
  double is_proxy = 0;
  std::vector<double> class_fraction;
  double min_class_fraction() const;
};

// The blurred-test-images calibration row: a 3x3 box blur of images [n, C, H, W] in [-1, 1]
// (borders padded with -1, the background), to show how far a little blur moves each score.
Tensor box_blur(const Tensor& images);

// images and reference [n, C, H, W] in [-1, 1]; KID on features divided by the classifier's
// feature_scale (kernel conditioning).
ImageScores score_images(LoadedClassifier& classifier, const Tensor& images, const Tensor& reference);

}  // namespace diffkd::eval

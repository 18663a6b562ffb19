#include "eval/score.h"

#include <algorithm>

#include "autograd/ops.h"
#include "eval/metrics.h"

namespace diffkd::eval {

double ImageScores::min_class_fraction() const {
  return class_fraction.empty() ? 0.0 : *std::min_element(class_fraction.begin(), class_fraction.end());
}

Tensor box_blur(const Tensor& images) { return avg_pool2d(pad(images, {1, 1, 1, 1}, -1.0), 3, 1); }

ImageScores score_images(LoadedClassifier& classifier, const Tensor& images, const Tensor& reference) {
  const ClassifierOutputs gen = classify(classifier, images);
  const ClassifierOutputs ref = classify(classifier, reference);
  ImageScores s;
  s.count = images.size(0);
  s.fid_proxy = frechet_distance(feature_stats(gen.features), feature_stats(ref.features));
  const double scale = classifier.feature_scale;
  s.kid = kernel_inception_distance(gen.features / scale, ref.features / scale);
  const ClassStats cs = class_stats(gen.logits);
  s.is_proxy = cs.inception_score;
  s.class_fraction = cs.class_fraction;
  return s;
}

}  // namespace diffkd::eval

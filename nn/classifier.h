#pragma once
// A small CNN classifier for 28x28 (or 32x32) images: the feature network of the FID-proxy/KID
// evaluation and, as a separately trained instance, RDD's feature network. The two instances
// must never share weights (METHODS.md 0.6 and 4); they are different checkpoints.
//
//   features.0 conv3x3(C->w1) features.1 BN features.2 ReLU features.3 conv3x3(w1->w1) BN ReLU
//   max-pool 2 | conv3x3(w1->w2) BN ReLU conv3x3(w2->w2) BN max-pool 2         -> F [N, w2, H/4, W/4]
//   head: ReLU, global average pool -> f [N, w2]; Linear(w2 -> hidden) ReLU Dropout -> penultimate [N, hidden]
//   -> Linear(hidden -> classes) logits
// Inputs are images in [-1, 1].

#include <memory>

#include "nn/layers.h"

namespace diffkd::nn {

struct ClassifierConfig {
  int64_t in_channels = 1;
  int64_t image_size = 28;
  int64_t num_classes = 10;
  int64_t width1 = 32, width2 = 64, hidden = 128;
  double dropout = 0.3;
  std::string to_json() const;
  static ClassifierConfig from_json(const std::string& json, const std::string& source);
};

class Classifier : public Module {
 public:
  explicit Classifier(const ClassifierConfig& config, uint64_t seed = 0);
  struct Outputs {
    Tensor feature_map;  // F [N, width2, H/4, W/4], after the last ReLU (RDD's feature map)
    Tensor pooled;       // f [N, width2]
    Tensor penultimate;  // [N, hidden]: the FID-proxy features
    Tensor logits;       // [N, num_classes]
  };
  // x: [N, C, S, S] at the trained size, or padded evenly beyond it (then its centre is used).
  Outputs run(const Tensor& x);
  Tensor forward(const Tensor& x) { return run(x).logits; }
  const ClassifierConfig& config() const { return config_; }

 private:
  ClassifierConfig config_;
  std::shared_ptr<Conv2d> conv_[4];
  std::shared_ptr<BatchNorm> bn_[4];
  std::shared_ptr<Linear> fc_, out_;
};

}  // namespace diffkd::nn

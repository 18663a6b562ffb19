// The small CNN classifier (see classifier.h).

#include "nn/classifier.h"

#include <nlohmann/json.hpp>

namespace diffkd::nn {

std::string ClassifierConfig::to_json() const {
  return nlohmann::json{{"in_channels", in_channels}, {"image_size", image_size},
                        {"num_classes", num_classes}, {"width1", width1},
                        {"width2", width2},           {"hidden", hidden},
                        {"dropout", dropout}}
      .dump();
}

ClassifierConfig ClassifierConfig::from_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for a number too big
    fail(source, ": invalid classifier config JSON (", e.what(), ")");
  }
  ClassifierConfig c;
  try {
    c.in_channels = j.at("in_channels").get<int64_t>();
    c.image_size = j.at("image_size").get<int64_t>();
    c.num_classes = j.at("num_classes").get<int64_t>();
    c.width1 = j.at("width1").get<int64_t>();
    c.width2 = j.at("width2").get<int64_t>();
    c.hidden = j.at("hidden").get<int64_t>();
    c.dropout = j.at("dropout").get<double>();
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": classifier config is missing a field or has a wrong type (", e.what(), ")");
  }
  DK_CHECK(c.image_size % 4 == 0 && c.in_channels > 0 && c.num_classes > 1, source,
           ": classifier needs image_size divisible by 4, in_channels > 0 and num_classes > 1");
  return c;
}

Classifier::Classifier(const ClassifierConfig& config, uint64_t seed) : config_(config) {
  Generator gen(seed);
  const int64_t in[4] = {config.in_channels, config.width1, config.width1, config.width2};
  const int64_t out[4] = {config.width1, config.width1, config.width2, config.width2};
  for (int i = 0; i < 4; ++i) {
    // features.<3i> conv, features.<3i+1> BN, features.<3i+2> ReLU (pools are not numbered).
    conv_[i] = register_module("features." + std::to_string(3 * i),
                               std::make_shared<Conv2d>(in[i], out[i], 3, gen, 1, 1));
    bn_[i] = register_module("features." + std::to_string(3 * i + 1), std::make_shared<BatchNorm>(out[i]));
  }
  fc_ = register_module("head.0", std::make_shared<Linear>(config.width2, config.hidden, gen));
  out_ = register_module("head.3", std::make_shared<Linear>(config.hidden, config.num_classes, gen));
}

Classifier::Outputs Classifier::run(const Tensor& x) {
  const int64_t side = config_.image_size;
  DK_CHECK(x.dim() == 4 && x.size(1) == config_.in_channels && x.size(2) == x.size(3) && x.size(2) >= side &&
               (x.size(2) - side) % 2 == 0,
           "Classifier: input ", shape_str(x.shape()), " does not match [N, ", config_.in_channels, ", ", side, ", ",
           side, "] (or that padded evenly)");
  // Padded images (digits 28 -> 32 for a UNet) are seen by their centre, the size it was trained on.
  const int64_t margin = (x.size(2) - side) / 2;
  Tensor h = margin == 0 ? x : narrow(narrow(x, 2, margin, side), 3, margin, side);
  for (int i = 0; i < 3; ++i) {
    h = relu(bn_[i]->forward(conv_[i]->forward(h)));
    if (i == 1) h = max_pool2d(h, 2);
  }
  Outputs o;
  // F is the last block's post-ReLU map, as in RDD's official DenseNet, whose final ReLU runs in
  // place on the tensor kept as the feature: F >= 0 in RCFD, IS-P2P, M-P2P and the memory queue
  // (METHODS.md 4.3). Pooling before the ReLU gives the same values (ReLU commutes with max).
  o.feature_map = relu(max_pool2d(bn_[3]->forward(conv_[3]->forward(h)), 2));  // [N, w2, H/4, W/4]
  o.pooled = mean(o.feature_map, {2, 3});                                      // [N, w2]
  o.penultimate = dropout(relu(fc_->forward(o.pooled)), config_.dropout, is_training());  // [N, hidden]
  o.logits = out_->forward(o.penultimate);
  return o;
}

}  // namespace diffkd::nn

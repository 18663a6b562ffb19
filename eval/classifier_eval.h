#pragma once
// The evaluation classifier: training it (`diffkd train-classifier`), loading it, and running it
// in batches to get the features (penultimate layer) and logits the metrics are computed on.

#include <memory>
#include <string>

#include "data/dataset.h"
#include "nn/classifier.h"

namespace diffkd::eval {

struct ClassifierTrainOptions {
  int64_t epochs = 4;
  int64_t batch_size = 128;
  double lr = 1e-3;
  uint64_t seed = 0;
  int64_t width1 = 32, width2 = 64, hidden = 128;
  bool quiet = false;
};

struct LoadedClassifier {
  std::unique_ptr<nn::Classifier> net;
  double feature_scale = 1.0;  // features are divided by this before KID (kernel conditioning)
  double test_accuracy = 0;
  std::string path;
};

// Trains on `train`, reports accuracy on `test` each epoch, saves to `path` (safetensors; the
// config, the test accuracy and the KID feature scale in its metadata). Returns the test accuracy.
double train_classifier(const data::ImageDataset& train, const data::ImageDataset& test,
                        const ClassifierTrainOptions& options, const std::string& path);

LoadedClassifier load_classifier(const std::string& path);

struct ClassifierOutputs {
  Tensor features;  // [n, hidden] penultimate activations
  Tensor logits;    // [n, classes]
};
// images [n, C, H, W] in [-1, 1], run in eval mode in batches. Images larger than the classifier's
// input (e.g. padded to 32) are centre-cropped to it.
ClassifierOutputs classify(LoadedClassifier& classifier, const Tensor& images, int64_t batch_size = 250);

double accuracy(const Tensor& logits, const std::vector<int64_t>& labels);

}  // namespace diffkd::eval

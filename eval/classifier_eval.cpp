// Training, loading and running the evaluation classifier (see classifier_eval.h).

#include "eval/classifier_eval.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "data/loader.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"

namespace diffkd::eval {

double accuracy(const Tensor& logits, const std::vector<int64_t>& labels) {
  const std::vector<double> v = logits.to_vector();
  const int64_t n = logits.size(0), c = logits.size(1);
  int64_t correct = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t best = 0;
    for (int64_t k = 1; k < c; ++k)
      if (v[i * c + k] > v[i * c + best]) best = k;
    correct += best == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

ClassifierOutputs classify(LoadedClassifier& classifier, const Tensor& images, int64_t batch_size) {
  NoGradGuard no_grad;
  classifier.net->eval();
  const int64_t n = images.size(0);
  const Tensor& input = images;  // padded images (32 for 28-pixel digits): the classifier sees the centre
  TensorList features, logits;
  for (int64_t i = 0; i < n; i += batch_size) {
    const nn::Classifier::Outputs o = classifier.net->run(contiguous(narrow(input, 0, i, std::min(batch_size, n - i))));
    features.push_back(o.penultimate);
    logits.push_back(o.logits);
  }
  return {concat(features, 0), concat(logits, 0)};
}

double train_classifier(const data::ImageDataset& train, const data::ImageDataset& test,
                        const ClassifierTrainOptions& o, const std::string& path) {
  DK_CHECK(train.num_classes > 1 && !test.labels.empty(), "train-classifier: ", train.source,
           " and ", test.source, " must be labelled");
  nn::ClassifierConfig config;
  config.in_channels = train.channels;
  config.image_size = train.height;
  config.num_classes = train.num_classes;
  config.width1 = o.width1;
  config.width2 = o.width2;
  config.hidden = o.hidden;
  LoadedClassifier c;
  c.net = std::make_unique<nn::Classifier>(config, o.seed);
  AdamHyper h;
  h.lr = o.lr;
  nn::Adam adam(c.net->named_parameters(), h);
  data::BatchLoader loader(train, {o.batch_size, o.seed, false, 0});
  const Tensor test_images = data::images_in_order(test, 0, test.count);
  const auto start = std::chrono::steady_clock::now();
  double test_accuracy = 0;
  for (int64_t epoch = 1; epoch <= o.epochs; ++epoch) {
    c.net->train();
    double loss_sum = 0;
    const int64_t steps = loader.batches_per_epoch();
    for (int64_t s = 0; s < steps; ++s) {
      // Cosine decay of the rate over all epochs.
      const double progress = static_cast<double>((epoch - 1) * steps + s) / (o.epochs * steps);
      adam.set_lr(o.lr * 0.5 * (1 + std::cos(M_PI * progress)));
      const data::BatchLoader::Batch b = loader.next();
      Tensor loss = cross_entropy(c.net->forward(b.images), b.labels);
      loss.backward();
      adam.step();
      adam.zero_grad();
      loss_sum += loss.item();
    }
    test_accuracy = accuracy(classify(c, test_images).logits, test.labels);
    if (!o.quiet) {
      std::printf("epoch %lld/%lld  train loss %.4f  test accuracy %.2f%%  (%.0fs)\n", static_cast<long long>(epoch),
                  static_cast<long long>(o.epochs), loss_sum / steps, 100 * test_accuracy,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
      std::fflush(stdout);
    }
  }
  // KID's cubic kernel wants (x . y) / d of order 1: divide features by their RMS on the test set.
  const Tensor features = classify(c, test_images).features;
  const double scale = std::sqrt(mean(square(to_dtype(features, DType::F64))).item());
  nn::save_model(path, *c.net, config.to_json(),
                 {{"kind", "classifier"}, {"dataset", test.source}, {"feature_scale", std::to_string(scale)},
                  {"test_accuracy", std::to_string(test_accuracy)}, {"seed", std::to_string(o.seed)}});
  return test_accuracy;
}

LoadedClassifier load_classifier(const std::string& path) {
  const safetensors::Contents file = safetensors::load(path);
  auto kind = file.metadata.find("kind");
  DK_CHECK(kind != file.metadata.end() && kind->second == "classifier", path,
           ": not a classifier checkpoint (metadata 'kind' should be \"classifier\")");
  LoadedClassifier c;
  c.path = path;
  c.net = std::make_unique<nn::Classifier>(nn::ClassifierConfig::from_json(file.metadata.at("config"), path));
  c.net->load_state_dict(file.tensors, path);
  c.net->eval();
  try {
    c.feature_scale = std::stod(file.metadata.at("feature_scale"));
    c.test_accuracy = std::stod(file.metadata.at("test_accuracy"));
  } catch (const std::exception&) {
    fail(path, ": metadata 'feature_scale' and 'test_accuracy' must be numbers");
  }
  return c;
}

}  // namespace diffkd::eval

// `diffkd train-classifier`: the small CNN whose features the FID-proxy, KID and IS-proxy use
// (and, trained separately with another seed, RDD's feature network).

#include <cstdio>

#include "apps/commands.h"
#include "data/registry.h"
#include "eval/classifier_eval.h"

namespace diffkd::apps {

namespace {

struct {
  std::string data = "mnist";
  std::string out = "classifier.safetensors";
  eval::ClassifierTrainOptions train;
} opts;

int run_train_classifier() {
  const data::ImageDataset train = data::load_dataset(opts.data, data::Split::Train);
  const data::ImageDataset test = data::load_dataset(opts.data, data::Split::Test);
  std::printf("train-classifier: %s (%lld train / %lld test images), %lld epochs, batch %lld, seed %llu\n",
              opts.data.c_str(), static_cast<long long>(train.count), static_cast<long long>(test.count),
              static_cast<long long>(opts.train.epochs), static_cast<long long>(opts.train.batch_size),
              static_cast<unsigned long long>(opts.train.seed));
  const double acc = eval::train_classifier(train, test, opts.train, opts.out);
  std::printf("wrote %s: test accuracy %.2f%%\n", opts.out.c_str(), 100 * acc);
  return 0;
}

}  // namespace

void add_train_classifier_command(CLI::App& app) {
  CLI::App* c = app.add_subcommand("train-classifier", "Train the feature classifier used by eval (and by RDD)");
  c->add_option("--data", opts.data, data::kDatasetHelp)->capture_default_str();
  c->add_option("--out", opts.out, "output checkpoint")->capture_default_str();
  c->add_option("--epochs", opts.train.epochs, "epochs")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--batch", opts.train.batch_size, "batch size")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_option("--lr", opts.train.lr, "peak learning rate (Adam, cosine decay)")->capture_default_str();
  c->add_option("--seed", opts.train.seed, "seed (use different seeds for the evaluation and RDD networks)")->capture_default_str();
  c->add_option("--width1", opts.train.width1, "channels of the first two convs")->capture_default_str();
  c->add_option("--width2", opts.train.width2, "channels of the last two convs (RDD's feature map)")->capture_default_str();
  c->add_option("--hidden", opts.train.hidden, "width of the penultimate (FID-proxy) features")->capture_default_str();
  on_run(c, run_train_classifier);
}

}  // namespace diffkd::apps

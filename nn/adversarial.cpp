// Adv-KD's staged generator and conditional discriminator (see adversarial.h).

#include "nn/adversarial.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tensor/backend.h"
#include "tensor/creation.h"

namespace diffkd::nn {

using nlohmann::json;

std::string StagedGeneratorConfig::to_json() const {
  return json{{"noise_channels", noise_channels}, {"noise_size", noise_size}, {"image_channels", image_channels},
              {"channels", channels}, {"resolutions", resolutions}}
      .dump();
}

StagedGeneratorConfig StagedGeneratorConfig::from_json(const std::string& text, const std::string& source) {
  StagedGeneratorConfig c;
  try {
    const json j = json::parse(text);
    c.noise_channels = j.at("noise_channels").get<int64_t>();
    c.noise_size = j.at("noise_size").get<int64_t>();
    c.image_channels = j.at("image_channels").get<int64_t>();
    c.channels = j.at("channels").get<std::vector<int64_t>>();
    c.resolutions = j.at("resolutions").get<std::vector<int64_t>>();
  } catch (const json::exception& e) {
    fail(source, ": staged generator config: ", e.what());
  }
  DK_CHECK(!c.channels.empty() && c.channels.size() == c.resolutions.size() && c.resolutions[0] == 2 * c.noise_size,
           source, ": staged generator config needs as many channels as resolutions, the first twice the noise size");
  for (size_t k = 1; k < c.resolutions.size(); ++k)
    DK_CHECK(c.resolutions[k] == c.resolutions[k - 1] || c.resolutions[k] == 2 * c.resolutions[k - 1], source,
             ": stage ", k, " resolution ", c.resolutions[k], " must equal or double the previous ", c.resolutions[k - 1]);
  return c;
}

StagedGenerator::StagedGenerator(const StagedGeneratorConfig& config, uint64_t seed) : config_(config) {
  Generator gen(seed);
  const std::string p = "blocks.";
  auto block_layer = [&](const std::string& name, int64_t in, int64_t out) {
    Layer l;
    l.conv = register_module(name + ".conv", std::make_shared<Conv2d>(in, out, 3, gen, 1, 1));
    l.bn = register_module(name + ".bn", std::make_shared<BatchNorm>(out));
    return l;
  };
  auto up_layer = [&](const std::string& name, int64_t in, int64_t out) {
    Layer l;
    l.up = register_module(name + ".up", std::make_shared<ConvTranspose2d>(in, out, 3, gen, 2, 1, 1));
    l.bn = register_module(name + ".bn", std::make_shared<BatchNorm>(out));
    return l;
  };
  for (int64_t k = 0; k < config.stages(); ++k) {
    const std::string name = p + std::to_string(k);
    const int64_t in = k == 0 ? config.noise_channels : config.channels[k - 1], c = config.channels[k];
    std::vector<Layer> layers;
    if (k == 0) {
      layers.push_back(up_layer(name + ".0", in, c));
    } else if (k == 1) {
      layers.push_back(block_layer(name + ".0", in, c));
    } else {
      layers.push_back(block_layer(name + ".0", in, c));
      const bool doubles = config.resolutions[k] == 2 * config.resolutions[k - 1];
      layers.push_back(doubles ? up_layer(name + ".1", c, c) : block_layer(name + ".1", c, c));
    }
    DK_CHECK(k != 1 || config.resolutions[1] == config.resolutions[0], "staged generator: stage 1 keeps stage 0's size");
    blocks_.push_back(layers);
    Head h;
    h.conv1 = register_module("heads." + std::to_string(k) + ".0", std::make_shared<Conv2d>(c, c, 3, gen, 1, 1));
    h.bn = register_module("heads." + std::to_string(k) + ".1", std::make_shared<BatchNorm>(c));
    h.conv2 = register_module("heads." + std::to_string(k) + ".3",
                              std::make_shared<Conv2d>(c, config.image_channels, 3, gen, 1, 1));
    heads_.push_back(h);
  }
}

Tensor StagedGenerator::forward(const Tensor& noise, int64_t stage) {
  DK_CHECK(stage >= 0 && stage < config_.stages(), "StagedGenerator: stage ", stage, " of ", config_.stages());
  Tensor h = noise;
  for (int64_t k = 0; k <= stage; ++k)
    for (const Layer& l : blocks_[k])
      h = leaky_relu(l.bn->forward(l.conv ? l.conv->forward(h) : l.up->forward(h)), 0.01);
  const Head& head = heads_[stage];
  return tanh(head.conv2->forward(leaky_relu(head.bn->forward(head.conv1->forward(h)), 0.01)));
}

NamedTensors StagedGenerator::stage_parameters(int64_t stage) const {
  NamedTensors out;
  for (const auto& [name, t] : named_parameters()) {
    const size_t dot = name.find('.'), next = name.find('.', dot + 1);
    if (std::stoll(name.substr(dot + 1, next - dot - 1)) <= stage) out.emplace_back(name, t);
  }
  return out;
}

Tensor to_png_bytes(const Tensor& images) {
  std::vector<double> v = images.to_vector();
  for (double& x : v) {
    DK_CHECK(std::isfinite(x), "to_png_bytes: a non-finite pixel (", x, ")");
    x = std::floor(std::clamp((x + 1.0) / 2.0, 0.0, 1.0) * 255.0 + 0.5);
  }
  return from_vector(v, images.shape(), DType::I64);
}

Tensor from_png_bytes(const Tensor& bytes) {
  std::vector<double> v = bytes.to_vector();
  for (double& x : v) x = x / 255.0 * 2.0 - 1.0;
  return from_vector(v, bytes.shape(), DType::F32);
}

Tensor shrink_images(const Tensor& images, int64_t size) {
  const int64_t h = images.size(2);
  if (h == size) return images;
  if (h % size == 0 && images.size(3) == h) return avg_pool2d(images, h / size);
  return resize_bilinear(images, size, size);
}

Tensor adversarial_condition(const Tensor& x_T, int64_t noise_size, bool quantise) {
  return shrink_images(quantise ? from_png_bytes(to_png_bytes(x_T)) : x_T, noise_size);
}

int64_t DiscriminatorConfig::image_features() const {
  int64_t size = resolution / 2, ch = ndf;
  while (size > 4) {
    ch = std::min(2 * ch, max_channels);
    size /= 2;
  }
  return ch * size * size;
}

int64_t DiscriminatorConfig::noise_features() const { return 2 * ndf * (noise_size - 2) * (noise_size - 2); }

ConditionalDiscriminator::ConditionalDiscriminator(const DiscriminatorConfig& config, uint64_t seed) : config_(config) {
  DK_CHECK(config.resolution >= 2 && config.noise_size >= 3, "ConditionalDiscriminator: resolution ",
           config.resolution, ", noise ", config.noise_size);
  Generator gen(seed);
  // Image branch: stride-2 4x4 convs down to 4x4 (the first without BatchNorm).
  int64_t size = config.resolution / 2, ch = config.ndf;
  image_convs_.push_back(register_module("image.0", std::make_shared<Conv2d>(config.image_channels, ch, 4, gen, 2, 1, false)));
  image_bns_.push_back(nullptr);
  for (int64_t i = 1; size > 4; ++i) {
    const int64_t out = std::min(2 * ch, config.max_channels);
    const std::string name = "image." + std::to_string(i);
    image_convs_.push_back(register_module(name, std::make_shared<Conv2d>(ch, out, 4, gen, 2, 1, false)));
    image_bns_.push_back(register_module(name + ".bn", std::make_shared<BatchNorm>(out)));
    ch = out;
    size /= 2;
  }
  // Noise (condition) branch: the second conv has no padding (4x4 -> 2x2).
  noise_convs_.push_back(register_module("noise.0", std::make_shared<Conv2d>(config.noise_channels, config.ndf, 3, gen, 1, 1, false)));
  noise_bns_.push_back(register_module("noise.0.bn", std::make_shared<BatchNorm>(config.ndf)));
  noise_convs_.push_back(register_module("noise.1", std::make_shared<Conv2d>(config.ndf, 2 * config.ndf, 3, gen, 1, 0, false)));
  noise_bns_.push_back(register_module("noise.1.bn", std::make_shared<BatchNorm>(2 * config.ndf)));
  fc1_ = register_module("head.0", std::make_shared<Linear>(config.image_features() + config.noise_features(), config.hidden, gen));
  head_bn_ = register_module("head.bn", std::make_shared<BatchNorm>(config.hidden));
  fc2_ = register_module("head.1", std::make_shared<Linear>(config.hidden, 1, gen));
}

Tensor ConditionalDiscriminator::forward(const Tensor& image, const Tensor& noise) {
  Tensor h = leaky_relu(image_convs_[0]->forward(image), 0.2);
  for (size_t i = 1; i < image_convs_.size(); ++i) h = leaky_relu(image_bns_[i]->forward(image_convs_[i]->forward(h)), 0.2);
  Tensor n = noise;
  for (size_t i = 0; i < noise_convs_.size(); ++i) n = leaky_relu(noise_bns_[i]->forward(noise_convs_[i]->forward(n)), 0.2);
  const Tensor features = concat({flatten(h, 1), flatten(n, 1)}, 1);
  return reshape(fc2_->forward(leaky_relu(head_bn_->forward(fc1_->forward(features)), 0.2)), {image.size(0)});
}

void ConditionalDiscriminator::clip_weights(double c) {
  NoGradGuard no_grad;
  for (auto& [name, t] : named_parameters()) copy_tensor(clamp(t, -c, c), t);  // in place, on any device
}

}  // namespace diffkd::nn

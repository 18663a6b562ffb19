#pragma once
// Adv-KD's networks (METHODS.md 2.4-2.5): a progressively growing generator that maps a small
// noise image to the teacher's trajectory, one head per stage, and the conditional discriminator
// built afresh for each stage.
//
// StagedGenerator. "Block" = conv3x3 p1 -> BN -> LeakyReLU(0.01); "Up" = ConvTranspose3x3 s2 p1
// op1 (doubles H, W) -> BN -> LeakyReLU(0.01). Block 0 is one Up from the noise; block 1 one
// Block; every later block is a Block then an Up (when its stage doubles the resolution) or a
// second Block. Each block has a head conv3x3 -> BN -> LeakyReLU -> conv3x3 (-> image channels)
// -> tanh. forward(z, k) runs blocks 0..k and block k's head: stage k's image at its resolution.
//
// ConditionalDiscriminator for stage resolution r: an image branch of stride-2 4x4 convs
// (the first without BN; then BN; LeakyReLU(0.2); channels ndf, 2 ndf, ... up to max) that ends at
// 4x4 (or the stage's smallest size), a noise branch (conv3x3 p1 -> BN -> LReLU(0.2) -> conv3x3 p0
// -> BN -> LReLU(0.2), ndf then 2 ndf channels), and a head Linear -> BatchNorm1d -> LReLU(0.2) ->
// Linear(., 1) on both flattened: a logit. No conv has a bias.

#include <memory>
#include <string>
#include <vector>

#include "nn/layers.h"

namespace diffkd::nn {

struct StagedGeneratorConfig {
  int64_t noise_channels = 1, noise_size = 4, image_channels = 1;
  std::vector<int64_t> channels = {16, 16, 32, 32, 64};   // per stage (block)
  std::vector<int64_t> resolutions = {8, 8, 16, 16, 32};  // per stage: its head's image size
  std::string to_json() const;
  static StagedGeneratorConfig from_json(const std::string& json, const std::string& source);
  int64_t stages() const { return static_cast<int64_t>(channels.size()); }
};

class StagedGenerator : public Module {
 public:
  explicit StagedGenerator(const StagedGeneratorConfig& config, uint64_t seed = 0);
  Tensor forward(const Tensor& noise, int64_t stage);  // [B, noise_ch, n, n] -> [B, image_ch, r_k, r_k]
  // What stage k trains (Adv-KD): blocks 0..k and their heads; later blocks are not even run.
  NamedTensors stage_parameters(int64_t stage) const;
  const StagedGeneratorConfig& config() const { return config_; }

 private:
  struct Layer {
    std::shared_ptr<Conv2d> conv;
    std::shared_ptr<ConvTranspose2d> up;
    std::shared_ptr<BatchNorm> bn;
  };
  struct Head {
    std::shared_ptr<Conv2d> conv1, conv2;
    std::shared_ptr<BatchNorm> bn;
  };
  StagedGeneratorConfig config_;
  std::vector<std::vector<Layer>> blocks_;
  std::vector<Head> heads_;
};

// Image <-> the 8-bit PNG values the official pipeline stores: round(clamp((x + 1) / 2, 0, 1) 255)
// as integers, and back to [-1, 1].
Tensor to_png_bytes(const Tensor& images);
Tensor from_png_bytes(const Tensor& bytes);
// Down to size x size: a box filter for whole factors (PIL's antialiased bilinear at those factors
// is close to it), else bilinear.
Tensor shrink_images(const Tensor& images, int64_t size);
// The generator's input for noise x_T [B, C, H, W]: as the official data, x_T saved as an 8-bit
// image (clamped to [-1, 1], when quantise) and resized to noise_size.
Tensor adversarial_condition(const Tensor& x_T, int64_t noise_size, bool quantise);

struct DiscriminatorConfig {
  int64_t image_channels = 1, noise_channels = 1, noise_size = 4, resolution = 8;
  int64_t ndf = 32, max_channels = 128, hidden = 128;
  // The flattened sizes of the two branches (a test checks them per stage).
  int64_t image_features() const;
  int64_t noise_features() const;
};

class ConditionalDiscriminator : public Module {
 public:
  explicit ConditionalDiscriminator(const DiscriminatorConfig& config, uint64_t seed = 0);
  Tensor forward(const Tensor& image, const Tensor& noise);  // a logit [B]
  // WGAN-style clipping of every weight to [-c, c] (after each D step, as the official code).
  void clip_weights(double c);
  const DiscriminatorConfig& config() const { return config_; }

 private:
  DiscriminatorConfig config_;
  std::vector<std::shared_ptr<Conv2d>> image_convs_, noise_convs_;
  std::vector<std::shared_ptr<BatchNorm>> image_bns_, noise_bns_;  // image_bns_[0] unused (no BN first)
  std::shared_ptr<Linear> fc1_, fc2_;
  std::shared_ptr<BatchNorm> head_bn_;
};

}  // namespace diffkd::nn

#pragma once
// The diffusion UNet: guided-diffusion's UNetModel (Dhariwal & Nichol 2021), which with
// num_heads 1, no scale-shift norm and conv resampling is exactly Ho et al.'s DDPM UNet (2020).
// nn/README.md specifies every layer and name; the PyTorch golden was written from that spec.
//
//   UNet net(UNetConfig::from_json(text, "configs/mnist.json"), /*seed=*/0);
//   Tensor eps = net.forward(x_t, t);   // x_t [N, C, H, W], t [N] -> [N, out_channels, H, W]

#include <memory>
#include <vector>

#include "nn/unet_blocks.h"
#include "nn/unet_config.h"

namespace diffkd::nn {

class UNet : public Module {
 public:
  // Weights drawn from `seed` with the config's init scheme.
  explicit UNet(const UNetConfig& config, uint64_t seed = 0);
  // x [N, in_channels, H, W], t [N] (float timesteps), y [N] int64 labels when conditional.
  Tensor forward(const Tensor& x, const Tensor& t, const Tensor& y = Tensor());
  const UNetConfig& config() const { return config_; }

 private:
  void initialize(Generator& gen);
  std::shared_ptr<TimestepSequential> add_block(std::vector<std::shared_ptr<TimestepSequential>>& list,
                                                const char* prefix);

  UNetConfig config_;
  std::shared_ptr<Linear> time_embed_in_, time_embed_out_;
  std::shared_ptr<Embedding> label_emb_;
  std::vector<std::shared_ptr<TimestepSequential>> input_blocks_, output_blocks_;
  std::shared_ptr<TimestepSequential> middle_block_;
  std::shared_ptr<GroupNorm> out_norm_;
  std::shared_ptr<Conv2d> out_conv_;
};

}  // namespace diffkd::nn

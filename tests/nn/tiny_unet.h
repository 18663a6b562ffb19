#pragma once
// The tiny UNet the nn and diffusion tests share: 8x8, one channel, two levels, attention at 4x4.

#include "nn/unet_config.h"

namespace diffkd::testing {

inline nn::UNetConfig tiny_unet_config() {
  nn::UNetConfig c;
  c.image_size = 8;
  c.model_channels = 8;
  c.channel_mult = {1, 2};
  c.num_res_blocks = 1;
  c.attention_resolutions = {4};
  c.norm_groups = 4;
  return c;
}

}  // namespace diffkd::testing

#pragma once
// The UNet's configuration: every field of nn/README.md's table, read from and written to JSON
// (presets in configs/, and the `__metadata__` of model checkpoints). Unknown or mistyped fields
// are errors that name the file and the field, so a typo never silently becomes a default.

#include <cstdint>
#include <string>
#include <vector>

namespace diffkd::nn {

struct UNetConfig {
  int64_t image_size = 28;
  int64_t in_channels = 1;
  int64_t model_channels = 32;
  int64_t out_channels = 1;
  int64_t num_res_blocks = 2;
  std::vector<int64_t> attention_resolutions{7};  // in pixels
  std::vector<int64_t> channel_mult{1, 2, 2};
  double dropout = 0.0;
  int64_t num_heads = 1;
  int64_t num_head_channels = -1;  // -1: use num_heads
  bool use_scale_shift_norm = false;
  bool resblock_updown = false;
  bool conv_resample = true;
  int64_t num_classes = 0;  // > 0: class-conditional
  int64_t norm_groups = 32;
  std::string init = "ddpm";  // "ddpm" or "adm" (nn/README.md, Initialisation)

  // Throws diffkd::Error, prefixed with `source`, naming the first inconsistent field.
  void validate(const std::string& source = "unet config") const;
  std::string to_json() const;  // compact, every field
  // `json` is the object of UNet fields; missing fields keep their defaults.
  static UNetConfig from_json(const std::string& json, const std::string& source);
};

}  // namespace diffkd::nn

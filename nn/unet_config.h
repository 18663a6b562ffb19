#pragma once
// The UNet's configuration: every field of nn/README.md's table, read from and written to JSON
// (presets in configs/, and the `__metadata__` of model checkpoints). Unknown or mistyped fields
// are errors that name the file and the field, so a typo never silently becomes a default.

#include <cstdint>
#include <string>
#include <vector>

namespace diffkd::nn {

// How the sinusoidal table is laid out; the frameworks differ, and a checkpoint only computes its
// function with the table it was trained on.
struct TimestepEmbeddingForm {
  bool sin_first = false;  // false: [cos, sin] (guided-diffusion); true: [sin, cos] (Ho et al., diffusers' flip_sin_to_cos = false)
  double shift = 0.0;      // f_j = 10000^(-j / (half - shift)): 0 guided-diffusion, 1 Ho et al.
};

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
  // What other frameworks' checkpoints differ in: written to JSON only when not the default, so
  // the files made before these fields existed read back identical.
  std::string time_embedding_order = "cos_sin";  // or "sin_cos"
  double time_embedding_shift = 0.0;             // 1 for Ho et al.'s 10000^(-j / (half - 1))
  double norm_eps = 1e-5;                        // every GroupNorm's (Ho et al.'s: 1e-6)
  std::string downsample_padding = "symmetric";  // or "bottom_right" (Downsample, nn/unet_blocks.h)

  TimestepEmbeddingForm timestep_embedding_form() const {
    return {time_embedding_order == "sin_cos", time_embedding_shift};
  }

  // Throws diffkd::Error, prefixed with `source`, naming the first inconsistent field.
  void validate(const std::string& source = "unet config") const;
  std::string to_json() const;  // compact, every field
  // `json` is the object of UNet fields; missing fields keep their defaults.
  static UNetConfig from_json(const std::string& json, const std::string& source);
};

}  // namespace diffkd::nn

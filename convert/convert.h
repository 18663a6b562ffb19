#pragma once
// Teachers trained elsewhere, as diffkd model files (`diffkd convert`): the weights of a PyTorch
// UNet in one of three layouts in common use, mapped onto our UNet (nn/README.md) with a config
// derived from the weights (and, for diffusers, its config.json), and the diffusion settings the
// layout implies recorded beside them. The output samples and distils like any diffkd model.
//
//  * diffusers UNet2DModel (google/ddpm-cifar10-32 and the like): down_blocks.i.resnets.j,
//    attentions with to_q/to_k/to_v/to_out.0 or the older query/key/value/proj_attn; needs the
//    model's config.json; schedule and prediction from scheduler_config.json when present.
//  * pytorch-ddpm (Ho et al. in PyTorch): head, downblocks, middleblocks, upblocks, tail; its
//    checkpoint dict's net_model.* / ema_model.* (or a bare state_dict).
//  * improved-diffusion / guided-diffusion: input_blocks, middle_block, output_blocks, with qkv
//    in the legacy per-head interleaved order (or q|k|v with --attention-order new).
// What the weights cannot tell (image size, heads, schedule) comes from the options, with that
// codebase's defaults. Not supported: improved-diffusion's num_heads_upsample different from
// num_heads (our UNet has one head count), diffusers' class embeddings and non-default blocks. The input is a safetensors file or a torch.save checkpoint (.pt, .bin: read
// by nn/torch_checkpoint.h, which runs nothing from the file), nested dicts flattened with dots.

#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/trainer.h"
#include "nn/module.h"
#include "nn/safetensors.h"
#include "nn/unet_config.h"

namespace diffkd::convert {

struct ConvertOptions {
  std::string layout;  // "diffusers", "pytorch-ddpm" or "improved-diffusion"
  std::string input;   // the foreign checkpoint (.safetensors, .pt, .bin), or a diffusers folder
  // diffusers: config.json and scheduler_config.json; "" looks beside the input (and in
  // ../scheduler/ for the scheduler).
  std::string config, scheduler_config;
  int64_t image_size = 0;  // not stored by pytorch-ddpm or improved-diffusion; 0: their default
  int64_t num_heads = 0;   // improved-diffusion (0: its scripts' 4); with num_head_channels = -1
  int64_t num_head_channels = -1;
  std::string attention_order = "legacy";  // improved-diffusion's qkv: "legacy" or "new"
  std::string weights = "ema";             // pytorch-ddpm's dict: "ema" or "net"
  // improved-diffusion: the network was trained on t * 1000 / T (its scripts' default true;
  // guided-diffusion's false). Matters only when T != 1000.
  bool rescale_timesteps = true;
  // Overrides of what the layout implies ("" / 0: keep).
  std::string schedule, prediction;
  int64_t timesteps = 0;
};

struct Converted {
  nn::UNetConfig config;
  diffusion::DiffusionSpec spec;
  nn::NamedTensors state;           // our state_dict names
  std::vector<std::string> notes;   // what was derived or assumed, for the user to check
};

Converted convert_checkpoint(const ConvertOptions& options);

// Writes a diffkd model file (nn/checkpoint.h) after loading the state into a UNet of the config.
void save_converted(const Converted& converted, const ConvertOptions& options, const std::string& out_path);

// The layouts, one file each; `file` is the loaded input.
Converted from_diffusers(const safetensors::Contents& file, const ConvertOptions& options);
Converted from_pytorch_ddpm(const safetensors::Contents& file, const ConvertOptions& options);
Converted from_improved_diffusion(const safetensors::Contents& file, const ConvertOptions& options);

// linspace(start, end, steps): the linear betas of diffusers and pytorch-ddpm, which our named
// "linear" schedule equals only at T = 1000.
std::vector<double> linspace_betas(double start, double end, int64_t steps);

// Applies the --schedule/--timesteps/--prediction overrides to what the layout implied, and
// checks the result names a schedule and prediction we have.
void apply_overrides(diffusion::DiffusionSpec& spec, const ConvertOptions& options, std::vector<std::string>& notes);

}  // namespace diffkd::convert

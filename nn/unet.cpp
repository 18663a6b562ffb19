// The UNet's construction (the level loop of nn/README.md), forward pass and initialisation.

#include "nn/unet.h"

#include <algorithm>
#include <string>

namespace diffkd::nn {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::shared_ptr<TimestepSequential> UNet::add_block(
    std::vector<std::shared_ptr<TimestepSequential>>& list, const char* prefix) {
  auto block = register_module(std::string(prefix) + "." + std::to_string(list.size()),
                               std::make_shared<TimestepSequential>());
  list.push_back(block);
  return block;
}

UNet::UNet(const UNetConfig& config, uint64_t seed) : config_(config) {
  config_.validate();
  const UNetConfig& c = config_;
  Generator gen(seed);
  const int64_t ch = c.model_channels, emb_ch = 4 * ch;
  time_embed_in_ = register_module("time_embed.0", std::make_shared<Linear>(ch, emb_ch, gen));
  // time_embed.1 is SiLU.
  time_embed_out_ = register_module("time_embed.2", std::make_shared<Linear>(emb_ch, emb_ch, gen));
  if (c.num_classes > 0)
    label_emb_ = register_module("label_emb", std::make_shared<Embedding>(c.num_classes, emb_ch, gen));

  auto res_options = [&](ResBlockOptions::Resample r) {
    return ResBlockOptions{c.norm_groups, c.norm_eps, c.dropout, c.use_scale_shift_norm, r};
  };
  auto attention = [&](int64_t channels) {
    const int64_t heads = c.num_head_channels == -1 ? c.num_heads : channels / c.num_head_channels;
    return std::make_shared<AttentionBlock>(channels, heads, c.norm_groups, c.norm_eps, gen);
  };
  auto attends = [&](int64_t res) {
    return std::count(c.attention_resolutions.begin(), c.attention_resolutions.end(), res) > 0;
  };
  using Resample = ResBlockOptions::Resample;

  add_block(input_blocks_, "input_blocks")->append(std::make_shared<Conv2d>(c.in_channels, ch, 3, gen, 1, 1));
  std::vector<int64_t> skip_channels{ch};
  int64_t cur = ch, res = c.image_size;
  const size_t levels = c.channel_mult.size();
  for (size_t level = 0; level < levels; ++level) {
    for (int64_t i = 0; i < c.num_res_blocks; ++i) {
      auto block = add_block(input_blocks_, "input_blocks");
      const int64_t out = c.channel_mult[level] * ch;
      block->append(std::make_shared<ResBlock>(cur, out, emb_ch, res_options(Resample::None), gen));
      cur = out;
      if (attends(res)) block->append(attention(cur));
      skip_channels.push_back(cur);
    }
    if (level + 1 < levels) {
      auto block = add_block(input_blocks_, "input_blocks");
      if (c.resblock_updown)
        block->append(std::make_shared<ResBlock>(cur, cur, emb_ch, res_options(Resample::Down), gen));
      else
        block->append(std::make_shared<Downsample>(cur, c.conv_resample, c.downsample_padding == "bottom_right", gen));
      skip_channels.push_back(cur);
      res /= 2;
    }
  }

  middle_block_ = register_module("middle_block", std::make_shared<TimestepSequential>());
  middle_block_->append(std::make_shared<ResBlock>(cur, cur, emb_ch, res_options(Resample::None), gen));
  middle_block_->append(attention(cur));
  middle_block_->append(std::make_shared<ResBlock>(cur, cur, emb_ch, res_options(Resample::None), gen));

  for (size_t level = levels; level-- > 0;) {
    for (int64_t i = 0; i <= c.num_res_blocks; ++i) {
      auto block = add_block(output_blocks_, "output_blocks");
      const int64_t skip = skip_channels.back(), out = c.channel_mult[level] * ch;
      skip_channels.pop_back();
      block->append(std::make_shared<ResBlock>(cur + skip, out, emb_ch, res_options(Resample::None), gen));
      cur = out;
      if (attends(res)) block->append(attention(cur));
      if (level > 0 && i == c.num_res_blocks) {
        if (c.resblock_updown)
          block->append(std::make_shared<ResBlock>(cur, cur, emb_ch, res_options(Resample::Up), gen));
        else
          block->append(std::make_shared<Upsample>(cur, c.conv_resample, gen));
        res *= 2;
      }
    }
  }
  out_norm_ = register_module("out.0", std::make_shared<GroupNorm>(c.norm_groups, cur, c.norm_eps));
  // out.1 is SiLU.
  out_conv_ = register_module("out.2", std::make_shared<Conv2d>(cur, c.out_channels, 3, gen, 1, 1));
  initialize(gen);
}

// After the PyTorch defaults each layer drew: "adm" zeroes the last layer of every residual
// branch and the output conv; "ddpm" redraws every weight xavier-uniform with zero biases and
// gain 1e-5 on those same final layers (nn/README.md, Initialisation).
void UNet::initialize(Generator& gen) {
  auto is_final = [](const std::string& name) {
    return name.find("out_layers.3.") != std::string::npos ||
           name.find("proj_out.") != std::string::npos || name.rfind("out.2.", 0) == 0;
  };
  for (auto& [name, t] : named_parameters()) {
    const bool is_norm = t.dim() == 1 && !ends_with(name, ".bias");  // GroupNorm weights
    if (is_norm || name.rfind("label_emb", 0) == 0) continue;
    if (config_.init == "adm") {
      if (is_final(name)) init::zeros_(t);
    } else if (ends_with(name, ".bias")) {
      init::zeros_(t);
    } else if (ends_with(name, "qkv.weight")) {
      const int64_t c = t.size(1);
      for (int64_t part = 0; part < 3; ++part)  // q, k, v: three [C, C, 1] blocks
        init::xavier_uniform_(narrow(t.detach(), 0, part * c, c), gen);
    } else {
      init::xavier_uniform_(t, gen, is_final(name) ? 1e-5 : 1.0);
    }
  }
}

Tensor UNet::forward(const Tensor& x, const Tensor& t, const Tensor& y) {
  const UNetConfig& c = config_;
  DK_CHECK(x.dim() == 4 && x.size(1) == c.in_channels && x.size(2) == c.image_size &&
               x.size(3) == c.image_size,
           "UNet: input ", shape_str(x.shape()), " does not match the model's [N, ", c.in_channels,
           ", ", c.image_size, ", ", c.image_size, "]");
  DK_CHECK(t.dim() == 1 && t.size(0) == x.size(0), "UNet: timesteps ", shape_str(t.shape()),
           " do not match the batch of ", x.size(0));
  DK_CHECK((c.num_classes > 0) == y.defined(), "UNet: ",
           c.num_classes > 0 ? "a class-conditional model needs labels y" : "labels given to an unconditional model");
  // The sinusoidal table is computed on the host; it joins x on x's device.
  const Tensor table = to_device(timestep_embedding(t, c.model_channels, c.timestep_embedding_form()), x.device());
  Tensor emb = time_embed_out_->forward(silu(time_embed_in_->forward(table)));
  if (label_emb_) emb = emb + label_emb_->forward(to_device(y, x.device()));  // [N, 4 ch]

  std::vector<Tensor> skips;
  Tensor h = x;
  for (const auto& block : input_blocks_) {
    h = block->forward(h, emb);
    skips.push_back(h);
  }
  h = middle_block_->forward(h, emb);
  for (const auto& block : output_blocks_) {
    h = block->forward(concat({h, skips.back()}, 1), emb);
    skips.pop_back();
  }
  return out_conv_->forward(out_norm_->forward_silu(h));  // [N, out_channels, H, W]
}

}  // namespace diffkd::nn

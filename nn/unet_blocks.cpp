// The UNet's blocks (see unet_blocks.h and nn/README.md for the exact structure).

#include "nn/unet_blocks.h"

#include <cmath>

namespace diffkd::nn {

Tensor timestep_embedding(const Tensor& t, int64_t dim, const TimestepEmbeddingForm& form) {
  DK_CHECK(t.dim() == 1, "timestep_embedding: expected timesteps [N], got ", shape_str(t.shape()));
  const std::vector<double> steps = t.to_vector();
  const int64_t n = t.size(0), half = dim / 2;
  DK_CHECK(half - form.shift > 0, "timestep_embedding: shift ", form.shift, " leaves no frequencies for ",
           half, " pairs");
  const int64_t cos_at = form.sin_first ? half : 0, sin_at = form.sin_first ? 0 : half;
  std::vector<double> emb(n * dim, 0.0);  // an odd dim keeps a zero last column
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < half; ++j) {
      const double freq = std::exp(-std::log(10000.0) * static_cast<double>(j) / (half - form.shift));
      emb[i * dim + cos_at + j] = std::cos(steps[i] * freq);
      emb[i * dim + sin_at + j] = std::sin(steps[i] * freq);
    }
  return from_vector(emb, {n, dim}, DType::F32, t.device());
}

// --- ResBlock -----------------------------------------------------------------------------------

ResBlock::ResBlock(int64_t in_channels, int64_t out_channels, int64_t emb_channels,
                   const ResBlockOptions& options, Generator& gen)
    : out_channels_(out_channels), options_(options) {
  in_norm_ = register_module("in_layers.0", std::make_shared<GroupNorm>(options.groups, in_channels, options.norm_eps));
  // in_layers.1 is SiLU.
  in_conv_ = register_module("in_layers.2", std::make_shared<Conv2d>(in_channels, out_channels, 3, gen, 1, 1));
  // emb_layers.0 is SiLU.
  const int64_t emb_out = options.scale_shift_norm ? 2 * out_channels : out_channels;
  emb_proj_ = register_module("emb_layers.1", std::make_shared<Linear>(emb_channels, emb_out, gen));
  out_norm_ = register_module("out_layers.0", std::make_shared<GroupNorm>(options.groups, out_channels, options.norm_eps));
  // out_layers.1 is SiLU, out_layers.2 is Dropout.
  out_conv_ = register_module("out_layers.3", std::make_shared<Conv2d>(out_channels, out_channels, 3, gen, 1, 1));
  if (in_channels != out_channels)
    skip_ = register_module("skip_connection", std::make_shared<Conv2d>(in_channels, out_channels, 1, gen));
}

Tensor ResBlock::resample(const Tensor& x) const {
  switch (options_.resample) {
    case ResBlockOptions::Resample::Up: return upsample_nearest(x, 2);
    case ResBlockOptions::Resample::Down: return avg_pool2d(x, 2);
    case ResBlockOptions::Resample::None: break;
  }
  return x;
}

Tensor ResBlock::forward(const Tensor& x, const Tensor& emb) {
  Tensor h = in_norm_->forward_silu(x);
  const Tensor skip_in = resample(x);  // up/down-sampling blocks resample both paths
  h = in_conv_->forward(resample(h));  // [N, out, H', W']
  Tensor e = emb_proj_->forward(silu(emb));
  e = reshape(e, {e.size(0), e.size(1), 1, 1});  // [N, out or 2*out, 1, 1]
  if (options_.scale_shift_norm) {
    const Tensor scale = narrow(e, 1, 0, out_channels_);
    const Tensor shift = narrow(e, 1, out_channels_, out_channels_);
    h = silu(out_norm_->forward(h) * (scale + 1.0) + shift);
  } else {
    h = out_norm_->forward_silu(h + e);
  }
  h = out_conv_->forward(dropout(h, options_.dropout, is_training()));
  return (skip_ ? skip_->forward(skip_in) : skip_in) + h;
}

// --- AttentionBlock -------------------------------------------------------------------------------

AttentionBlock::Conv1x1::Conv1x1(int64_t in, int64_t out, Generator& gen) {
  weight = Tensor::empty({out, in, 1});
  init::default_weight_(weight, gen);
  bias = Tensor::empty({out});
  init::default_bias_(bias, in, gen);
  register_parameter("weight", &weight);
  register_parameter("bias", &bias);
}

AttentionBlock::AttentionBlock(int64_t channels, int64_t heads, int64_t groups, double norm_eps,
                               Generator& gen)
    : channels_(channels), heads_(heads) {
  DK_CHECK(heads > 0 && channels % heads == 0, "AttentionBlock: ", channels,
           " channels do not split into ", heads, " heads");
  norm_ = register_module("norm", std::make_shared<GroupNorm>(groups, channels, norm_eps));
  qkv_ = register_module("qkv", std::make_shared<Conv1x1>(channels, 3 * channels, gen));
  proj_out_ = register_module("proj_out", std::make_shared<Conv1x1>(channels, channels, gen));
}

Tensor AttentionBlock::forward(const Tensor& x, const Tensor&) {
  const int64_t n = x.size(0), c = channels_, h = x.size(2), w = x.size(3), l = h * w;
  const int64_t d = c / heads_;
  const Tensor u = reshape(x, {n, c, l});                          // [N, C, L]
  const Tensor tokens = transpose(norm_->forward(u), 1, 2);        // [N, L, C]
  const Tensor qkv = linear(tokens, reshape(qkv_->weight, {3 * c, c}), qkv_->bias);  // [N, L, 3C]
  // Split q, k, v first, then heads: channel c of q is head c / d, lane c % d.
  auto heads_of = [&](int64_t part) {
    return permute(reshape(narrow(qkv, 2, part * c, c), {n, l, heads_, d}), {0, 2, 1, 3});
  };
  const Tensor a = scaled_dot_product_attention(heads_of(0), heads_of(1), heads_of(2));  // [N, H, L, d]
  const Tensor merged = reshape(permute(a, {0, 2, 1, 3}), {n, l, c});                    // [N, L, C]
  const Tensor out = linear(merged, reshape(proj_out_->weight, {c, c}), proj_out_->bias);
  return reshape(u + transpose(out, 1, 2), {n, c, h, w});
}

// --- Downsample / Upsample ------------------------------------------------------------------------

Downsample::Downsample(int64_t channels, bool with_conv, bool pad_bottom_right, Generator& gen)
    : pad_bottom_right_(pad_bottom_right) {
  if (with_conv)
    op_ = register_module("op", std::make_shared<Conv2d>(channels, channels, 3, gen, 2, pad_bottom_right ? 0 : 1));
}

Tensor Downsample::forward(const Tensor& x, const Tensor&) {
  if (!op_) return avg_pool2d(x, 2);
  return op_->forward(pad_bottom_right_ ? pad(x, {0, 1, 0, 1}) : x);
}

Upsample::Upsample(int64_t channels, bool with_conv, Generator& gen) {
  if (with_conv) conv_ = register_module("conv", std::make_shared<Conv2d>(channels, channels, 3, gen, 1, 1));
}

Tensor Upsample::forward(const Tensor& x, const Tensor&) {
  const Tensor up = upsample_nearest(x, 2);
  return conv_ ? conv_->forward(up) : up;
}

}  // namespace diffkd::nn

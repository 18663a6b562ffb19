#pragma once
// The building blocks of the diffusion UNet (nn/README.md, "The UNet, exactly"): the sinusoidal
// timestep embedding, ResBlock (with optional AdaGN scale-shift norm and up/down-sampling),
// multi-head spatial self-attention, Downsample, Upsample, and TimestepSequential, the container
// that hands the time embedding to the layers that take it (guided-diffusion's
// TimestepEmbedSequential). Names match guided-diffusion's state_dict.

#include <functional>
#include <memory>
#include <type_traits>

#include "nn/layers.h"
#include "nn/unet_config.h"

namespace diffkd::nn {

// [N] timesteps -> [N, dim]: concat(cos(t f), sin(t f)) (or [sin, cos]), half = dim / 2,
// f_j = 10000^(-j / (half - shift)), computed in float64 (t f near t = 1000 needs the precision)
// and returned as float32. Not differentiable in t.
Tensor timestep_embedding(const Tensor& t, int64_t dim, const TimestepEmbeddingForm& form = {});

// A layer that reads the time embedding.
class TimestepLayer : public Module {
 public:
  virtual Tensor forward(const Tensor& x, const Tensor& emb) = 0;
};

struct ResBlockOptions {
  int64_t groups = 32;
  double norm_eps = 1e-5;
  double dropout = 0.0;
  bool scale_shift_norm = false;  // AdaGN (Dhariwal & Nichol 2021, sec. 3)
  enum class Resample { None, Up, Down } resample = Resample::None;
};

// GN-SiLU-conv, add the projected embedding (or scale-shift the second norm), GN-SiLU-dropout-conv,
// plus the skip connection (1x1 conv when the width changes).
class ResBlock : public TimestepLayer {
 public:
  ResBlock(int64_t in_channels, int64_t out_channels, int64_t emb_channels,
           const ResBlockOptions& options, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& emb) override;

 private:
  Tensor resample(const Tensor& x) const;
  int64_t out_channels_;
  ResBlockOptions options_;
  std::shared_ptr<GroupNorm> in_norm_, out_norm_;
  std::shared_ptr<Conv2d> in_conv_, out_conv_, skip_;
  std::shared_ptr<Linear> emb_proj_;
};

// Multi-head self-attention over the H*W positions, with a residual connection.
class AttentionBlock : public TimestepLayer {
 public:
  AttentionBlock(int64_t channels, int64_t heads, int64_t groups, double norm_eps, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& emb) override;
  int64_t heads() const { return heads_; }

 private:
  int64_t channels_, heads_;
  std::shared_ptr<GroupNorm> norm_;
  // Conv1d weights [3C, C, 1] and [C, C, 1], as PyTorch stores them.
  struct Conv1x1 : Module {
    Conv1x1(int64_t in, int64_t out, Generator& gen);
    Tensor weight, bias;
  };
  std::shared_ptr<Conv1x1> qkv_, proj_out_;
};

// Halves H and W: 3x3 stride-2 conv (`op`) or 2x2 average pooling. The conv pads one pixel on
// every side, or, with pad_bottom_right, only below and to the right (TensorFlow's "SAME" for
// stride 2 on even sizes: Ho et al.'s released models, diffusers' downsample_padding = 0).
class Downsample : public TimestepLayer {
 public:
  Downsample(int64_t channels, bool with_conv, bool pad_bottom_right, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& emb) override;

 private:
  std::shared_ptr<Conv2d> op_;
  bool pad_bottom_right_;
};

// Doubles H and W: nearest neighbour, then a 3x3 conv (`conv`) if with_conv.
class Upsample : public TimestepLayer {
 public:
  Upsample(int64_t channels, bool with_conv, Generator& gen);
  Tensor forward(const Tensor& x, const Tensor& emb) override;

 private:
  std::shared_ptr<Conv2d> conv_;
};

// Runs its layers in order, giving the embedding to those that take one; children are named
// "0", "1", ... as in nn.Sequential.
class TimestepSequential : public Module {
 public:
  template <typename M>
  void append(std::shared_ptr<M> layer) {
    register_module(std::to_string(layers_.size()), layer);
    if constexpr (std::is_base_of_v<TimestepLayer, M>)
      layers_.push_back([layer](const Tensor& x, const Tensor& emb) { return layer->forward(x, emb); });
    else
      layers_.push_back([layer](const Tensor& x, const Tensor&) { return layer->forward(x); });
  }
  Tensor forward(const Tensor& x, const Tensor& emb) const {
    Tensor h = x;
    for (const auto& layer : layers_) h = layer(h, emb);
    return h;
  }

 private:
  std::vector<std::function<Tensor(const Tensor&, const Tensor&)>> layers_;
};

}  // namespace diffkd::nn

// pytorch-ddpm (Ho et al.'s DDPM in PyTorch) -> our UNet (see convert.h).
//
// Its UNet is Ho et al.'s: head conv, downblocks (ResBlocks of block1 = [GroupNorm, Swish, conv],
// temb_proj = [Swish, Linear], block2 = [GroupNorm, Swish, Dropout, conv], a 1x1 shortcut and an
// AttnBlock inside the ResBlock when its level attends, with a DownSample after every level but the
// last), middleblocks (ResBlock with attention, ResBlock without), upblocks (num_res_blocks + 1
// ResBlocks per level and an UpSample), tail = [GroupNorm, Swish, conv]. Everything maps one to one
// except the time embedding: its frozen table interleaves sin and cos per frequency,
// [sin f0, cos f0, sin f1, ...] with f_j = 10000^(-2j / ch); the same columns of the first Linear,
// reordered, read our [sin, cos] table exactly, so the converted model records "sin_cos".

#include <cmath>

#include "convert/convert.h"
#include "autograd/grad_mode.h"
#include "convert/tensor_mapping.h"
#include "tensor/error.h"

namespace diffkd::convert {

namespace {

struct Structure {
  std::vector<int64_t> level_widths;
  std::vector<bool> level_attends;
  int64_t res_blocks = 0;
};

// Walks downblocks.0, 1, ...: ResBlocks until a DownSample closes the level.
Structure read_structure(const SourceTensors& source) {
  Structure s;
  int64_t in_level = 0;
  bool level_attends = false;
  auto close_level = [&](int64_t width) {
    if (s.level_widths.empty()) s.res_blocks = in_level;
    if (in_level != s.res_blocks || in_level == 0)
      source.fail("level " + std::to_string(s.level_widths.size()) + " has " + std::to_string(in_level) +
                  " ResBlocks, level 0 has " + std::to_string(s.res_blocks) + " (our levels all have the same count)");
    s.level_widths.push_back(width);
    s.level_attends.push_back(level_attends);
    in_level = 0;
  };
  int64_t width = 0;
  for (int64_t d = 0;; ++d) {
    const std::string block = "downblocks." + std::to_string(d) + ".";
    if (source.has(block + "block1.0.weight")) {
      const bool attends = source.has(block + "attn.proj_q.weight");
      if (in_level > 0 && attends != level_attends)
        source.fail("'" + block + "' attends and an earlier ResBlock of its level does not (or the reverse)");
      level_attends = attends;
      width = source.shape_of(block + "block2.3.weight", 4)[0];
      ++in_level;
    } else if (source.has(block + "main.weight")) {
      close_level(width);
    } else {
      break;
    }
  }
  close_level(width);
  return s;
}

}  // namespace

Converted from_pytorch_ddpm(const safetensors::Contents& file, const ConvertOptions& o) {
  // Its checkpoints are {"net_model": ..., "ema_model": ..., "optim": ..., ...}; flattened, the
  // weights are under these prefixes. A bare state_dict has none.
  bool has_dict = false;
  for (const auto& [name, tensor] : file.tensors)
    has_dict = has_dict || name.rfind("net_model.", 0) == 0 || name.rfind("ema_model.", 0) == 0;
  DK_CHECK(o.weights == "ema" || o.weights == "net", "convert: --weights must be ema or net, got ", o.weights);
  const std::string prefix = has_dict ? o.weights + "_model." : "";
  bool has_prefix = !has_dict;
  for (const auto& [name, tensor] : file.tensors) has_prefix = has_prefix || name.rfind(prefix, 0) == 0;
  DK_CHECK(has_prefix, o.input, ": pytorch-ddpm layout: the checkpoint dict has no ", o.weights, "_model (try --weights ",
           o.weights == "ema" ? "net" : "ema", ")");
  SourceTensors source(file, "pytorch-ddpm", prefix);

  Converted out;
  nn::UNetConfig& c = out.config;
  const Shape& head = source.shape_of("head.weight", 4);
  const Shape& table = source.shape_of("time_embedding.timembedding.0.weight", 2);
  const Structure s = read_structure(source);
  if (s.level_widths.size() > 16)
    source.fail(std::to_string(s.level_widths.size()) + " levels: more than a UNet of any image size has");
  c.image_size = o.image_size > 0 ? o.image_size : 32;
  c.in_channels = head[1];
  c.model_channels = head[0];
  c.out_channels = source.shape_of("tail.2.weight", 4)[0];
  c.num_res_blocks = s.res_blocks;
  c.channel_mult.clear();
  c.attention_resolutions.clear();
  for (size_t l = 0; l < s.level_widths.size(); ++l) {
    if (s.level_widths[l] % c.model_channels != 0)
      source.fail("level " + std::to_string(l) + " is " + std::to_string(s.level_widths[l]) +
                  " channels wide, not a multiple of head's " + std::to_string(c.model_channels));
    c.channel_mult.push_back(s.level_widths[l] / c.model_channels);
    if (s.level_attends[l]) c.attention_resolutions.push_back(c.image_size >> l);
  }
  c.num_heads = 1;
  c.norm_groups = 32;  // GroupNorm(32, ...) throughout its code
  c.time_embedding_order = "sin_cos";
  c.validate(o.input + " (pytorch-ddpm, image size " + std::to_string(c.image_size) + ")");
  out.notes.push_back("model: " + c.to_json() + (o.image_size > 0 ? "" : " (image size: pytorch-ddpm's default 32; --image-size)"));
  if (!source.has("middleblocks.0.attn.proj_q.weight") || source.has("middleblocks.1.attn.proj_q.weight"))
    source.fail("middleblocks.0 must attend and middleblocks.1 must not, as in Ho et al.'s UNet");

  if (table[1] != c.model_channels)
    source.fail("time_embedding.timembedding.0.weight is " + shape_str(table) + ", expected [T," +
                std::to_string(c.model_channels) + "] (head's width)");
  if (o.timesteps > 0 && o.timesteps != table[0])
    source.fail("--timesteps " + std::to_string(o.timesteps) + " differs from the " + std::to_string(table[0]) +
                " rows of its time-embedding table, which is its T");
  // Its betas are linspace(1e-4, 0.02, T) (its defaults; T is the table's length): our linear
  // schedule at T = 1000, the file's own betas at any other T.
  out.spec = table[0] == 1000 ? diffusion::DiffusionSpec{"linear", 1000, "eps"}
                              : diffusion::DiffusionSpec::of_betas(linspace_betas(1e-4, 0.02, table[0]), "eps", o.input);

  TargetState target(source, c);
  // The frozen table: check it is the interleaved sinusoid (a different table is a different
  // model), then read the first Linear's columns in our [sin, cos] order.
  {
    NoGradGuard no_grad;
    const Tensor stored = source.take("time_embedding.timembedding.0.weight", table);
    const int64_t half = c.model_channels / 2;
    std::vector<double> expected(static_cast<size_t>(table[0] * table[1]));
    for (int64_t t = 0; t < table[0]; ++t)
      for (int64_t j = 0; j < half; ++j) {
        const double angle = static_cast<double>(t) * std::exp(-std::log(10000.0) * 2.0 * j / c.model_channels);
        expected[t * table[1] + 2 * j] = std::sin(angle);
        expected[t * table[1] + 2 * j + 1] = std::cos(angle);
      }
    const std::vector<double> have = stored.to_vector();
    double worst = 0;
    for (size_t i = 0; i < have.size(); ++i) worst = std::max(worst, std::abs(have[i] - expected[i]));
    if (!(worst < 1e-3))
      source.fail("time_embedding.timembedding.0.weight is not the interleaved sinusoidal table (largest "
                  "difference " + std::to_string(worst) + ")");
    std::vector<double> order;
    for (int64_t j = 0; j < half; ++j) order.push_back(static_cast<double>(2 * j));
    for (int64_t j = 0; j < half; ++j) order.push_back(static_cast<double>(2 * j + 1));
    const Tensor index = from_vector(order, {2 * half}, DType::I64);
    const int64_t emb_ch = target.shape_of("time_embed.0.weight")[0];
    target.set("time_embed.0.weight",
               index_select(source.take("time_embedding.timembedding.1.weight", {emb_ch, c.model_channels}), 1, index));
    target.copy("time_embed.0.bias", "time_embedding.timembedding.1.bias");
    target.copy_layer("time_embed.2", "time_embedding.timembedding.3");
  }

  const TargetState::ResBlockNames resblock{"block1.0", "block1.2", "temb_proj.1", "block2.0", "block2.3", "shortcut"};
  const TargetState::AttentionNames attn{"attn.group_norm", "attn.proj_q", "attn.proj_k", "attn.proj_v", "attn.proj"};
  const int64_t levels = static_cast<int64_t>(c.channel_mult.size());
  target.copy_layer("input_blocks.0.0", "head");
  int64_t k = 1, d = 0;
  for (int64_t l = 0; l < levels; ++l) {
    for (int64_t j = 0; j < c.num_res_blocks; ++j, ++k, ++d) {
      const std::string ours = "input_blocks." + std::to_string(k), theirs = "downblocks." + std::to_string(d) + ".";
      target.resblock(ours + ".0", theirs, resblock);
      if (s.level_attends[l]) target.attention(ours + ".1", theirs, attn);
    }
    if (l + 1 < levels) target.copy_layer("input_blocks." + std::to_string(k++) + ".0.op", "downblocks." + std::to_string(d++) + ".main");
  }
  target.resblock("middle_block.0", "middleblocks.0.", resblock);
  target.attention("middle_block.1", "middleblocks.0.", attn);
  target.resblock("middle_block.2", "middleblocks.1.", resblock);
  k = 0;
  int64_t u = 0;
  for (int64_t l = levels - 1; l >= 0; --l) {
    for (int64_t j = 0; j <= c.num_res_blocks; ++j, ++k, ++u) {
      const std::string ours = "output_blocks." + std::to_string(k), theirs = "upblocks." + std::to_string(u) + ".";
      target.resblock(ours + ".0", theirs, resblock);
      if (s.level_attends[l]) target.attention(ours + ".1", theirs, attn);
      if (j == c.num_res_blocks && l > 0)
        target.copy_layer(ours + (s.level_attends[l] ? ".2" : ".1") + ".conv", "upblocks." + std::to_string(++u) + ".main");
    }
  }
  target.copy_layer("out.0", "tail.0");
  target.copy_layer("out.2", "tail.2");
  out.state = target.finish();
  return out;
}

}  // namespace diffkd::convert

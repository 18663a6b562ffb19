// diffusers' UNet2DModel -> our UNet (see convert.h).
//
// The two are the same network under other names: UNet2DModel's down block i is our level i
// (layers_per_block ResnetBlock2D, each followed by an attention in AttnDownBlock2D, then a
// Downsample2D except at the last level), its mid block is our middle_block, and up block i is our
// level L-1-i with layers_per_block + 1 resnets and an Upsample2D except at the end. What differs
// by model is recorded in our config: the sinusoidal table's order (flip_sin_to_cos) and
// frequencies (freq_shift), norm_eps, and downsample_padding 0 (TensorFlow's SAME padding of Ho
// et al.'s converted models).

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "convert/convert.h"
#include "convert/tensor_mapping.h"
#include "tensor/error.h"

namespace diffkd::convert {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A JSON file whose fields are read with their file and name in every error.
struct JsonFile {
  std::string path;
  json j;

  static JsonFile read(const std::string& path) {
    std::ifstream in(path);
    DK_CHECK(in, path, ": cannot open");
    std::stringstream text;
    text << in.rdbuf();
    JsonFile f{path, {}};
    try {
      f.j = json::parse(text.str());
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too big
      fail(path, ": invalid JSON (", e.what(), ")");
    }
    DK_CHECK(f.j.is_object(), path, ": expected a JSON object");
    return f;
  }
  bool null_or_absent(const char* key) const { return !j.contains(key) || j.at(key).is_null(); }
  template <typename T>
  T get(const char* key, const T& fallback) const {
    if (null_or_absent(key)) return fallback;
    try {
      return j.at(key).get<T>();
    } catch (const json::exception&) {
      fail(path, ": field '", key, "' has the wrong type: ", j.at(key).dump());
    }
  }
  template <typename T>
  T required(const char* key) const {
    DK_CHECK(!null_or_absent(key), path, ": field '", key, "' is missing");
    return get<T>(key, T{});
  }
  // A field our UNet supports only at one value.
  template <typename T>
  void expect(const char* key, const T& supported, const T& fallback) const {
    const T value = get<T>(key, fallback);
    DK_CHECK(value == supported, path, ": field '", key, "' is ", json(value).dump(), "; only ",
             json(supported).dump(), " converts to our UNet");
  }
};

std::string beside(const std::string& input, const std::string& name) {
  return (fs::path(input).parent_path() / name).string();
}

nn::UNetConfig derive_config(const JsonFile& f, std::vector<std::string>& notes) {
  const std::string cls = f.get<std::string>("_class_name", "UNet2DModel");
  DK_CHECK(cls == "UNet2DModel", f.path, ": field '_class_name' is \"", cls, "\"; convert reads UNet2DModel");
  f.expect<std::string>("act_fn", "silu", "silu");
  f.expect<std::string>("time_embedding_type", "positional", "positional");
  f.expect<std::string>("resnet_time_scale_shift", "default", "default");
  f.expect<bool>("center_input_sample", false, false);
  f.expect<bool>("add_attention", true, true);
  f.expect<double>("mid_block_scale_factor", 1.0, 1.0);
  f.expect<std::string>("downsample_type", "conv", "conv");
  f.expect<std::string>("upsample_type", "conv", "conv");
  for (const char* absent : {"class_embed_type", "num_class_embeds", "time_embedding_dim", "attn_norm_num_groups"})
    DK_CHECK(f.null_or_absent(absent), f.path, ": field '", absent, "' is set (", f.j.at(absent).dump(),
             "); convert reads unconditional UNet2DModels with the default embedding and norms");

  nn::UNetConfig c;
  const json size = f.required<json>("sample_size");
  if (size.is_array()) {
    DK_CHECK(size.size() == 2 && size[0] == size[1] && size[0].is_number_integer(), f.path,
             ": field 'sample_size' must be square, got ", size.dump());
    c.image_size = size[0].get<int64_t>();
  } else {
    c.image_size = f.required<int64_t>("sample_size");
  }
  DK_CHECK(c.image_size > 0, f.path, ": field 'sample_size' must be positive, got ", c.image_size);
  c.in_channels = f.get<int64_t>("in_channels", 3);
  c.out_channels = f.get<int64_t>("out_channels", 3);
  const auto widths = f.required<std::vector<int64_t>>("block_out_channels");
  const auto down = f.required<std::vector<std::string>>("down_block_types");
  const auto up = f.required<std::vector<std::string>>("up_block_types");
  DK_CHECK(!widths.empty() && down.size() == widths.size() && up.size() == widths.size(), f.path,
           ": block_out_channels, down_block_types and up_block_types must have one entry per level");
  c.model_channels = widths[0];
  c.channel_mult.clear();
  c.attention_resolutions.clear();
  const size_t levels = widths.size();
  DK_CHECK(levels <= 16, f.path, ": ", levels, " levels: more than a UNet of any image size has");
  for (size_t l = 0; l < levels; ++l) {
    DK_CHECK(widths[l] > 0 && widths[l] % widths[0] == 0, f.path, ": block_out_channels[", l, "] = ", widths[l],
             " is not a multiple of block_out_channels[0] = ", widths[0], " (our levels are multiples of the base width)");
    c.channel_mult.push_back(widths[l] / widths[0]);
    DK_CHECK(down[l] == "DownBlock2D" || down[l] == "AttnDownBlock2D", f.path, ": down_block_types[", l, "] is \"",
             down[l], "\"; convert reads DownBlock2D and AttnDownBlock2D");
    const std::string& mirror = up[levels - 1 - l];
    DK_CHECK(mirror == "UpBlock2D" || mirror == "AttnUpBlock2D", f.path, ": up_block_types[", levels - 1 - l,
             "] is \"", mirror, "\"; convert reads UpBlock2D and AttnUpBlock2D");
    const bool attends = down[l] == "AttnDownBlock2D";
    DK_CHECK(attends == (mirror == "AttnUpBlock2D"), f.path, ": level ", l, " attends on one path only (",
             down[l], " / ", mirror, "); our UNet attends at the same resolutions down and up");
    if (attends) c.attention_resolutions.push_back(c.image_size >> l);
  }
  c.num_res_blocks = f.required<int64_t>("layers_per_block");
  c.norm_groups = f.get<int64_t>("norm_num_groups", 32);
  c.norm_eps = f.get<double>("norm_eps", 1e-5);
  c.dropout = f.get<double>("dropout", 0.0);
  c.time_embedding_order = f.get<bool>("flip_sin_to_cos", true) ? "cos_sin" : "sin_cos";
  c.time_embedding_shift = f.get<double>("freq_shift", 0.0);
  const int64_t padding = f.get<int64_t>("downsample_padding", 1);
  DK_CHECK(padding == 0 || padding == 1, f.path, ": field 'downsample_padding' is ", padding, "; 0 or 1 convert");
  c.downsample_padding = padding == 0 ? "bottom_right" : "symmetric";
  // attention_head_dim: heads of that width; null: one head of the block's width; absent:
  // UNet2DModel's default, 8.
  c.num_heads = 1;
  c.num_head_channels = !f.j.contains("attention_head_dim") ? 8 : f.get<int64_t>("attention_head_dim", -1);
  c.validate(f.path);
  notes.push_back("model: " + c.to_json());
  return c;
}

// diffusers' DDPMScheduler/DDIMScheduler settings -> ours; none found: linear, 1000, eps.
diffusion::DiffusionSpec derive_spec(const std::string& path, std::vector<std::string>& notes) {
  diffusion::DiffusionSpec spec{"linear", 1000, "eps"};
  if (path.empty()) {
    notes.push_back("no scheduler_config.json found: assuming diffusers' DDPMScheduler defaults (linear betas "
                    "1e-4..0.02, 1000 steps, epsilon); --schedule/--timesteps/--prediction override");
    return spec;
  }
  const JsonFile f = JsonFile::read(path);
  spec.timesteps = f.get<int64_t>("num_train_timesteps", 1000);
  DK_CHECK(spec.timesteps > 1 && spec.timesteps <= 100000, path, ": field 'num_train_timesteps' is ", spec.timesteps,
           ", expected 2..100000");
  f.expect<bool>("rescale_betas_zero_snr", false, false);
  const std::string betas = f.get<std::string>("beta_schedule", "linear");
  const double start = f.get<double>("beta_start", 1e-4), end = f.get<double>("beta_end", 0.02);
  std::vector<double> own;  // betas our named schedules do not give
  if (!f.null_or_absent("trained_betas")) {
    own = f.required<std::vector<double>>("trained_betas");
  } else if (betas == "linear") {
    // Ours is Ho et al.'s 1e-4..0.02 at T = 1000 (both ends scaled by 1000 / T elsewhere).
    if (spec.timesteps == 1000 && start == 1e-4 && end == 0.02)
      spec.schedule = "linear";
    else
      own = linspace_betas(start, end, spec.timesteps);
  } else if (betas == "scaled_linear") {
    own = linspace_betas(std::sqrt(start), std::sqrt(end), spec.timesteps);
    for (double& b : own) b *= b;
  } else if (betas == "squaredcos_cap_v2") {
    spec.schedule = "cosine";
  } else {
    fail(path, ": field 'beta_schedule' is \"", betas, "\"; convert reads linear, scaled_linear, squaredcos_cap_v2 "
         "and trained_betas");
  }
  const std::string prediction = f.get<std::string>("prediction_type", "epsilon");
  if (prediction == "epsilon")
    spec.prediction = "eps";
  else if (prediction == "v_prediction")
    spec.prediction = "v";
  else if (prediction == "sample")
    spec.prediction = "x0";
  else
    fail(path, ": field 'prediction_type' is \"", prediction, "\"; convert reads epsilon, v_prediction and sample");
  if (!own.empty()) {
    spec = diffusion::DiffusionSpec::of_betas(own, spec.prediction, path);
    DK_CHECK(f.null_or_absent("trained_betas") || spec.timesteps == f.get<int64_t>("num_train_timesteps", spec.timesteps),
             path, ": ", spec.timesteps, " trained_betas for num_train_timesteps ", f.get<int64_t>("num_train_timesteps", 0));
  }
  notes.push_back("scheduler: " + path);
  return spec;
}

std::string find_scheduler_config(const ConvertOptions& o) {
  if (!o.scheduler_config.empty()) return o.scheduler_config;
  if (const std::string here = beside(o.input, "scheduler_config.json"); fs::exists(here)) return here;
  // A pipeline folder keeps the UNet in unet/ and the scheduler in scheduler/.
  const fs::path folder = fs::absolute(fs::path(o.input)).parent_path();
  if (folder.filename() == "unet" && fs::exists(folder.parent_path() / "scheduler" / "scheduler_config.json"))
    return (folder.parent_path() / "scheduler" / "scheduler_config.json").string();
  return "";
}

}  // namespace

Converted from_diffusers(const safetensors::Contents& file, const ConvertOptions& o) {
  const std::string config_path = o.config.empty() ? beside(o.input, "config.json") : o.config;
  DK_CHECK(fs::exists(config_path), o.input, ": diffusers layout: the model's config.json is needed and ",
           config_path, " does not exist (pass --config)");
  Converted out;
  out.config = derive_config(JsonFile::read(config_path), out.notes);
  out.spec = derive_spec(find_scheduler_config(o), out.notes);
  const nn::UNetConfig& c = out.config;
  const int64_t levels = static_cast<int64_t>(c.channel_mult.size());

  SourceTensors source(file, "diffusers");
  TargetState target(source, c);
  const TargetState::ResBlockNames resnet{"norm1", "conv1", "time_emb_proj", "norm2", "conv2", "conv_shortcut"};
  // The attention's names changed in diffusers 0.15 (AttentionBlock -> Attention); both occur.
  auto attention = [&](const std::string& ours, const std::string& theirs) {
    if (source.has(theirs + "query.weight"))
      target.attention(ours, theirs, {"group_norm", "query", "key", "value", "proj_attn"});
    else
      target.attention(ours, theirs, {"group_norm", "to_q", "to_k", "to_v", "to_out.0"});
  };
  auto attends = [&](int64_t level) {
    return std::count(c.attention_resolutions.begin(), c.attention_resolutions.end(), c.image_size >> level) > 0;
  };

  target.copy_layer("time_embed.0", "time_embedding.linear_1");
  target.copy_layer("time_embed.2", "time_embedding.linear_2");
  target.copy_layer("input_blocks.0.0", "conv_in");
  int64_t k = 1;
  for (int64_t l = 0; l < levels; ++l) {
    const std::string block = "down_blocks." + std::to_string(l) + ".";
    for (int64_t j = 0; j < c.num_res_blocks; ++j, ++k) {
      const std::string ours = "input_blocks." + std::to_string(k);
      target.resblock(ours + ".0", block + "resnets." + std::to_string(j) + ".", resnet);
      if (attends(l)) attention(ours + ".1", block + "attentions." + std::to_string(j) + ".");
    }
    if (l + 1 < levels) target.copy_layer("input_blocks." + std::to_string(k++) + ".0.op", block + "downsamplers.0.conv");
  }
  target.resblock("middle_block.0", "mid_block.resnets.0.", resnet);
  attention("middle_block.1", "mid_block.attentions.0.");
  target.resblock("middle_block.2", "mid_block.resnets.1.", resnet);
  k = 0;
  for (int64_t i = 0; i < levels; ++i) {
    const int64_t l = levels - 1 - i;
    const std::string block = "up_blocks." + std::to_string(i) + ".";
    for (int64_t j = 0; j <= c.num_res_blocks; ++j, ++k) {
      const std::string ours = "output_blocks." + std::to_string(k);
      target.resblock(ours + ".0", block + "resnets." + std::to_string(j) + ".", resnet);
      if (attends(l)) attention(ours + ".1", block + "attentions." + std::to_string(j) + ".");
      if (j == c.num_res_blocks && l > 0)
        target.copy_layer(ours + (attends(l) ? ".2" : ".1") + ".conv", block + "upsamplers.0.conv");
    }
  }
  target.copy_layer("out.0", "conv_norm_out");
  target.copy_layer("out.2", "conv_out");
  out.state = target.finish();
  return out;
}

}  // namespace diffkd::convert

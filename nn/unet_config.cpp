// UNetConfig <-> JSON, and its consistency checks (see unet_config.h).

#include "nn/unet_config.h"

#include <algorithm>
#include <type_traits>
#include <nlohmann/json.hpp>

#include "tensor/error.h"

namespace diffkd::nn {

using nlohmann::json;

namespace {

// Reads j[key] into value when present; the JSON type must match exactly (2.5 is not an int).
template <typename T>
void read_field(const json& j, const char* key, T& value, const std::string& source) {
  if (!j.contains(key)) return;
  const json& v = j.at(key);
  bool ok = false;
  const char* expected = "";
  if constexpr (std::is_same_v<T, bool>) {
    ok = v.is_boolean(), expected = "true or false";
  } else if constexpr (std::is_integral_v<T>) {
    ok = v.is_number_integer(), expected = "an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    ok = v.is_number(), expected = "a number";
  } else if constexpr (std::is_same_v<T, std::string>) {
    ok = v.is_string(), expected = "a string";
  } else {
    ok = v.is_array() && std::all_of(v.begin(), v.end(),
                                     [](const json& e) { return e.is_number_integer(); });
    expected = "a list of integers";
  }
  DK_CHECK(ok, source, ": field '", key, "' must be ", expected, ", got ", v.dump());
  value = v.get<T>();
}

}  // namespace

void UNetConfig::validate(const std::string& source) const {
  auto positive = [&](const char* name, int64_t v) {
    DK_CHECK(v > 0, source, ": ", name, " must be positive, got ", v);
  };
  positive("image_size", image_size);
  positive("in_channels", in_channels);
  positive("model_channels", model_channels);
  positive("out_channels", out_channels);
  positive("num_res_blocks", num_res_blocks);
  positive("norm_groups", norm_groups);
  DK_CHECK(!channel_mult.empty(), source, ": channel_mult is empty");
  DK_CHECK(dropout >= 0 && dropout < 1, source, ": dropout must be in [0, 1), got ", dropout);
  DK_CHECK(num_classes >= 0, source, ": num_classes must be >= 0, got ", num_classes);
  DK_CHECK(init == "ddpm" || init == "adm", source, ": init must be \"ddpm\" or \"adm\", got \"",
           init, "\"");
  DK_CHECK(time_embedding_order == "cos_sin" || time_embedding_order == "sin_cos", source,
           ": time_embedding_order must be \"cos_sin\" or \"sin_cos\", got \"", time_embedding_order, "\"");
  DK_CHECK(time_embedding_shift >= 0 && time_embedding_shift < model_channels / 2, source,
           ": time_embedding_shift must be in [0, model_channels / 2), got ", time_embedding_shift);
  DK_CHECK(norm_eps > 0 && norm_eps < 1, source, ": norm_eps must be in (0, 1), got ", norm_eps);
  DK_CHECK(downsample_padding == "symmetric" || downsample_padding == "bottom_right", source,
           ": downsample_padding must be \"symmetric\" or \"bottom_right\", got \"", downsample_padding, "\"");
  DK_CHECK(downsample_padding == "symmetric" || (conv_resample && !resblock_updown), source,
           ": downsample_padding \"bottom_right\" pads the stride-2 conv, which this model does not have "
           "(conv_resample false or resblock_updown)");
  DK_CHECK(num_head_channels == -1 || num_head_channels > 0, source,
           ": num_head_channels must be -1 or positive, got ", num_head_channels);
  DK_CHECK(num_head_channels != -1 || num_heads > 0, source, ": num_heads must be positive");
  int64_t resolution = image_size;
  std::vector<int64_t> reached{resolution};
  for (size_t level = 0; level < channel_mult.size(); ++level) {
    const int64_t width = channel_mult[level] * model_channels;
    DK_CHECK(channel_mult[level] > 0, source, ": channel_mult[", level, "] must be positive");
    DK_CHECK(width % norm_groups == 0, source, ": level ", level, " has ", width,
             " channels, not divisible by norm_groups ", norm_groups);
    const bool attends = std::count(attention_resolutions.begin(), attention_resolutions.end(),
                                    resolution) > 0;
    if (attends) {
      const int64_t heads = num_head_channels == -1 ? num_heads : width / num_head_channels;
      DK_CHECK(heads > 0 && width % heads == 0 &&
                   (num_head_channels == -1 || width % num_head_channels == 0),
               source, ": attention at ", resolution, "x", resolution, " has ", width,
               " channels, which do not split into heads (num_heads ", num_heads,
               ", num_head_channels ", num_head_channels, ")");
    }
    if (level + 1 < channel_mult.size()) {
      DK_CHECK(resolution % 2 == 0, source, ": level ", level, " is ", resolution, "x",
               resolution, ", which cannot be halved and doubled back; pad the images or use "
               "fewer levels");
      resolution /= 2;
      reached.push_back(resolution);
    }
  }
  for (int64_t r : attention_resolutions)
    DK_CHECK(std::count(reached.begin(), reached.end(), r) > 0, source, ": attention_resolutions ",
             "lists ", r, ", but the levels are at ", json(reached).dump());
}

std::string UNetConfig::to_json() const {
  json j = {{"image_size", image_size},
            {"in_channels", in_channels},
            {"model_channels", model_channels},
            {"out_channels", out_channels},
            {"num_res_blocks", num_res_blocks},
            {"attention_resolutions", attention_resolutions},
            {"channel_mult", channel_mult},
            {"dropout", dropout},
            {"num_heads", num_heads},
            {"num_head_channels", num_head_channels},
            {"use_scale_shift_norm", use_scale_shift_norm},
            {"resblock_updown", resblock_updown},
            {"conv_resample", conv_resample},
            {"num_classes", num_classes},
            {"norm_groups", norm_groups},
            {"init", init}};
  if (time_embedding_order != "cos_sin") j["time_embedding_order"] = time_embedding_order;
  if (time_embedding_shift != 0.0) j["time_embedding_shift"] = time_embedding_shift;
  if (norm_eps != 1e-5) j["norm_eps"] = norm_eps;
  if (downsample_padding != "symmetric") j["downsample_padding"] = downsample_padding;
  return j.dump();
}

UNetConfig UNetConfig::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too big
    fail(source, ": invalid JSON (", e.what(), ")");
  }
  DK_CHECK(j.is_object(), source, ": expected a JSON object of UNet fields");
  static const char* const kFields[] = {
      "image_size", "in_channels", "model_channels", "out_channels", "num_res_blocks",
      "attention_resolutions", "channel_mult", "dropout", "num_heads", "num_head_channels",
      "use_scale_shift_norm", "resblock_updown", "conv_resample", "num_classes", "norm_groups",
      "init", "time_embedding_order", "time_embedding_shift",
      "norm_eps", "downsample_padding"};
  for (const auto& item : j.items()) {  // not a structured binding: clang 14 cannot capture one
    const std::string& key = item.key();
    DK_CHECK(std::find_if(std::begin(kFields), std::end(kFields),
                          [&](const char* f) { return key == f; }) != std::end(kFields),
             source, ": unknown UNet field '", key, "'");
  }
  UNetConfig c;
  read_field(j, "image_size", c.image_size, source);
  read_field(j, "in_channels", c.in_channels, source);
  read_field(j, "model_channels", c.model_channels, source);
  read_field(j, "out_channels", c.out_channels, source);
  read_field(j, "num_res_blocks", c.num_res_blocks, source);
  read_field(j, "attention_resolutions", c.attention_resolutions, source);
  read_field(j, "channel_mult", c.channel_mult, source);
  read_field(j, "dropout", c.dropout, source);
  read_field(j, "num_heads", c.num_heads, source);
  read_field(j, "num_head_channels", c.num_head_channels, source);
  read_field(j, "use_scale_shift_norm", c.use_scale_shift_norm, source);
  read_field(j, "resblock_updown", c.resblock_updown, source);
  read_field(j, "conv_resample", c.conv_resample, source);
  read_field(j, "num_classes", c.num_classes, source);
  read_field(j, "norm_groups", c.norm_groups, source);
  read_field(j, "init", c.init, source);
  read_field(j, "time_embedding_order", c.time_embedding_order, source);
  read_field(j, "time_embedding_shift", c.time_embedding_shift, source);
  read_field(j, "norm_eps", c.norm_eps, source);
  read_field(j, "downsample_padding", c.downsample_padding, source);
  c.validate(source);
  return c;
}

}  // namespace diffkd::nn

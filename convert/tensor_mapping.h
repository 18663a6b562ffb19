#pragma once
// The bookkeeping every checkpoint layout shares: the foreign file's tensors (each used at most
// once, every one accounted for at the end) and the target, our UNet's state_dict names and
// shapes for the derived config. A foreign tensor that does not fit is a one-line error naming
// the file, the tensor, its shape and the shape our model expects there.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "nn/module.h"
#include "nn/safetensors.h"
#include "nn/unet_config.h"

namespace diffkd::convert {

// The tensors of a foreign checkpoint under `prefix` (e.g. pytorch-ddpm's "ema_model."), named
// without it. Floating tensors are read as float32.
class SourceTensors {
 public:
  SourceTensors(const safetensors::Contents& file, const std::string& layout, const std::string& prefix = "");

  bool has(const std::string& name) const { return tensors_.count(name) > 0; }
  // The shape of a tensor the layout requires; its absence is an error naming the layout.
  const Shape& shape_of(const std::string& name) const;
  // The same, for a tensor whose sizes the layout reads: it must have `rank` dimensions, none empty.
  const Shape& shape_of(const std::string& name, size_t rank) const;
  // Every name that starts with `start`.
  std::vector<std::string> names_starting_with(const std::string& start) const;
  // Marks `name` used and returns it reshaped to `shape`; it must have that shape, or that shape
  // with trailing 1s (a 1x1 conv [C, C, 1, 1] read as a linear [C, C]).
  Tensor take(const std::string& name, const Shape& shape);
  // The first tensor never taken, as the error a file with foreign extras gets.
  void check_all_taken() const;
  // "FILE: <layout> layout: <what>" as a diffkd::Error.
  [[noreturn]] void fail(const std::string& what) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_, layout_, prefix_;
  std::map<std::string, Tensor> tensors_;
  std::vector<std::string> order_;  // the file's order, for check_all_taken's message
  std::set<std::string> taken_;
};

// Fills our state_dict for `config` from a SourceTensors: each target tensor exactly once, with
// our shape; finish() checks that nothing of either side is left over.
class TargetState {
 public:
  TargetState(SourceTensors& source, const nn::UNetConfig& config);

  bool has(const std::string& ours) const { return shapes_.count(ours) > 0; }
  const std::vector<std::string>& names() const { return order_; }  // our state_dict's order
  const Shape& shape_of(const std::string& ours) const;
  // ours <- theirs, with our shape.
  void copy(const std::string& ours, const std::string& theirs);
  // ours.weight and ours.bias <- theirs.weight and theirs.bias.
  void copy_layer(const std::string& ours, const std::string& theirs);
  // ours <- value (already in our layout; its shape must be ours).
  void set(const std::string& ours, const Tensor& value);
  // Our ResBlock `ours` from a foreign one whose layers are named as `names` says under `theirs`.
  struct ResBlockNames {
    std::string in_norm, in_conv, emb_proj, out_norm, out_conv, skip;
  };
  void resblock(const std::string& ours, const std::string& theirs, const ResBlockNames& names);
  // Our AttentionBlock `ours` from separate q, k and v projections (linear [C, C] or 1x1 conv
  // [C, C, 1, 1]), stacked into qkv [3C, C, 1] in q|k|v order, heads contiguous within each.
  struct AttentionNames {
    std::string norm, q, k, v, proj;
  };
  void attention(const std::string& ours, const std::string& theirs, const AttentionNames& names);

  SourceTensors& source() { return source_; }
  // Checks every target tensor was filled and every source tensor used; returns our state_dict.
  nn::NamedTensors finish();

 private:
  SourceTensors& source_;
  std::map<std::string, Shape> shapes_;
  std::vector<std::string> order_;
  std::map<std::string, Tensor> filled_;
};

}  // namespace diffkd::convert

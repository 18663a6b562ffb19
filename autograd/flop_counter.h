#pragma once
// Counts the floating-point operations (2 per multiply-add) of the ops that dominate a network,
// conv2d, conv_transpose2d and matmul (so linear and attention), while a FlopCounter is alive on
// the calling thread. `diffkd info` runs one forward pass under it to report FLOPs per image.
// Elementwise ops, norms and softmax are not counted (a few percent of a UNet).

#include <cstdint>

namespace diffkd {

class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;
  int64_t flops() const { return flops_; }
  // Called by the counted ops; adds to the innermost live counter, if any.
  static void add(int64_t flops);

 private:
  int64_t flops_ = 0;
  FlopCounter* outer_;
};

}  // namespace diffkd

// Kernels with a default made of other kernels: a backend without a fused version still works,
// at the cost of the intermediate tensors and passes the fused one saves.

#include "tensor/backend.h"

namespace diffkd {

void Backend::group_norm_silu(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                              double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) {
  group_norm(x, w, b, groups, eps, y, mean, rstd);
  unary(UnaryOp::Silu, y, y, 0.0, 0.0);
}

void Backend::group_norm_silu_backward(const Tensor& gy, const Tensor& x, const Tensor& w,
                                       const Tensor& b, const Tensor& mean, const Tensor& rstd,
                                       int64_t groups, double eps, const Tensor& gx,
                                       const Tensor& gw, const Tensor& gb) {
  // The pre-activation z, recomputed: its statistics come out as the forward's (same kernel,
  // same input, deterministic), so the scratch mean and rstd are discarded.
  const Tensor z = Tensor::empty(x.shape(), x.dtype(), x.device());
  const Tensor m = Tensor::empty(mean.shape(), mean.dtype(), mean.device());
  const Tensor r = Tensor::empty(rstd.shape(), rstd.dtype(), rstd.device());
  group_norm(x, w, b, groups, eps, z, m, r);
  const Tensor gz = Tensor::empty(x.shape(), x.dtype(), x.device());
  binary(BinaryOp::SiluBackward, z, gy, gz);  // gz = gy * silu'(z)
  group_norm_backward(gz, x, w, mean, rstd, groups, gx, gw, gb);
}

}  // namespace diffkd

#pragma once
// The CPU backend: OpenMP loops over strided memory, GEMM through OpenBLAS (cblas) or Eigen.
// One file per kernel family in tensor/cpu/; this header only lists them.

#include "tensor/backend.h"

namespace diffkd {

class CpuBackend final : public Backend {
 public:
  Allocator& allocator() override;

  void copy(const Tensor& src, const Tensor& dst) override;
  void fill(const Tensor& dst, double value) override;
  void arange(const Tensor& dst, double start, double step) override;
  void random(const Tensor& dst, RandomKind kind, uint64_t seed, uint64_t offset, double a,
              double b) override;

  void unary(UnaryOp op, const Tensor& x, const Tensor& out, double a, double b) override;
  void binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) override;
  void where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) override;

  void reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& dims,
              const Tensor& out) override;
  void softmax(const Tensor& x, int64_t dim, bool log, const Tensor& out) override;

  void group_norm(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups, double eps,
                  const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void group_norm_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& mean,
                           const Tensor& rstd, int64_t groups, const Tensor& gx, const Tensor& gw,
                           const Tensor& gb) override;
  void group_norm_silu(const Tensor& x, const Tensor& w, const Tensor& b, int64_t groups,
                       double eps, const Tensor& y, const Tensor& mean, const Tensor& rstd) override;
  void group_norm_silu_backward(const Tensor& gy, const Tensor& x, const Tensor& w, const Tensor& b,
                                const Tensor& mean, const Tensor& rstd, int64_t groups, double eps,
                                const Tensor& gx, const Tensor& gw, const Tensor& gb) override;

  void gemm(bool trans_a, bool trans_b, double alpha, const Tensor& a, const Tensor& b,
            double beta, const Tensor& c) override;

  void conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& out,
                      const Conv2dParams& p) override;
  void conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Tensor& grad_x,
                             const Conv2dParams& p) override;
  void conv2d_backward_weight(const Tensor& x, const Tensor& grad_out, const Tensor& grad_w,
                              const Conv2dParams& p) override;

  void avg_pool2d(const Tensor& x, const Tensor& out, const Pool2dParams& p) override;
  void avg_pool2d_backward(const Tensor& grad_out, const Tensor& grad_x,
                           const Pool2dParams& p) override;
  void max_pool2d(const Tensor& x, const Tensor& out, const Tensor& indices,
                  const Pool2dParams& p) override;
  void max_pool2d_backward(const Tensor& grad_out, const Tensor& indices,
                           const Tensor& grad_x, const Pool2dParams& p) override;
  void upsample_nearest(const Tensor& x, const Tensor& out) override;
  void upsample_nearest_backward(const Tensor& grad_out, const Tensor& grad_x) override;
  void resize_bilinear(const Tensor& x, const Tensor& out) override;
  void resize_bilinear_backward(const Tensor& grad_out, const Tensor& grad_x) override;

  void index_select(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& out) override;
  void index_add(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) override;

  void adam_update(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                   const Tensor& exp_avg_sq, const AdamHyper& h) override;
  void axpby(double a, const Tensor& x, double b, const Tensor& y) override;
};

CpuBackend& cpu_backend();

// What the host allocator holds, in bytes (block sizes as rounded for the cache): `live` in
// tensors now, `cached` freed and kept for reuse; the peaks since the process started.
struct HostMemoryStats {
  size_t live_bytes = 0;
  size_t cached_bytes = 0;
  size_t peak_live_bytes = 0;
  size_t peak_held_bytes = 0;  // live + cached
};
HostMemoryStats host_memory_stats();

}  // namespace diffkd
